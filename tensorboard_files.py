"""What TensorBoard shows of a run beyond the training graph: the projector's config and bookmarks,
and summaries (described scalars, text, images, hparams) as event-file protos, with the log
folder's hparams config.

The projector reads one tensor, the artists (`vectors.tsv` with `metadata.tsv`), and a bookmark file
of projector states, one per colouring, that place every artist at the run's own t-SNE coordinates.
"""
import dataclasses
import glob
import io
import itertools
import json
import math
import os
import re
import socket
import struct
import threading
import time
import warnings

import run_record
from atomic_files import remove_temporaries, temporary_names, write_bytes, write_text
from contexts import CONTEXTS, quality_tags
from errors import RunError
from metadata import METADATA_FILE
from options import NUM_SAMPLED
from run_folder import PROJECTOR_SAMPLE_DIR
from vector_files import VECTORS_TSV

PROJECTOR_FILE = "projector_config.pbtxt"
BOOKMARKS_FILE = "projector_bookmarks.json"
PROJECTOR_TENSOR = "artists"
# The projector's bookmarks: a label and the metadata column each colours by.
BOOKMARKS = (("t-SNE by primary genre", "primary_genre"), ("t-SNE by k-means cluster", "cluster"),
             ("t-SNE by score bucket", "score_bucket"))


# ---------------------------------------------------------------------------------------------
# The projector
# ---------------------------------------------------------------------------------------------

def write_projector_config(folder, sampled=False, bookmarks=False):
    """projector_config.pbtxt: the artists' tensor and metadata (the run's own, or with `sampled`
    those of the map's sample in projector/) and, with `bookmarks`, the bookmark file; without, an
    earlier bookmark file is removed, since its t-SNE belongs to other vectors."""
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    sample = PROJECTOR_SAMPLE_DIR if sampled else ""
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = PROJECTOR_TENSOR
    embedding.tensor_path = os.path.join(sample, VECTORS_TSV)
    embedding.metadata_path = os.path.join(sample, METADATA_FILE)
    if bookmarks:
        embedding.bookmarks_path = BOOKMARKS_FILE
    elif os.path.exists(os.path.join(folder, BOOKMARKS_FILE)):
        os.remove(os.path.join(folder, BOOKMARKS_FILE))
    write_text(os.path.join(folder, PROJECTOR_FILE), text_format.MessageToString(config))


def bookmark_states(coordinates, dimensions):
    """The projector's saved states (its `State` objects): every point at its 2-d t-SNE coordinates,
    one state per colouring in BOOKMARKS. `dimensions` is the tensor's (rows, columns)."""
    # The map goes in as the projector's "custom" projection (its keys linear-x, linear-y): a state
    # whose projection is t-SNE makes the projector run its own t-SNE at once, moving every point.
    projections = [{"linear-x": round(float(x), 4), "linear-y": round(float(y), 4)}
                   for x, y in coordinates]
    common = {
        "isSelected": False, "projections": projections, "selectedProjection": "custom",
        "dataSetDimensions": list(dimensions),
        "tSNEIteration": 0, "tSNEPerplexity": 30, "tSNELearningRate": 1, "tSNEis3d": True,
        "umapIs3d": True, "umapNeighbors": 15, "umapMinDist": 0.1,
        "pcaComponentDimensions": [0, 1, 2],
        "selectedPoints": [], "forceCategoricalColoring": False, "selectedLabelOption": "artist",
        "customSelectedSearchByMetadataOption": "artist",
        "customXLeftText": "", "customXLeftRegex": False,
        "customXRightText": "", "customXRightRegex": False,
        "customYUpText": "", "customYUpRegex": False,
        "customYDownText": "", "customYDownRegex": False,
    }
    return [dict(common, label=label, selectedColorOptionName=column)
            for label, column in BOOKMARKS]


def write_bookmarks(folder, coordinates, dimensions, sampled=False):
    states = bookmark_states(coordinates, dimensions)
    write_text(os.path.join(folder, BOOKMARKS_FILE), json.dumps(states, separators=(",", ":")))
    write_projector_config(folder, sampled, bookmarks=True)


# ---------------------------------------------------------------------------------------------
# Summaries, as protos: for training's tf.compat.v1 FileWriter, or written by write_summaries
# ---------------------------------------------------------------------------------------------

