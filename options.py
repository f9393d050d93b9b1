"""The training options of a run, and the rules that choose their defaults for any catalog size.

A run saves its options in run.json as their one source. docs/defaults.md tells how each rule and
number below was measured.
"""
import dataclasses
import math
import os

import checks
from contexts import DEFAULT_CONTEXTS, checked_shares, format_contexts, parse_contexts
from errors import OptionError
from pair_sampler import check_kinds_have_data, membership_count, no_pairs

# The learning rate grows with the artists: artists / ARTISTS_PER_RATE.
ARTISTS_PER_RATE = 90
# ... up to MAX_RATE: a sampled negative takes a push from the whole batch, so the rate is capped.
MAX_RATE = 100
# The steps give every context membership this much movement (rate x steps x its share of pairs).
MOVE_PER_MEMBERSHIP = 8.5
# Past MOVE_GROWTH_ABOVE artists the movement grows by this fraction for every tenfold of artists.
MOVE_GROWTH = 0.4
MOVE_GROWTH_ABOVE = 10_000
# Below this many steps SGD has too few updates to settle.
MIN_STEPS = 1900
# A batch: PAIRS_PER_ARTIST x artists / steps pairs, to the nearest power of two in BATCH_SIZES.
PAIRS_PER_ARTIST = 447
BATCH_SIZES = (1024, 2048)
# Reports (loss, neighbours, quality) every REPORT_EVERY steps; on a big catalog at most one every
# artists / REPORT_ARTISTS steps, and about REPORTS a run.
REPORT_EVERY = 250
REPORT_ARTISTS = 50
REPORTS = 20
# Up to this many artists, XLA fuses the tables' reads and writes too; past it, copies cost more.
XLA_MAX_ARTISTS = 20_000
# Threads stepping one session with the tables out of XLA (inside, they lose each other's updates).
MAX_CONCURRENT_STEPS = 2
# With the tables split across several ps tasks, bigger steps stall in TensorFlow's runtime.
SPLIT_TABLES_MAX_BATCH = 1024
NUM_SAMPLED = 64  # NCE's negatives a step, or one fewer than the artists of a smaller catalog
KMEANS_CLUSTERS = 10  # k-means clusters for metadata.tsv, the projector's colours and the plots
# NCE needs a negative besides the true context; t-SNE more points than its perplexity (at least 2).
MIN_ARTISTS = 3
# Memory beyond the catalog: Python with TensorFlow, the side process with scikit-learn, and the
# artists x dimensions tables' copies (NCE's weights, a report's, a checkpoint's, the quality
# report's, and k-means' on its way to the side process and there: 10 in all).
FIXED_MEMORY = 1.1e9
TABLE_COPIES = 10
SEEDS = 2 ** 32  # scikit-learn's k-means and t-SNE take seeds below this
# Where `label` is a context, a step takes this many times the pairs: labels split the artists into
# small groups, whose vectors come out alike across seeds only from big steps (docs/contexts.md).
LABEL_BATCH_GROWTH = 4
# Members of the default ensemble where `label` is a context: the fewest whose runs of seeds 0 and
# 1000 share half their 10 nearest neighbours (docs/contexts.md).
LABEL_ENSEMBLE = 3
# ... fewer on a big catalog, each member a table of its own: at most this many rows in all.
ENSEMBLE_ROWS = 2_000_000
# Members an ensemble may have: each is a graph of its own, built at about 0.3 s a member while
# Ctrl-C waits (1,000 took minutes), where the default takes LABEL_ENSEMBLE.
MAX_ENSEMBLE = 32
# An ensemble's mean cosine averages out what its members' last steps would settle: each member
# takes this share of one model's steps (at least MIN_STEPS; docs/contexts.md).
ENSEMBLE_STEP_SHARE = 0.8
# --learning-rate's range, far around the rates catalogs take (artists / ARTISTS_PER_RATE, 0.03 to
# MAX_RATE): below it the float32 vectors hardly move from their start; above it a run diverges.
MIN_LEARNING_RATE = 1e-6
MAX_LEARNING_RATE = 1e9
# init_scale's range, far around the tutorial's 1 and word2vec's 0.01: below it float32's starting
# vectors round to 0; far above it the first steps overflow, and a run diverges.
MIN_INIT_SCALE = 1e-30
MAX_INIT_SCALE = 1e3
# Threads, TensorFlow's or stepping the session: past any machine's cores they only wait on each
# other, and a slip of the keyboard must not start millions.
MAX_THREADS = 1024


