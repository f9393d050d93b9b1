"""run.json: what a run is (its data and options) and where it stands (its state, figures and the
command that goes on), as one typed record. This module is the only one that reads or writes the
file; it reads the versions before this one too.
"""
import dataclasses
import json
import math
import os
import shlex

import checks
from atomic_files import open_regular, write_text
from contexts import parse_contexts
from errors import OptionError, RunError, shown
from options import KMEANS_CLUSTERS, TrainOptions

RUN_FILE = "run.json"
# Far past any run.json (a few KB, a cluster's TF_CONFIG included): a bigger one is not read whole.
MAX_BYTES = 1_000_000
VERSION = 2
# A run's states, in the order a run goes through them (docs/runs.md).
STATES = ("training", "interrupted", "incomplete", "finished")
# A run's outputs, in the order they are written (run_outputs); an incomplete run's `missing`.
OUTPUTS = ("vectors", "metadata", "exports", "projector", "quality", "plots")


@dataclasses.dataclass
class Stats:
    """How far training has gone and what it cost: over the run (all its parts, for a run that was
    resumed), and in its latest part (the process that started or resumed it)."""
    steps: int = 0  # the run's step
    pairs: int = 0  # pairs trained on (every trainer's, on a cluster)
    loss: float = math.nan  # the average loss of the last report; none before the first
    seconds: float = 0.0  # of training
    checkpoints: int = 0  # periodic checkpoints saved while training
    checkpoint_seconds: float = 0.0
    part_from: int = 0  # the step the latest part started from: 0 unless it was resumed
    part_seconds: float = 0.0  # the latest part's seconds of training

    def of_run(self, part, step_pairs):
        """The run's stats, these being those of the parts before and `part` those of the latest
        as training counts them (its own pairs, seconds and checkpoints since it started), for
        `step_pairs` pairs a step (the batch size, for each member of an ensemble)."""
        part_from = part.steps - part.pairs // step_pairs
        return dataclasses.replace(part, pairs=part.steps * step_pairs,
                                   seconds=self.seconds + part.seconds,
                                   checkpoints=self.checkpoints + part.checkpoints,
                                   checkpoint_seconds=(self.checkpoint_seconds
                                                       + part.checkpoint_seconds),
                                   part_from=part_from, part_seconds=part.seconds)


@dataclasses.dataclass
class RunRecord:
    """A run's run.json."""
    data: str  # the data's path, or "demo"
    artists: int
    options: TrainOptions
    data_fingerprint: str = None  # Catalog.fingerprint: a resumed run must find the same data
    include_pseudo_artists: bool = False
    kmeans_clusters: int = KMEANS_CLUSTERS
    stats: Stats = dataclasses.field(default_factory=Stats)
    state: str = "training"  # one of STATES
    next: str = None  # the command that goes on from the state
    missing: list = None  # an incomplete run's outputs still to write
    error: str = None  # what stopped an interrupted run, where it was not a signal
    quality: dict = None  # quality.quality_report() of the trained vectors
    phases: dict = None  # seconds by phase of the run
    peak_memory_mb: float = None
    tf_cluster: dict = None  # the TensorFlow cluster the run was trained on, as TF_CONFIG gave it
    version: int = VERSION

    def set_state(self, folder, state, missing=None, error=None):
        """The record in `state`, with the command that goes on from it."""
        self.state, self.missing, self.error = state, missing, error
        self.next = self.next_step(folder)

    def next_step(self, folder):
        """The command that goes on from the record's state for the run at `folder`, made anew: the
        file's `next` names the folder where the run was written, which may have moved, and in a
        shared log folder it may be anyone's text."""
        if self.state == "finished":
            return shell_command(["tensorboard", "--logdir", logdir_and_run(folder)[0]])
        return next_command(folder, self.missing or ())

    def completed(self, folder, output):
        """The record once `output` of an incomplete run is written."""
        if self.missing and output in self.missing:
            missing = [name for name in self.missing if name != output]
            self.set_state(folder, "incomplete" if missing else "finished", missing or None)


def next_command(folder, missing=()):
    """The command that completes a run missing `missing` outputs: all of them continues training,
    or writes the files a trained run lacks; only the plots, `plot`. Quoted for a shell, as a user
    pastes it: a run or folder name may hold spaces or `;`."""
    return run_command("plot" if list(missing) == ["plots"] else "--resume", folder)


def run_command(command, folder):
    """`python run.py COMMAND` for the run at `folder`, quoted for a shell as a user pastes it."""
    logdir, run = logdir_and_run(folder)
    return shell_command(["python", "run.py", command, "--logdir", logdir, "--run", run])


def train_command(logdir, run=None):
    """`python run.py` training a new run in `logdir` (named `run`, if given), quoted for a
    shell."""
    words = ["python", "run.py", "--logdir", path_argument(logdir)]
    return shell_command(words + ([] if run is None else ["--run", run]))