# The scalars a run writes besides the quality figures, each with how to read it: TensorBoard shows
# a scalar's description beside its chart (the first one written of its tag in a run counts).
LOSS_TAG = "loss/nce"
RATE_TAG = "optimizer/learning_rate"
SPEED_TAG = "speed/pairs_per_second"
FINAL_LOSS_TAG = "run/final_loss"
SECONDS_TAG = "run/training_seconds"
# An ensemble's members' agreement: the mean Jaccard of every two members' 10 nearest neighbours.
MEMBER_AGREEMENT_TAG = "quality/member_agreement_at_10"
# The group of events files whose summaries a newer one replaces (see write_summaries).
PLOTS_EVENTS = "plots"
# The log folder's hparams config (TensorBoard's experiment): one for all the runs in it.
EXPERIMENT_FILE = "events.out.tfevents.hparams"


def uniform_guess_loss(num_sampled):
    """NCE's loss (with TensorFlow's log-expected-count correction) for a model that finds every
    context equally likely: log(k + 1) for the true one, k log((k + 1) / k) for k negatives."""
    return math.log(num_sampled + 1) + num_sampled * math.log((num_sampled + 1) / num_sampled)


def scalar_descriptions(num_sampled):
    """{tag: markdown} for every scalar a run writes."""
    start = uniform_guess_loss(num_sampled)
    descriptions = {
        LOSS_TAG: (
            f"The tutorial's training loss: `tf.nn.nce_loss` over one batch's pairs (its mean), "
            f"every 25 steps. **It does not fall as the vectors learn, and need not**: it starts "
            f"at {start:.2f}, a model finding every artist equally likely against {num_sampled} "
            f"sampled artists, and most sampled artists share a genre or score bucket with the "
            f"target, so they are true contexts too (the best this data allows is near 4.3 on "
            f"the full data). At the default learning rate the NCE biases of the sampled artists "
            f"fall (from log(1/artists) to about 4 below it on the full data) before the vectors "
            f"score pairs at all, which lifts the loss; then it falls as the rate decays. The "
            f"vectors are judged by their directions, which the biases do not touch: read "
            f"`quality/*`. docs/runs.md has the measurements."),
        RATE_TAG: ("The learning rate of the step: plain gradient descent, falling linearly to "
                   "1% of its start at the last step, so late steps refine rather than jitter."),
        SPEED_TAG: ("Training pairs a second since the previous point (batch size x steps / "
                    "seconds), the report steps' neighbour and quality probes included. The first "
                    "point is low: it includes XLA compiling the step."),
        FINAL_LOSS_TAG: ("The average training loss of the last report's steps (the loss in "
                         "run.json's stats); see `loss/nce` for why it ends above where it "
                         "started."),
        SECONDS_TAG: ("Seconds of training (run.json's stats.seconds), without loading the data "
                      "or writing the outputs; a resumed run's counts its resumed part."),
    }
    descriptions[MEMBER_AGREEMENT_TAG] = (
        "An ensemble's (--ensemble N) stability: the mean Jaccard of every two members' 10 "
        "nearest artists, over a fixed seeded sample of artists: how far single models of other "
        "seeds agree. The ensemble's answers, their mean, are steadier; one model has none.")
    for name, kind in CONTEXTS.items():
        if kind.quality_tag:
            descriptions[kind.quality_tag] = (
                f"Share of {kind.agreement} among each artist's 10 nearest artists (cosine of the "
                f"vectors), over the artists that have a {name}: `evaluate`'s figure. While "
                f"training, on a fixed seeded sample of 200 artists at every report step; at the "
                f"last step, the run's own figure. Rises as the vectors learn; compare it with "
                f"random vectors' in the Text tab's `run`.")
    return descriptions


def scalar_summary(tag, value, description=None):
    """A scalar as the Scalars tab reads it, with a description if given."""
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    return scalar_pb(tag, float(value), description=description)


class TrainingScalars:
    """What training writes every summary step: its graph's scalars (described at their first
    point) and the pairs a second since the previous point. Its threads share one."""

    def __init__(self, options, first_step):
        self.batch_size = options.batch_size
        self.descriptions = scalar_descriptions(options.num_sampled)
        self.described = False
        self.last = (first_step, time.perf_counter())
        self.lock = threading.Lock()

    def at(self, step, merged):
        """The summaries to write at `step`, serialized (as TensorFlow's writer takes TensorBoard's
        protos), given the graph's merged summary, serialized too."""
        now = time.perf_counter()
        with self.lock:
            (last_step, last_time), self.last = self.last, (max(step, self.last[0]), now)
            first, self.described = not self.described, True
        summaries = [self._described(merged).SerializeToString() if first else merged]
        if step > last_step and now > last_time:
            speed = (step - last_step) * self.batch_size / (now - last_time)
            summaries.append(scalar_summary(SPEED_TAG, speed, self.descriptions[SPEED_TAG]
                                            if first else None).SerializeToString())
        return summaries

    def _described(self, merged):
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary.FromString(merged)
        values = [scalar_summary(value.tag, value.simple_value, self.descriptions[value.tag])
                  .value[0] if value.tag in self.descriptions and value.HasField("simple_value")
                  else value for value in summary.value]
        return Summary(value=values)


