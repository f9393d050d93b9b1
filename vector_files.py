"""A run's vectors as files: vectors.npy (what queries read, with numpy alone), vectors.tsv (for
the projector) and vectors.txt (word2vec's text format, for gensim); else from the checkpoint; and
vectors.json, the settings of vectors saved outside a run."""
import json
import os
import warnings

import numpy as np

import checks
import npy_files
import run_folder
import run_record
from atomic_files import atomic_write, open_regular, replaceable, write_text
from contexts import DEFAULT_CONTEXTS, trained_kinds
from errors import Bands2VecError, RunError, shown
from metadata import METADATA_FILE

VECTORS_FILE = "vectors.npy"
SETTINGS_FILE = "vectors.json"  # beside vectors saved outside a run: their contexts and members
SETTINGS_MAX_BYTES = 10_000  # it holds a few words; more is not read
VECTORS_TSV = "vectors.tsv"
WORD2VEC_FILE = "vectors.txt"
# Above this many artists the text exports (about 0.7 KB an artist each) wait for `run.py export`.
EXPORT_MAX = 100_000


def write_vectors(folder, vectors):
    atomic_write(os.path.join(folder, VECTORS_FILE),
                 lambda f: np.save(f, np.asarray(vectors, np.float32)))


def write_settings(folder, kinds, members):
    """The settings of vectors saved outside a run (ArtistVectors.save), which no run.json says:
    the kinds of context they were trained on (what makes twins) and an ensemble's members."""
    write_text(os.path.join(folder, SETTINGS_FILE),
               json.dumps({"contexts": ",".join(kinds), "members": members}) + "\n")


def vector_settings(folder, columns):
    """(the contexts, the ensemble's members) of the vectors in `folder`: a run's, as its run.json
    says, or vectors saved outside a run, as their vectors.json says; the tutorial's contexts and
    one model if neither can say (opening the run reads run.json and says what is wrong with it).
    A RunError if the vectors' `columns` are not the members' dimensions."""
    if not os.path.lexists(os.path.join(folder, run_record.RUN_FILE)):
        settings = read_settings(folder)
        if settings is None:
            warnings.warn(f"{folder}: no {SETTINGS_FILE} (nor {run_record.RUN_FILE}) says how "
                          f"its vectors were trained: read as one model of the contexts "
                          f"{DEFAULT_CONTEXTS}, which its ties are told by", stacklevel=3)
        return settings or (DEFAULT_CONTEXTS, 1)
    try:
        options = run_record.read(folder).options
    except RunError:
        return DEFAULT_CONTEXTS, 1
    members = options.ensemble or 1
    expected = options.embedding_size * members
    if columns != expected:
        raise RunError(f"{folder}: its vectors have {columns:,} columns, and "
                       f"{run_record.RUN_FILE} says {members:,} member{'s' * (members > 1)} of "
                       f"{options.embedding_size:,} dimensions ({expected:,}): one of the two is "
                       f"damaged or another run's; put back the run's own")
    return options.contexts, members


def read_settings(folder):
    """(a --contexts spec, members) that write_settings wrote in `folder`, or None where it wrote
    none; a RunError naming the file where it cannot be read."""
    path = os.path.join(folder, SETTINGS_FILE)
    try:
        with open_regular(path) as f:
            settings = json.loads(f.read(SETTINGS_MAX_BYTES + 1)[:SETTINGS_MAX_BYTES])
        if not isinstance(settings, dict) or set(settings) != {"contexts", "members"}:
            raise ValueError("not an object of contexts and members")
        return (",".join(trained_kinds(settings["contexts"])),
                checks.whole("members", settings["members"], 1))
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RunError(f"{path}: unreadable ({error.strerror or error})") from None
    except (ValueError, UnicodeDecodeError, RecursionError, Bands2VecError) as error:
        raise RunError(f"{path}: damaged ({error})") from None


def read_vectors(folder, rows):
    """vectors.npy, which must hold `rows` vectors; a RunError naming it if missing, unreadable or
    damaged. Its header is checked first: a shape other than the artists', or a size other than the
    file's, is damage, found before memory is asked for what the header declares."""
    path = os.path.join(folder, VECTORS_FILE)
    try:
        with open_regular(path) as f:
            _check_declared(f, rows, path)
            f.seek(0)
            vectors = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except OSError as error:  # permissions, a folder or a FIFO in its place: nothing is damaged
        raise RunError(f"{path}: unreadable ({error.strerror or error})") from None
    except (ValueError, EOFError) as error:
        raise RunError(f"{path}: damaged ({str(error).split('. ')[0]})") from None
    except MemoryError:  # its header and size agree, and the machine cannot hold that much
        raise RunError(f"{path}: too large for this machine's memory") from None
    return checked_vectors(vectors, rows, path)


def _check_declared(f, rows, path):
    """A RunError unless the .npy header at `f` declares `rows` vectors of real numbers whose bytes
    are those the file holds after the header."""
    shape, dtype, size = npy_files.declared(f)
    _check_form(shape, dtype, rows, path)
    held = os.fstat(f.fileno()).st_size - f.tell()
    if held != size:
        raise RunError(f"{path}: damaged (its header declares {shape} {dtype}, {size:,} bytes, "
                       f"where it holds {held:,})")


def run_vectors(folder, rows):
    """The vectors a run saved (vectors.npy) for its `rows` artists; where they cannot be read, its
    checkpoint's, read with TensorFlow, with a warning; a RunError where neither can be."""
    try:
        return read_vectors(folder, rows)
    except RunError as error:
        return _checkpoint_instead(folder, error, rows)


