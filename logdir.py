"""The files of a training run: one sub-directory of the log dir per run, each written whole or not at all.

A run directory holds what TensorBoard reads (events, checkpoint, `metadata.tsv`, `projector_config.pbtxt`),
the standalone exports (`vectors.tsv`, `vectors.txt` in word2vec text format), `run.json` (options and
figures), and the plots with their cached t-SNE coordinates.
"""
import datetime
import json
import os
import shutil
import tempfile

import numpy as np

RUN_FILE = "run.json"
METADATA_FILE = "metadata.tsv"
PROJECTOR_FILE = "projector_config.pbtxt"
VECTORS_TSV = "vectors.tsv"
WORD2VEC_FILE = "vectors.txt"
METADATA_COLUMNS = ("artist", "genres", "primary_genre", "mean_score", "score_bucket", "reviews", "cluster")
GENRE_SEPARATOR = ", "


class RunError(Exception):
    """A log or run directory that cannot be used; its message is one line for the user."""


# ---------------------------------------------------------------------------------------------
# Writing whole files
# ---------------------------------------------------------------------------------------------

def atomic_write(path, write):
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------

def new_run_dir(logdir, name=None, overwrite=False):
    """A fresh directory for this run under `logdir`, named by the time unless `name` is given."""
    if not logdir.strip():
        raise RunError("--logdir is empty: name a directory for the logs, such as logs")
    try:
        os.makedirs(logdir, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=logdir)
        probe.close()
    except OSError as error:
        raise RunError(f"{logdir}: log directory is not writable ({error.strerror or error})") from None
    name = name or datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if os.sep in name or name in ("", ".", ".."):
        raise RunError(f"--run {name!r}: a run name is one folder name, without '{os.sep}'")
    path = os.path.join(logdir, name)
    if os.path.exists(path):
        if not overwrite:
            raise RunError(f"{path} already exists: pass --overwrite to replace it, or another --run name")
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def find_run(logdir, run=None):
    """The run directory to read: `logdir/run`, `logdir` itself if it is a run, else its latest run."""
    if run:
        path = os.path.join(logdir, run)
        if not os.path.isfile(os.path.join(path, RUN_FILE)):
            raise RunError(f"{path}: no trained run there (no {RUN_FILE}); train with `python run.py` first")
        return path
    if os.path.isfile(os.path.join(logdir, RUN_FILE)):
        return logdir
    runs = [os.path.join(logdir, d) for d in (os.listdir(logdir) if os.path.isdir(logdir) else [])
            if os.path.isfile(os.path.join(logdir, d, RUN_FILE))]
    if not runs:
        raise RunError(f"{logdir}: no trained run found; train one with `python run.py --logdir {logdir}`")
    return max(runs, key=lambda path: os.path.getmtime(os.path.join(path, RUN_FILE)))


def write_run_info(run_dir, info):
    write_text(os.path.join(run_dir, RUN_FILE), json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_run_info(run_dir):
    try:
        with open(os.path.join(run_dir, RUN_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise RunError(f"{run_dir}: unreadable {RUN_FILE} ({error})") from None


# ---------------------------------------------------------------------------------------------
# Metadata and the projector
# ---------------------------------------------------------------------------------------------

def tsv_field(value):
    """A value that cannot break a TSV row: tabs and line breaks become spaces."""
    return " ".join(str(value).replace("\t", " ").splitlines()) if value != "" else " "


def metadata_rows(catalog, clusters):
    """One row per artist, in vocabulary order, with the columns worth colouring by in the projector."""
    for artist, cluster in zip(catalog.artists, clusters):
        # Four decimals keep the score bucket of every mean that reviews scored to a tenth can give.
        yield (artist.name, GENRE_SEPARATOR.join(artist.genres), artist.primary_genre, f"{artist.mean_score:.4f}",
               artist.score_bucket, len(artist.review_ids), int(cluster))


def write_metadata(run_dir, catalog, clusters):
    lines = ["\t".join(METADATA_COLUMNS)]
    lines += ["\t".join(tsv_field(value) for value in row) for row in metadata_rows(catalog, clusters)]
    write_text(os.path.join(run_dir, METADATA_FILE), "\n".join(lines) + "\n")


def read_metadata(run_dir):
    """The metadata rows as dicts, in vocabulary order."""
    path = os.path.join(run_dir, METADATA_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            header, *rows = [line.rstrip("\n").split("\t") for line in f]
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable metadata ({error})") from None
    if tuple(header) != METADATA_COLUMNS or any(len(row) != len(header) for row in rows):
        raise RunError(f"{path}: malformed metadata (expected the columns {', '.join(METADATA_COLUMNS)})")
    return [dict(zip(header, row)) for row in rows]


def write_projector_config(run_dir, tensor_name):
    """projector_config.pbtxt: TensorBoard's projector shows `tensor_name` with the metadata's labels."""
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = tensor_name
    embedding.metadata_path = METADATA_FILE
    write_text(os.path.join(run_dir, PROJECTOR_FILE), text_format.MessageToString(config))


def write_vectors(run_dir, names, vectors):
    """vectors.tsv for the standalone projector, and word2vec text format for gensim and friends."""
    def write_tsv(f):
        np.savetxt(f, vectors, delimiter="\t", fmt="%.6f")

    def write_word2vec(f):
        # word2vec's text format splits on spaces, so names join their words with '_', as in phrase vectors.
        f.write(f"{len(names)} {vectors.shape[1]}\n".encode("utf-8"))
        for name, vector in zip(names, vectors):
            f.write((word2vec_token(name) + " " + " ".join(f"{x:.6f}" for x in vector) + "\n").encode("utf-8"))

    atomic_write(os.path.join(run_dir, VECTORS_TSV), write_tsv)
    atomic_write(os.path.join(run_dir, WORD2VEC_FILE), write_word2vec)


def word2vec_token(name):
    return "_".join(name.split())
