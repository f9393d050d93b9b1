"""The files of a training run: one sub-directory of the log dir per run, each written whole or not at all.

A run directory holds what TensorBoard reads (events, `metadata.tsv`, `vectors.tsv` and the projector's
config and bookmarks, written by tensorboard_files.py), the checkpoint in `checkpoints/`, the vectors as
numpy loads them (`vectors.npy`, what queries read), the word2vec export `vectors.txt`, `run.json`
(options and figures), and the plots with their cached t-SNE coordinates.
"""
import contextlib
import datetime
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile

import numpy as np

RUN_FILE = "run.json"
METADATA_FILE = "metadata.tsv"
VECTORS_TSV = "vectors.tsv"
VECTORS_FILE = "vectors.npy"  # the vectors as numpy loads them: what queries read, without TensorFlow
# The checkpoint has a folder of its own: TensorBoard's projector offers every 2-d variable of a checkpoint
# in the run folder (NCE's weights too), and with none there it shows just the tensor its config names.
CHECKPOINT_DIR = "checkpoints"
PROJECTOR_SAMPLE_DIR = "projector"  # the projector's own vectors.tsv and metadata.tsv, for a sampled map
# Above this many artists the text exports (about 0.7 KB an artist each) wait for `run.py export`.
EXPORT_MAX = 100_000
WORD2VEC_FILE = "vectors.txt"
METADATA_COLUMNS = ("artist", "genres", "primary_genre", "mean_score", "score_bucket", "reviews", "labels",
                    "main_label", "year", "era", "cluster")
OPTIONAL_COLUMNS = ("labels", "main_label", "year", "era")  # runs from before labels and years lack them
GENRE_SEPARATOR = ", "
LABEL_SEPARATOR = "; "  # label names have commas ("guided by voices, inc.")


class RunError(Exception):
    """A log or run directory that cannot be used; its message is one line for the user."""


# What to do about an operating-system error where a run is written or read, by its errno.
_OS_ADVICE = {errno.ENOSPC: "free some space there, or use another --logdir",
              errno.EDQUOT: "free some space there, or use another --logdir",
              errno.EACCES: "check who may write there, or use another --logdir",
              errno.EPERM: "check who may write there, or use another --logdir",
              errno.EROFS: "use another --logdir",
              errno.ENAMETOOLONG: "use a shorter --run name or --logdir",
              errno.ENOTDIR: "a part of that path is a file, not a folder",
              errno.EISDIR: "that is a folder, not a file",
              errno.EMFILE: "too many files are open: close some programs and try again",
              errno.ENFILE: "too many files are open: close some programs and try again"}


def os_error_line(error):
    """An OSError as one line naming the path and what to do, such as `logs/r/run.json: No space left on
    device; free some space there, or use another --logdir`."""
    return f"{error.filename or 'a file'}: {error.strerror or error}" + os_advice(error.strerror or "")


def os_advice(reason):
    """`; what to do` about an operating system's error message (as TensorFlow's errors quote it), or ''."""
    advice = [advice for number, advice in _OS_ADVICE.items() if os.strerror(number) in reason]
    return f"; {advice[0]}" if advice else ""


# ---------------------------------------------------------------------------------------------
# Writing whole files
# ---------------------------------------------------------------------------------------------

def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file, as the checkpoint and events files have


def atomic_write(path, write):
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600: a TensorBoard run by another user could not read it
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_bytes(path, data):
    atomic_write(path, lambda f: f.write(data))


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------

def run_path(logdir, name=None):
    """Where the run `name` (by default named by the time) goes under `logdir`, which is made, and must be
    writable."""
    if not logdir.strip():
        raise RunError("--logdir is empty: name a directory for the logs, such as logs")
    try:
        os.makedirs(logdir, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=logdir)
        probe.close()
    except OSError as error:
        raise RunError(f"{logdir}: log directory is not writable ({error.strerror or error}); "
                       f"choose another --logdir") from None
    name = name or datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    if os.sep in name or name in ("", ".", ".."):
        raise RunError(f"--run {name!r}: a run name is one folder name, without '{os.sep}'")
    longest = os.pathconf(logdir, "PC_NAME_MAX") - len(".lock.")  # its lock file's name is the longest
    if len(name.encode("utf-8", "surrogateescape")) > longest:
        raise RunError(f"--run is {len(name.encode('utf-8', 'surrogateescape')):,} bytes long; a run name here "
                       f"takes at most {longest}")
    return os.path.join(logdir, name)


