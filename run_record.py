"""run.json: what a run is (its data and options) and where it stands (its state, figures and the
command that goes on), as one typed record. This module is the only one that reads or writes the
file; it reads the versions before this one too.
"""
import dataclasses
import json
import os
import shlex

from atomic_files import write_text
from errors import RunError
from options import KMEANS_CLUSTERS, TrainOptions

RUN_FILE = "run.json"
VERSION = 2
# A run's states, in the order a run goes through them (docs/runs.md).
STATES = ("training", "interrupted", "incomplete", "finished")


@dataclasses.dataclass
class Stats:
    """How far training has gone and what it cost: over the run (all its parts, for a run that was
    resumed), and in its latest part (the process that started or resumed it)."""
    steps: int = 0  # the run's step
    pairs: int = 0  # pairs trained on (every trainer's, on a cluster)
    loss: float = None  # the average loss of the last report
    seconds: float = 0.0  # of training
    checkpoints: int = 0  # periodic checkpoints saved while training
    checkpoint_seconds: float = 0.0
    part_from: int = 0  # the step the latest part started from: 0 unless it was resumed
    part_seconds: float = 0.0  # the latest part's seconds of training

    def of_run(self, part, batch_size):
        """The run's stats, these being those of the parts before and `part` those of the latest
        as training counts them (its own pairs, seconds and checkpoints since it started)."""
        part_from = part.steps - part.pairs // batch_size
        return dataclasses.replace(part, pairs=part.steps * batch_size,
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
        self.next = (shlex.join(["tensorboard", "--logdir", os.path.dirname(folder) or "."])
                     if state == "finished" else next_command(folder, missing or ()))

    def completed(self, folder, output):
        """The record once `output` of an incomplete run is written."""
        if self.missing and output in self.missing:
            missing = [name for name in self.missing if name != output]
            self.set_state(folder, "incomplete" if missing else "finished", missing or None)


def next_command(folder, missing=()):
    """The command that completes a run missing `missing` outputs: all of them continues training,
    or writes the files a trained run lacks; only the plots, `plot`. Quoted for a shell, as a user
    pastes it: a run or folder name may hold spaces or `;`."""
    command = "plot" if list(missing) == ["plots"] else "--resume"
    return shlex.join(["python", "run.py", command, "--logdir", os.path.dirname(folder) or ".",
                       "--run", os.path.basename(folder)])


def write(folder, record):
    fields = {name: value for name, value in dataclasses.asdict(record).items()
              if value is not None}
    write_text(os.path.join(folder, RUN_FILE), json.dumps(fields, indent=2, sort_keys=True) + "\n")


def read(folder):
    """The run.json of `folder`, of this version or an earlier one; else a one-line RunError."""
    path = os.path.join(folder, RUN_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            fields = _upgraded(json.load(f))
        options = TrainOptions(**fields.pop("options"))
        return RunRecord(options=options, stats=Stats(**fields.pop("stats")), **fields)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise RunError(f"{folder}: unreadable {RUN_FILE} "
                       f"({type(error).__name__}: {error})") from None


def _upgraded(fields):
    """The fields of a run.json of any version as this version names them."""
    version = fields.get("version", 1)
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(f"version {version!r}, from a newer Bands2Vec than this one "
                         f"(version {VERSION})")
    if version == 1:
        # Before version 2: k-means' k was `clusters`, the TensorFlow cluster `cluster`, the data's
        # fingerprint `catalog`, and a run from before states had none.
        renamed = {"clusters": "kmeans_clusters", "cluster": "tf_cluster",
                   "catalog": "data_fingerprint"}
        fields = {renamed.get(name, name): value for name, value in fields.items()}
        fields.setdefault("state", "unknown")
        fields["version"] = VERSION
    # A run from before ensembles was one model.
    fields["options"].setdefault("ensemble", 1)
    return fields