def shell_command(words):
    """`words` as one line a user pastes into a shell: quoted as shlex quotes them, and a word with
    a line break or another character a terminal does not show in bash's $'...' escapes."""
    return " ".join(shlex.quote(word) if word.isprintable() else f"$'{_escaped(word)}'"
                    for word in words)


def _escaped(word):
    """`word` in the escapes of bash's $'...': each byte of an unprintable character as \\xHH,
    which bash reads back as that byte in any locale (its \\u needs a UTF-8 one)."""
    def escape(character):
        if character in "\\'":
            return "\\" + character
        if character.isprintable():
            return character
        return "".join(f"\\x{byte:02x}" for byte in os.fsencode(character))
    return "".join(map(escape, word))


def logdir_and_run(folder):
    """The `--logdir` and `--run` that name `folder`."""
    folder = named_folder(folder)
    return path_argument(os.path.dirname(folder) or "."), os.path.basename(folder)


def path_argument(path):
    """`path` as an option's value on a command line: one starting with `-` would read as an
    option, `./-logs` does not."""
    return os.path.join(".", path) if path.startswith("-") else path


def named_folder(folder):
    """`folder` as a path that ends in its name: one given as `logs/r/` or `.` has none until it
    is normalised or made absolute."""
    folder = os.path.normpath(folder)
    if os.path.basename(folder) in ("", ".", ".."):
        return os.path.abspath(folder)
    return folder


