"""What TensorBoard shows of a run beyond the training graph and loss: the projector's config and
bookmarks, and summaries (quality scalars, text, images, hparams) as event-file protos.

The projector reads one tensor, the artists (`vectors.tsv` with `metadata.tsv`), and a bookmark file
of projector states, one per colouring, that place every artist at the run's own t-SNE coordinates.
"""
import dataclasses
import io
import itertools
import json
import os
import socket
import time

from atomic_files import write_bytes, write_text
from contexts import quality_tags
from metadata import METADATA_FILE
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

def quality_summary(figures):
    """Scalars `quality/genre_at_10` ... from {"genre": 0.99, ...}, leaving out None figures."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    tags = quality_tags()
    return Summary(value=[Summary.Value(tag=tags[name], simple_value=float(value))
                          for name, value in figures.items() if name in tags and value is not None])


def text_summary(tag, markdown):
    from tensorboard.plugins.text.summary_v2 import text_pb

    return text_pb(tag, markdown)


def image_summary(tag, png_path):
    """A PNG file as an image summary, as the Images tab reads it."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from matplotlib.image import imread

    with open(png_path, "rb") as f:
        encoded = f.read()
    height, width = imread(png_path).shape[:2]
    image = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=encoded)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def hparams_summaries(hparams, started):
    """The hparams plugin's config (options; quality tags as metrics) and this run's values."""
    from tensorboard.plugins.hparams import summary_v2 as hp

    metrics = [hp.Metric(tag, display_name=tag.split("/")[1]) for tag in quality_tags().values()]
    config = hp.hparams_config_pb(hparams=[hp.HParam(name) for name in hparams], metrics=metrics)
    return [config, hp.hparams_pb(hparams, start_time_secs=started)]


def write_run_summaries(folder, record):
    """At the run's last step: the full quality figures, the run's summary as text, its hparams."""
    hparams = record.options.hparams()
    quality = {name: figures["trained"] for name, figures in record.quality.items()
               if isinstance(figures, dict)}
    write_summaries(folder, record.stats.steps, [
        quality_summary(quality),
        text_summary("run", run_markdown(record)),
        *hparams_summaries(hparams, time.time() - record.stats.seconds),
    ])


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


def write_summaries(folder, step, summaries):
    """Add summaries to the run's events, in an events file of their own beside training's,
    written whole by TensorBoard's record writer (its EventFileWriter would import TensorFlow)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    records = RecordWriter(buffer)
    records.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    for summary in summaries:
        records.write(Event(wall_time=time.time(), step=step, summary=summary).SerializeToString())
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_events_files)}")
    write_bytes(os.path.join(folder, name), buffer.getvalue())


_events_files = itertools.count()  # tells apart the events files one process writes in one second