@dataclasses.dataclass
class TrainOptions:
    """Training settings, saved in run.json; None means chosen for the catalog by resolved()."""
    steps: int = None  # MOVE_PER_MEMBERSHIP of movement for every context membership
    batch_size: int = None  # PAIRS_PER_ARTIST pairs an artist over the run
    embedding_size: int = 64  # the tutorial's dimensions
    num_sampled: int = None  # NCE's negatives a step, shared by the batch: NUM_SAMPLED
    learning_rate: float = None  # artists / ARTISTS_PER_RATE, at most MAX_RATE
    contexts: dict = dataclasses.field(default_factory=lambda: parse_contexts(DEFAULT_CONTEXTS))
    init_scale: float = 0.01  # start in +-0.01, as word2vec's C code: the signal is not buried
    seed: int = 0  # the same seed gives the same vectors
    threads: int = 2  # TensorFlow's threads: the machine's cores
    report_every: int = None  # every REPORT_EVERY steps, or about REPORTS a run
    summary_every: int = 25  # loss to TensorBoard: often enough for a curve, cheap enough to ignore
    steps_per_draw: int = 100  # batches numpy draws in one call, not a Python loop over pairs
    valid_size: int = 4  # artists whose neighbours reports show: the most reviewed, easy to judge
    # How this process steps, not what it learns (--resume chooses them again for where it runs):
    xla_tables: bool = None  # XLA fuses the tables' reads and writes too: up to XLA_MAX_ARTISTS
    concurrent_steps: int = None  # threads stepping the session: 1 with XLA tables, else the cores
    ensemble: int = None  # members differing only in seed: LABEL_ENSEMBLE with labels, else 1

    def __post_init__(self):
        """Each option checked as it enters, from Python, the command line or run.json: an
        OptionError naming it, not a later stage's error (TensorFlow's, numpy's) after."""
        # A spec "genre,score,label=0.3" (as run.json had before contexts were a dict) is parsed.
        self.contexts = checked_shares(self.contexts)
        for field in dataclasses.fields(self):
            if field.name in OPTION_CHECKS:  # None is for resolved() where it is the default
                setattr(self, field.name, checked(field.name, getattr(self, field.name),
                                                  none=field.default is None))

    def resolved(self, catalog, trainers=1, ps_tasks=1):
        """These options with the steps, batch size, learning rate and report interval filled in
        for `catalog`, on a cluster of `trainers` trainers and `ps_tasks` parameter servers."""
        artists = len(catalog)
        rate = min(artists / ARTISTS_PER_RATE, MAX_RATE)
        check_kinds_have_data(catalog, [kind for kind, share in self.contexts.items() if share > 0])
        memberships = sum(membership_count(catalog, kind)
                          for kind, share in self.contexts.items() if share > 0)
        if not memberships:
            raise no_pairs(catalog, list(self.contexts))
        growth = 1 + MOVE_GROWTH * max(0.0, math.log10(artists / MOVE_GROWTH_ABOVE))
        steps = max(MIN_STEPS, int(round(MOVE_PER_MEMBERSHIP * growth * memberships / rate, -1)))
        steps = steps if self.steps is None else self.steps
        batch_growth = LABEL_BATCH_GROWTH if self.contexts.get("label", 0) > 0 else 1
        batch_size = _batch_size(artists, steps, ps_tasks, batch_growth)  # one model's
        ensemble = self.default_ensemble(artists) if self.ensemble is None else self.ensemble
        if ensemble > 1 and self.steps is None:
            steps = max(MIN_STEPS, int(round(steps * ENSEMBLE_STEP_SHARE, -1)))
        # Asynchronous trainers each push from values the others have moved since: the same movement
        # at 2 / (trainers + 1) of the rate, over that many times more steps (docs/cluster.md).
        slower = (trainers + 1) / 2
        rate = rate / slower
        steps = int(round(steps * slower, -1)) if self.steps is None else steps
        report_every = max(REPORT_EVERY, min(steps // REPORTS, artists // REPORT_ARTISTS)
                           // REPORT_EVERY * REPORT_EVERY)
        xla_tables = artists <= XLA_MAX_ARTISTS and trainers == 1
        xla_tables = xla_tables if self.xla_tables is None else self.xla_tables
        concurrent = (1 if xla_tables or trainers > 1
                      else min(os.cpu_count() or 1, MAX_CONCURRENT_STEPS))
        return dataclasses.replace(
            self, steps=steps, report_every=self.report_every or report_every,
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            num_sampled=(min(NUM_SAMPLED, artists - 1) if self.num_sampled is None
                         else self.num_sampled),
            learning_rate=rate if self.learning_rate is None else self.learning_rate,
            xla_tables=xla_tables,
            concurrent_steps=concurrent if self.concurrent_steps is None else self.concurrent_steps,
            ensemble=ensemble)

    def default_ensemble(self, artists):
        """One model, as the tutorial; where labels are a context, whose single models' neighbours
        are half a draw of the seed, LABEL_ENSEMBLE members, or as many as ENSEMBLE_ROWS hold."""
        if self.contexts.get("label", 0) <= 0:
            return 1
        return max(1, min(LABEL_ENSEMBLE, ENSEMBLE_ROWS // artists))

    def check(self, artists, ps_tasks=1):
        """An OptionError naming the first option out of range for `artists` artists and
        `ps_tasks` ps tasks, or too big for the machine's memory: refused before training, not by
        a later stage (TensorFlow, k-means, t-SNE) after. Each option alone was checked as it
        entered."""
        rules = [
            (self.num_sampled < artists,
             f"--num-sampled must be from 1 to {artists - 1} (fewer than the {artists} artists), "
             f"not {self.num_sampled}"),
            (ps_tasks == 1 or self.batch_size <= SPLIT_TABLES_MAX_BATCH,
             f"--batch-size {self.batch_size:,} with the tables split across {ps_tasks} ps tasks: "
             f"TensorFlow's runtime stalls on steps of more than {SPLIT_TABLES_MAX_BATCH:,} pairs "
             f"there; choose at most that"),
        ]
        for ok, message in rules:
            if not ok:
                raise OptionError(message)
        self._check_memory(artists)

    def _check_memory(self, artists):
        """Refuse what memory cannot hold, naming the ensemble where one member would fit, else
        the option whose halving saves the most."""
        tables = TABLE_COPIES * artists * self.embedding_size * 4 * self.ensemble
        step = 8 * self.batch_size * (self.embedding_size + self.num_sampled) * 4 * self.ensemble
        # As training draws, for each member.
        draws = min(self.steps_per_draw, self.steps) * self.batch_size * 16 * self.ensemble
        need, available = FIXED_MEMORY + tables + step + draws, _available_memory()
        if available and need > available:
            by_batch = (step + draws) / 2
            by_dimensions = (tables + step * self.embedding_size
                             / (self.embedding_size + self.num_sampled)) / 2
            one_member = FIXED_MEMORY + (need - FIXED_MEMORY) / self.ensemble
            option = (f"--ensemble {self.ensemble:,}" if one_member <= available else
                      f"--batch-size {self.batch_size:,}" if by_batch >= by_dimensions else
                      f"--embedding-size {self.embedding_size:,} for {artists:,} artists")
            raise OptionError(f"{option} needs about {need / 1e9:,.1f} GB of memory, "
                              f"and this machine has {available / 1e9:,.1f} GB available; "
                              f"choose a smaller one")

    def hparams(self):
        """The options a reader compares runs by, for TensorBoard's HParams tab."""
        return {"steps": self.steps, "batch_size": self.batch_size,
                "embedding_size": self.embedding_size, "num_sampled": self.num_sampled,
                "learning_rate": self.learning_rate,
                "genre_share": self.contexts.get("genre", 0.0),
                "contexts": format_contexts(self.contexts), "init_scale": self.init_scale,
                "seed": self.seed, "ensemble": self.ensemble}


# How each option is checked as it enters: (check, the option as the user names it, its bounds).
# Those without a flag of the command line are named as TrainOptions names them.
OPTION_CHECKS = {
    "steps": (checks.whole, "--steps", 1),
    "batch_size": (checks.whole, "--batch-size", 1),
    "embedding_size": (checks.whole, "--embedding-size", 1),
    "num_sampled": (checks.whole, "--num-sampled", 1),
    "learning_rate": (checks.positive, "--learning-rate", MIN_LEARNING_RATE, MAX_LEARNING_RATE),
    "init_scale": (checks.positive, "init_scale", MIN_INIT_SCALE, MAX_INIT_SCALE),
    "seed": (checks.whole, "--seed", 0, SEEDS - 1),
    "threads": (checks.whole, "threads", 1, MAX_THREADS),
    "report_every": (checks.whole, "report_every", 1),
    "summary_every": (checks.whole, "summary_every", 1),
    "steps_per_draw": (checks.whole, "steps_per_draw", 1),
    "valid_size": (checks.whole, "valid_size", 1),
    "xla_tables": (checks.flag, "xla_tables"),
    "concurrent_steps": (checks.whole, "--concurrent-steps", 1, MAX_THREADS),
    "ensemble": (checks.whole, "--ensemble", 1, MAX_ENSEMBLE),
}


def checked(name, value, none=True):
    """`value` for the option `name` of TrainOptions, checked by OPTION_CHECKS; None is taken
    where `none` allows it (the option is then chosen for the catalog)."""
    if value is None and none:
        return None
    check, option, *bounds = OPTION_CHECKS[name]
    return check(option, value, *bounds)


def _batch_size(artists, steps, ps_tasks, growth):
    """PAIRS_PER_ARTIST x artists / steps pairs, to the nearest power of two within BATCH_SIZES,
    times `growth`; at most the power of two holding a small catalog, SPLIT_TABLES_MAX_BATCH with
    split tables."""
    smallest, largest = BATCH_SIZES
    size = 2 ** round(math.log2(PAIRS_PER_ARTIST * artists / steps))
    size = min(max(smallest, size), largest) * growth
    size = min(size, 2 ** math.ceil(math.log2(max(artists, 2))))
    return min(size, SPLIT_TABLES_MAX_BATCH) if ps_tasks > 1 else size


def _available_memory():
    """Bytes of memory the machine can give now (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