def write(folder, record):
    fields = {name: value for name, value in dataclasses.asdict(record).items()
              if value is not None}
    write_text(os.path.join(folder, RUN_FILE),
               json.dumps(_finite(fields), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _finite(value):
    """`value` with each float that is not finite (the loss before the first report) as None:
    run.json is JSON, which has no NaN, for every reader (jq, say)."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def read(folder):
    """The run.json of `folder`, of this version or an earlier one; else a RunError in one line
    naming the file and what in it cannot be read."""
    path = os.path.join(folder, RUN_FILE)
    try:
        with open_regular(path, "rb") as f:
            text = f.read(MAX_BYTES + 1)
        if len(text) > MAX_BYTES:
            raise RunError(f"{folder}: unreadable {RUN_FILE} (over {MAX_BYTES:,} bytes, which no "
                           f"run writes)")
        fields = json.loads(text.decode("utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise RunError(f"{folder}: no {RUN_FILE} there: not a trained run's folder" if
                       os.path.isdir(folder) else f"{folder}: no such folder") from None
    except OSError as error:
        raise RunError(f"{folder}: unreadable {RUN_FILE} ({error.strerror or error})") from None
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, nested past Python's stack
        raise RunError(f"{folder}: unreadable {RUN_FILE} (not JSON: {error})") from None
    try:
        record = _record(_upgraded(fields))
    except ValueError as error:  # an OptionError, too
        raise RunError(f"{folder}: unreadable {RUN_FILE} ({error})") from None
    record.next = record.next_step(folder)  # for where the run is now, not the file's text
    return record


def _record(fields):
    """The RunRecord of run.json's fields, each checked."""
    fields = _fields("", fields, RECORD_FIELDS)
    options = _fields("options", fields.pop("options"), OPTIONS_REQUIRED)
    try:
        options = TrainOptions(**options)
    except OptionError as error:
        raise ValueError(f"options: {error}") from None
    unset = [name for name, (_, _, required) in OPTIONS_REQUIRED.items()
             if required and getattr(options, name) is None]
    if unset:  # None asks for a default, which a trained run has chosen
        raise ValueError(f"options: {unset[0]} is null, where a trained run's is a value")
    stats = Stats(**_fields("stats", fields.pop("stats"), STATS_FIELDS))
    if stats.loss is None:  # NaN, written as null: JSON has no NaN
        stats.loss = math.nan
    return RunRecord(options=options, stats=stats, **fields)


def _fields(part, fields, checks):
    """`fields` if it is an object whose names are all known, with every required one and each
    value as `checks` says ({name: (what it must be, its test, whether required)}): else a
    ValueError saying which is not. `part` names the object, or is empty for the whole file."""
    prefix = f"{part}: " if part else ""
    if not isinstance(fields, dict):
        raise ValueError(f"{part or 'it'} is {shown(fields)}, not an object")
    unknown = [name for name in fields if name not in checks]
    if unknown:
        raise ValueError(f"{prefix}unknown field {shown(unknown[0])}, not one this version writes")
    for name, (what, test, required) in checks.items():
        if name not in fields and required:
            raise ValueError(f"{prefix}no {name!r}")
        if name in fields and what and not test(fields[name]):
            raise ValueError(f"{prefix}{name!r} is {shown(fields[name])}, not {what}")
    return fields


# Past any count or figure a run writes: JSON's numbers have no bound, and a bigger whole number
# is no float (401 digits would fail every division by it).
MAX_NUMBER = 2**63


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_NUMBER


def _is_number(value):
    # Finite (NaN and infinity fail the bound): run.json writes NaN as null, so a NaN there, or an
    # Infinity, is no run's.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and abs(value) < MAX_NUMBER)


def _is_seconds(value):
    return _is_number(value) and value >= 0


def _or_none(test):
    return lambda value: value is None or test(value)


def _texts(value):
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_text(value):
    # Not a lone surrogate ('\ud800', as JSON may write one): no file TensorBoard reads holds it.
    return isinstance(value, str) and checks.is_utf8(value)


# What each field of run.json holds: (what it must be, its test, whether every run.json has it).
MAYBE_TEXT = ("text or null", _or_none(_is_text), False)
MAYBE_OBJECT = ("an object or null", _or_none(lambda value: isinstance(value, dict)), False)
RECORD_FIELDS = {
    "data": ("text", _is_text, True),
    "artists": ("a count", _is_count, True),
    "options": ("", None, True),  # checked as TrainOptions check their values
    "data_fingerprint": MAYBE_TEXT,
    "include_pseudo_artists": ("true or false", lambda value: isinstance(value, bool), False),
    "kmeans_clusters": ("a count of 1 or more", lambda value: _is_count(value) and value > 0,
                        False),
    "stats": ("", None, True),  # checked by STATS_FIELDS
    "state": (f"one of {', '.join(STATES)}", lambda value: value in STATES, True),
    "next": MAYBE_TEXT,
    "missing": (f"a list of outputs ({', '.join(OUTPUTS)}) or null",
                _or_none(lambda value: _texts(value) and set(value) <= set(OUTPUTS)), False),
    "error": MAYBE_TEXT,
    "quality": MAYBE_OBJECT,
    "phases": ("an object of seconds or null", _or_none(
        lambda value: isinstance(value, dict) and all(map(_is_seconds, value.values()))), False),
    "peak_memory_mb": ("a number of 0 or more, or null", _or_none(_is_seconds), False),
    "tf_cluster": MAYBE_OBJECT,
    "version": ("a count", _is_count, False),
}
STATS_FIELDS = {
    "steps": ("a count", _is_count, True),
    "pairs": ("a count", _is_count, False),
    # Null before the first report; the first version wrote NaN there.
    "loss": ("a number or null", _or_none(lambda value: _is_number(value) or value != value),
             False),
    "seconds": ("seconds, 0 or more", _is_seconds, False),
    "checkpoints": ("a count", _is_count, False),
    "checkpoint_seconds": ("seconds, 0 or more", _is_seconds, False),
    "part_from": ("a count", _is_count, False),
    "part_seconds": ("seconds, 0 or more", _is_seconds, False),
}
# Options are checked by TrainOptions; these are the ones every version wrote as chosen for the
# catalog, which a run cannot go on without.
OPTIONS_REQUIRED = {field.name: ("", None, field.name in (
    "steps", "batch_size", "num_sampled", "learning_rate")) for field in dataclasses.fields(
        TrainOptions)}


def _upgraded(fields):
    """The fields of a run.json of any version as this version names them."""
    if not isinstance(fields, dict):
        raise ValueError(f"it is {shown(fields)}, not an object")
    version = fields.get("version", 1)
    if not _is_count(version) or version < 1:
        raise ValueError(f"version {shown(version)} is not one Bands2Vec writes")
    if version > VERSION:
        raise ValueError(f"version {version}, from a newer Bands2Vec than this one "
                         f"(version {VERSION})")
    if version == 1:
        fields = _first_version(fields)
    options = fields.get("options")
    if isinstance(options, dict) and "ensemble" not in options:
        # A run from before ensembles was one model.
        fields["options"] = {**options, "ensemble": 1}
    return fields


# Before version 2: k-means' k was `clusters`, the TensorFlow cluster `cluster`, the data's
# fingerprint `catalog`.
RENAMED = {"clusters": "kmeans_clusters", "cluster": "tf_cluster", "catalog": "data_fingerprint"}


def _first_version(fields):
    """Version 1's fields as version 2 names them. Before states, a run said whether it had
    `finished`, or not even that; before contexts, its options had a `genre_share` (of genre pairs,
    the rest of score pairs)."""
    fields = {RENAMED.get(name, name): value for name, value in fields.items()}
    finished = fields.pop("finished", None)
    if "state" not in fields:
        if finished is None:  # before even that: finished if it trained all its steps
            try:
                finished = fields["stats"]["steps"] >= fields["options"]["steps"]
            except (KeyError, TypeError):
                pass  # the checks of the fields say what is wrong
        fields["state"] = "finished" if finished else "interrupted"
    options = fields.get("options")
    if isinstance(options, dict) and "genre_share" in options:
        options = dict(options)
        share = options.pop("genre_share")
        if not _is_number(share):
            raise ValueError(f"options: 'genre_share' is {shown(share)}, not a number")
        options.setdefault("contexts", parse_contexts("genre,score", share))
        fields["options"] = options
    fields["version"] = VERSION
    return fields