def quality_summary(figures):
    """Scalars `quality/genre_at_10` ... from {"genre": 0.99, ...}, leaving out None figures, each
    described (a run's first point of a tag may be any of them: training's or the final one)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    tags = {**quality_tags(), "member_agreement": MEMBER_AGREEMENT_TAG}
    descriptions = scalar_descriptions(NUM_SAMPLED)
    return Summary(value=[scalar_summary(tags[name], value, descriptions[tags[name]]).value[0]
                          for name, value in figures.items()
                          if name in tags and value is not None])


def text_summary(tag, markdown):
    from tensorboard.plugins.text.summary_v2 import text_pb

    return text_pb(tag, markdown)


def image_summary(tag, png_path):
    """A PNG file as an image summary, as the Images tab reads it."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    with open(png_path, "rb") as f:
        encoded = f.read()
    # A PNG's size is in its header, the first chunk after the 8-byte signature.
    width, height = struct.unpack(">II", encoded[16:24])
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=encoded)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def write_run_summaries(folder, record):
    """At the run's last step: the full quality figures, the final loss and training seconds, the
    run's summary as text, its hparams; and the log folder's hparams config, anew."""
    quality = {name: figures["trained"] for name, figures in record.quality.items()
               if isinstance(figures, dict)}
    descriptions = scalar_descriptions(record.options.num_sampled)
    write_summaries(folder, record.stats.steps, [
        quality_summary(quality),
        scalar_summary(FINAL_LOSS_TAG, record.stats.loss, descriptions[FINAL_LOSS_TAG]),
        scalar_summary(SECONDS_TAG, record.stats.seconds, descriptions[SECONDS_TAG]),
        text_summary("run", run_markdown(record)),
        hparams_values(record, os.path.basename(os.path.abspath(folder))),
    ])
    write_experiment(os.path.dirname(os.path.abspath(folder)))


# ---------------------------------------------------------------------------------------------
# HParams: each run's values, and the log folder's config of them all
# ---------------------------------------------------------------------------------------------

def run_hparams(record):
    """The settings a reader compares runs by: the data, and the options that shape the vectors."""
    return {"data": record.data, **record.options.hparams()}