def _checkpoint_instead(folder, reason, rows):
    """The checkpoint's vectors, where vectors.npy cannot be read (a run from before it, a damaged
    or unreadable copy), with a warning; a RunError naming both where neither can be read."""
    if not run_folder.has_checkpoint(folder):
        raise RunError(f"{reason}, and {_no_checkpoint(folder)}: "
                       f"put back its vectors.npy, or train the run anew")
    try:
        vectors = checked_vectors(checkpoint_vectors(folder), rows,
                                               "the checkpoint")
    except RunError as error:
        raise RunError(f"{reason}; {error}") from None
    path = os.path.join(folder, VECTORS_FILE)
    export = f"`{run_record.run_command('export', folder)}` writes vectors.npy"
    if not replaceable(path):  # a folder there, say: export would refuse it
        export = f"once what is at {path} is removed, {export}"
    warnings.warn(f"{reason}; read the vectors from the checkpoint with TensorFlow instead, "
                  f"which takes seconds ({export})", stacklevel=4)
    return vectors


def _no_checkpoint(folder):
    """Why the run at `folder` has no checkpoint to read: none, or one this user cannot reach."""
    state = os.path.join(run_folder.checkpoint_dir(folder), "checkpoint")
    try:
        os.stat(state)
    except FileNotFoundError:
        return "no checkpoint to read instead"
    except OSError as error:
        return f"its checkpoint cannot be read instead ({state}: {error.strerror})"
    return f"its checkpoint cannot be read instead ({state} is not a file)"


def checked_vectors(vectors, rows, source):
    """`vectors` as float32 if they are `rows` vectors of finite numbers, not all the same; else a
    RunError naming their `source`."""
    _check_form(vectors.shape, vectors.dtype, rows, source)
    with np.errstate(over="ignore"):  # numbers past float32's range become infinite: refused below
        vectors = vectors.astype(np.float32, copy=False)
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        damaged = np.count_nonzero(~finite)
        raise RunError(f"{source}: damaged ({damaged:,} of its vectors with NaN or infinite "
                       "values)")
    # No training leaves them so. Column 0 first: a million rows are seldom read whole for this.
    if len(vectors) > 1 and (vectors[:, 0] == vectors[0, 0]).all() and \
            (vectors == vectors[0]).all():
        raise RunError(f"{source}: damaged (every artist has the same vector)")
    return vectors


def _check_form(shape, dtype, rows, source):
    """A RunError naming `source` unless `shape` and `dtype` are those of `rows` vectors of real
    numbers."""
    if len(shape) != 2 or not shape[1] or not np.issubdtype(dtype, np.floating):
        raise RunError(f"{source}: damaged (holds {shown(shape)} {dtype}, not a matrix of "
                       f"vectors)")
    if shape[0] != rows:
        raise RunError(f"{source}: {shape[0]:,} vectors, not one for each of the {rows:,} "
                       f"artists in {METADATA_FILE}")


def write_tsv_vectors(folder, vectors):
    """vectors.tsv, for the projector (TensorBoard's and the standalone one) beside metadata.tsv."""
    atomic_write(os.path.join(folder, VECTORS_TSV),
                 lambda f: np.savetxt(f, vectors, delimiter="\t", fmt="%.6f"))


def write_word2vec(folder, names, vectors):
    """vectors.txt in word2vec text format, for gensim and friends."""
    write_word2vec_file(os.path.join(folder, WORD2VEC_FILE), word2vec_keys(names), vectors)


def write_word2vec_file(path, keys, vectors, binary=False, header=True):
    """`vectors` under `keys` in word2vec's format, as gensim's save_word2vec_format writes it: text
    with six decimals, or binary float32 (each vector ended by a newline, as word2vec's C tool)."""
    def write(f):
        if header:
            f.write(f"{len(keys)} {vectors.shape[1]}\n".encode("utf-8"))
        for key, vector in zip(keys, vectors):
            if binary:
                f.write(key.encode("utf-8") + b" " + vector.astype("<f4").tobytes() + b"\n")
            else:
                f.write((key + " " + " ".join(f"{x:.6f}" for x in vector) + "\n").encode("utf-8"))

    atomic_write(path, write)


def word2vec_keys(names):
    """Each name as a word2vec key, in order: its words joined with '_', since the format splits on
    spaces (`wolf parade` -> `wolf_parade`). A name without spaces keeps itself; a key that would
    be another artist's name or key gets a number (`wolf_parade_2` beside an artist `wolf_parade`),
    so every key is unique and names no other artist: queries find each artist by either."""
    taken, keys = set(names), []
    for name in names:
        key = "_".join(name.split()) or "_"
        if key != name and key in taken:
            number = 2
            while f"{key}_{number}" in taken:
                number += 1
            key = f"{key}_{number}"
        taken.add(key)
        keys.append(key)
    return keys


def checkpoint_vectors(folder):
    """The run's vectors from its latest checkpoint, read with TensorFlow: the embeddings variable,
    or an ensemble's members' side by side as the run stores them (ensemble.combined)."""
    from bands2vec_graph import member_variable, tf
    from checkpoint_files import latest_checkpoint, readable_checkpoint
    from ensemble import combined

    checkpoint = latest_checkpoint(folder)
    if checkpoint is None:
        raise RunError(f"{folder}: no checkpoint there; train with `python run.py` first")
    with readable_checkpoint(checkpoint) as prefix:
        try:
            reader = tf.train.load_checkpoint(prefix)
            members = 1
            while reader.has_tensor(member_variable(members)):
                members += 1
            tables = [reader.get_tensor(member_variable(member)) for member in range(members)]
            return combined(np.hstack(tables), members)
        except Exception as error:  # a damaged file raises errors of several kinds; all mean this
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            message = message.replace(prefix, checkpoint)  # the run's path, not the private one
            raise RunError(f"{checkpoint}: unreadable checkpoint ({message})") from None