def make_run_dir(path, overwrite=False):
    """The folder of a new run at `path`, replacing one there with `overwrite`."""
    if os.path.lexists(path):
        if not overwrite:
            raise RunError(f"{path} already exists: pass --overwrite to replace it, or another --run name")
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    os.makedirs(path)


@contextlib.contextmanager
def writing(run_dir):
    """Hold the run's writer lock, a file beside its folder (so that --overwrite does not delete it) while it
    is written: one process writes a run at a time, and a second is refused in one line naming the first.
    The kernel drops the lock of a process that has gone, however it went, so a stale lock is taken over."""
    path = os.path.join(os.path.dirname(run_dir) or ".", f".{os.path.basename(run_dir)}.lock")
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as error:
            raise RunError(f"{run_dir}: cannot be written ({error.strerror}); check who may write in "
                           f"{os.path.dirname(run_dir) or '.'}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1000, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunError(f"{run_dir} is being written by {holder}; wait for it to finish, or stop it "
                           f"first") from None
        if _same_file(fd, path):
            break
        os.close(fd)  # its holder removed it between our open and our lock: lock the file there now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])})"
                      .encode("utf-8", "replace"), 0)
        yield
    finally:
        os.unlink(path)  # while still locked: whoever opened it meanwhile sees it gone, and opens anew
        os.close(fd)


def _same_file(fd, path):
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def find_run(logdir, run=None, usable=False):
    """The run directory to read: `logdir/run`, `logdir` itself if it is a run, else its latest run. With
    `usable`, only a run with vectors to ask (metadata.tsv): not one still training, or stopped before."""
    def ready(path):
        return os.path.isfile(os.path.join(path, RUN_FILE)) and (
            not usable or os.path.isfile(os.path.join(path, METADATA_FILE)))

    if run:
        path = os.path.join(logdir, run)
        if not os.path.isfile(os.path.join(path, RUN_FILE)):
            raise RunError(f"{path}: no trained run there (no {RUN_FILE}); train with `python run.py` first")
        if not ready(path):
            info = read_run_info(path)
            raise RunError(f"{path}: no vectors to ask yet (its state: {info.get('state', 'unknown')}); "
                           f"{info.get('next', 'train it again')}")
        return path
    if ready(logdir):
        return logdir
    folders = sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []
    runs = [os.path.join(logdir, d) for d in folders if ready(os.path.join(logdir, d))]
    if not runs:
        unready = [d for d in folders if os.path.isfile(os.path.join(logdir, d, RUN_FILE))]
        if unready:
            raise RunError(f"{logdir}: no run with vectors to ask yet ({', '.join(unready)}: still training, or "
                           f"stopped before; their run.json says how to go on)")
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


def checkpoint_dir(run_dir):
    return os.path.join(run_dir, CHECKPOINT_DIR)


# ---------------------------------------------------------------------------------------------
# Metadata and vectors
# ---------------------------------------------------------------------------------------------

def tsv_field(value):
    """A value that cannot break a TSV row: tabs and line breaks become spaces."""
    return " ".join(str(value).replace("\t", " ").splitlines()) if value != "" else " "


def write_metadata(folder, table, clusters, rows=None):
    """metadata.tsv in `folder`: one row per artist of `table` (an ArtistTable), or per artist in `rows`
    (the projector's sample), in vocabulary order, with the columns worth colouring by in the projector."""
    has_labels, has_years = table.labels is not None, table.years is not None

    def row(i):
        # Four decimals keep the score bucket of every mean that reviews scored to a tenth can give.
        return (table.names[i], GENRE_SEPARATOR.join(table.genres[i]), table.primary_genres[i],
                f"{table.mean_scores[i]:.4f}", table.score_buckets[i], table.review_counts[i],
                LABEL_SEPARATOR.join(table.labels[i]) if has_labels else "",
                table.main_labels[i] if has_labels else "",
                f"{table.years[i]:.1f}" if has_years and np.isfinite(table.years[i]) else "",
                table.eras[i] if has_years else "", int(clusters[i]))

    lines = ["\t".join(METADATA_COLUMNS)]
    lines += ["\t".join(tsv_field(value) for value in row(i)) for i in (range(len(table)) if rows is None else rows)]
    write_text(os.path.join(folder, METADATA_FILE), "\n".join(lines) + "\n")