def hparams_values(record, name):
    """The run's hparams: its session in the HParams tab, named for the run, started when
    training started."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    return hp.hparams_pb(run_hparams(record), trial_id=name,
                         start_time_secs=time.time() - record.stats.seconds)


def write_experiment(logs):
    """The log folder's hparams config: every setting typed, with the domain and whether it
    differs over the runs in `logs`, and the metrics. TensorBoard reads the config of its first
    run that has one, so it is one for all, in the log folder itself (TensorBoard's run `.`)."""
    runs = [run_hparams(record) for record in _records(logs)]
    if not runs:
        return
    # Another run's process may be writing it now: only a new file a minute old is one left behind.
    remove_temporaries(logs, temporary_names(re.escape(EXPERIMENT_FILE)), stale_seconds=60)
    path = os.path.join(logs, EXPERIMENT_FILE)
    try:
        owner = os.lstat(path).st_uid
    except FileNotFoundError:
        owner = os.geteuid()
    try:
        if owner != os.geteuid():  # a shared log folder: not ours to replace, where we could
            raise OSError(f"another user's file (uid {owner})")
        write_summaries(logs, 0, [experiment_summary(runs)], name=EXPERIMENT_FILE)
    except OSError as error:  # the run is whole without it
        warnings.warn(f"{path}: not replaced ({error.strerror or error}); TensorBoard's HParams "
                      f"tab keeps the settings it listed before this run", stacklevel=2)


def _records(logs):
    for name in sorted(os.listdir(logs)):
        if not os.path.isfile(os.path.join(logs, name, run_record.RUN_FILE)):
            continue
        try:
            yield run_record.read(os.path.join(logs, name))
        except RunError:  # not a run, or one this version cannot read: not compared
            continue


def experiment_summary(runs):
    """The hparams config summary for runs' hparams [{name: value}]."""
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.plugins.hparams import summary_v2 as hp

    names = list(dict.fromkeys(name for hparams in runs for name in hparams))
    values = {name: [hparams[name] for hparams in runs if name in hparams] for name in names}
    descriptions = scalar_descriptions(NUM_SAMPLED)
    metrics = [hp.Metric(tag, display_name=display, description=descriptions[tag])
               for tag, display in _metric_names()]
    summary = hp.hparams_config_pb([hp.HParam(name, _domain(values[name])) for name in names],
                                   metrics)
    # The config's own protos carry `differs`, which hparams_config_pb leaves false.
    content = summary.value[0].metadata.plugin_data
    data = plugin_data_pb2.HParamsPluginData.FromString(content.content)
    for info in data.experiment.hparam_infos:
        info.differs = len(set(values[info.name])) > 1
    content.content = data.SerializeToString()
    return summary


def _metric_names():
    """(tag, display name) of the metrics the HParams tab compares runs by."""
    return [*((tag, f"{name} agreement") for name, tag in quality_tags().items()),
            (FINAL_LOSS_TAG, "final loss"), (SECONDS_TAG, "training seconds")]


def _domain(values):
    """A typed domain holding `values`: numbers an interval, strings and booleans their values."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    if all(isinstance(value, bool) for value in values):
        return hp.Discrete([False, True])
    if all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return hp.IntInterval(min(values), max(values))
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return hp.RealInterval(float(min(values)), float(max(values)))
    return hp.Discrete(sorted({str(value) for value in values}))


def run_markdown(record):
    """The run's data, options (as its hparams show those they have, such as the contexts' spec) and
    quality as a markdown table."""
    hparams = record.options.hparams()
    rows = [("data", record.data), ("artists", f"{record.artists:,}"),
            *((name, hparams.get(name, value))
              for name, value in dataclasses.asdict(record.options).items()),
            ("steps trained", f"{record.stats.steps:,} in {record.stats.seconds:.1f} s"),
            ("final loss", f"{record.stats.loss:.3f}")]
    for name, figures in record.quality.items():
        if isinstance(figures, dict) and figures["trained"] is not None:
            rows.append((f"quality: {name}",
                         f"{figures['trained']:.3f} (random vectors {figures['random']:.3f})"))
    return "\n".join(["| | |", "| --- | --- |",
                      *(f"| {_cell(name)} | {_cell(value)} |" for name, value in rows)])


def neighbours_markdown(neighbours):
    """[(artist, [nearest names])] as the markdown table the Text tab renders."""
    rows = [f"| {_cell(name)} | {', '.join(_cell(n) for n in nearest)} |"
            for name, nearest in neighbours]
    return "\n".join(["| artist | nearest artists |", "| --- | --- |", *rows])


def _cell(text):
    return str(text).replace("|", "\\|")


def write_summaries(folder, step, summaries, name=None, replacing=None):
    """Add summaries to the run's events, in an events file of their own beside training's,
    written whole by TensorBoard's record writer (its EventFileWriter would import TensorFlow).
    `name` names the file (else a new one, named as TensorFlow names them); with `replacing`, a
    group's name such as PLOTS_EVENTS, the file replaces the group's earlier ones, so TensorBoard
    shows its summaries once."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    records = RecordWriter(buffer)
    records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    for summary in summaries:
        records.write(Event(wall_time=time.time(), step=step, summary=summary).SerializeToString())
    name = name or (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                    f"{os.getpid()}.{next(_events_files)}" + (f".{replacing}" if replacing else ""))
    earlier = replaced_events(folder, replacing) if replacing else []
    write_bytes(os.path.join(folder, name), buffer.getvalue())
    for path in earlier:
        if os.path.basename(path) != name:
            os.remove(path)


def replaced_events(folder, group):
    """The events files of `group` in `folder`; a RunError, before anything is written, where one
    is a folder (put there by whoever may write in it), which no file can replace."""
    paths = glob.glob(os.path.join(glob.escape(folder), f"events.out.tfevents.*.{group}"))
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            raise RunError(f"{path}: a folder where the run keeps its {group}' events file, which "
                           f"run.py never makes; remove it (and see who put it there)")
    return paths


_events_files = itertools.count()  # tells apart the events files one process writes in one second