def read_metadata(folder):
    """metadata.tsv's columns, {column: [text per artist]}, in vocabulary order."""
    path = os.path.join(folder, METADATA_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            header, *rows = [line.rstrip("\n").split("\t") for line in f]
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable metadata ({getattr(error, 'strerror', None) or error})") from None
    required = [column for column in METADATA_COLUMNS if column not in OPTIONAL_COLUMNS]
    if not set(required) <= set(header) or any(len(row) != len(header) for row in rows):
        raise RunError(f"{path}: malformed metadata (expected the columns {', '.join(METADATA_COLUMNS)})")
    return {column: list(values) for column, values in zip(header, zip(*rows) if rows else [()] * len(header))}


def read_artists(folder):
    """The artists of a run's metadata.tsv as an ArtistTable's fields (labels and years None where the data
    had none), and their clusters."""
    columns = read_metadata(folder)

    def split(column, separator):
        return [tuple(filter(None, value.strip().split(separator))) for value in columns[column]]

    def stripped(column):
        return np.array([value.strip() for value in columns[column]], dtype=object)

    try:
        fields = {"names": columns["artist"], "genres": split("genres", GENRE_SEPARATOR),
                  "primary_genres": stripped("primary_genre"),
                  "mean_scores": np.array(columns["mean_score"], dtype=np.float64),
                  "score_buckets": np.array(columns["score_bucket"], dtype=np.int64),
                  "review_counts": np.array(columns["reviews"], dtype=np.int64)}
        if any(value.strip() for value in columns.get("labels", ())):
            fields.update(labels=split("labels", LABEL_SEPARATOR), main_labels=stripped("main_label"))
        if any(value.strip() for value in columns.get("year", ())):
            fields.update(years=np.array([value.strip() or "nan" for value in columns["year"]], dtype=np.float64),
                          eras=stripped("era"))
        clusters = np.array(columns["cluster"], dtype=np.int64)
    except ValueError as error:
        raise RunError(f"{os.path.join(folder, METADATA_FILE)}: malformed metadata ({error})") from None
    return fields, clusters


def write_vectors(folder, vectors):
    """vectors.npy: the vectors as numpy loads them, for queries without TensorFlow."""
    atomic_write(os.path.join(folder, VECTORS_FILE), lambda f: np.save(f, np.asarray(vectors, dtype=np.float32)))


def read_vectors(folder, rows):
    """vectors.npy, which must hold `rows` vectors; a RunError naming the file if it is missing or damaged."""
    path = os.path.join(folder, VECTORS_FILE)
    try:
        vectors = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as error:
        reason = getattr(error, "strerror", None) or str(error).split(". ")[0]
        raise RunError(f"{path}: damaged ({reason})") from None
    if vectors.ndim != 2 or len(vectors) != rows or not np.issubdtype(vectors.dtype, np.floating):
        raise RunError(f"{path}: damaged (holds {vectors.shape} {vectors.dtype}, not {rows:,} vectors)")
    return vectors


def write_tsv_vectors(folder, vectors):
    """vectors.tsv, for the projector (TensorBoard's and the standalone one) beside metadata.tsv."""
    atomic_write(os.path.join(folder, VECTORS_TSV), lambda f: np.savetxt(f, vectors, delimiter="\t", fmt="%.6f"))


def write_word2vec(folder, names, vectors):
    """vectors.txt in word2vec text format, for gensim and friends."""
    def write(f):
        # word2vec's text format splits on spaces, so names join their words with '_', as in phrase vectors.
        f.write(f"{len(names)} {vectors.shape[1]}\n".encode("utf-8"))
        for name, vector in zip(names, vectors):
            f.write((word2vec_token(name) + " " + " ".join(f"{x:.6f}" for x in vector) + "\n").encode("utf-8"))

    atomic_write(os.path.join(folder, WORD2VEC_FILE), write)


def word2vec_token(name):
    return "_".join(name.split())
