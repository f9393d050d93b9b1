"""The standard streams as run.py writes them: control characters and the characters the output's
encoding lacks written as escapes, and their errors (a full disk, a file-size limit) named."""
import codecs
import contextlib
import errno
import json
import os
import sys

from atomic_files import os_advice

# Control characters (and the line and paragraph separators, the overrides of text direction)
# that names from the data or files in a shared log folder could carry, written as escapes: they
# cannot move the cursor, hide a line or break one.
# JSON reads the same escapes, so a --json answer stays the same JSON.
CONTROLS = {code: f"\\u{code:04x}" for code in [*range(0x20), *range(0x7f, 0xa0), 0x2028, 0x2029,
                                                *range(0x202a, 0x202f), *range(0x2066, 0x206a)]
            if chr(code) not in "\n\t"}


def _json_escapes(error):
    """A codec's error handler: the characters it cannot encode as JSON's escapes (`\\u00f6`, a
    surrogate pair past the first plane), which a --json answer reads as the same text."""
    text = error.object[error.start:error.end]
    return json.dumps(text, ensure_ascii=True)[1:-1], error.end


codecs.register_error("json-escape", _json_escapes)
STANDARD_OUTPUT = "standard output"  # how a message names it (a full disk, a size limit)


class EscapedStream:
    """A standard stream that writes CONTROLS as escapes, and so the characters its encoding
    cannot write (PYTHONIOENCODING=ascii), saying so once on `notes`; its OSErrors name it (as
    file objects' errors name no file)."""
    noted = False
    # Whether the work goes on when the output's reader has gone (`| head`): a training run's
    # lines are a log, and training is not to be lost for want of a reader.
    outlives_reader = False

    def __init__(self, stream, notes, lossy=False):
        # `lossy`: a write that fails is dropped, and the rest go to /dev/null: stderr's notes
        # and errors that cannot be shown (a full disk) must not cost the answers.
        self.stream, self.notes, self.lossy = stream, notes, lossy

    def write(self, text):
        text = text.translate(CONTROLS)
        return self._done(lambda: self._write(text))

    def flush(self):
        return self._done(self.stream.flush)

    def _write(self, text):
        try:
            return self.stream.write(text)
        except UnicodeEncodeError:
            self._note()
            encoding = self.stream.encoding
            return self.stream.write(text.encode(encoding, "json-escape").decode(encoding))

    def _done(self, act):
        try:
            with self._named():
                return act()
        except OSError as error:
            if not (self.lossy or self.outlives_reader and isinstance(error, BrokenPipeError)):
                raise
            self._to_nowhere()
            return act()

    def _to_nowhere(self):
        """The stream pointed at /dev/null (to_nowhere), said once on `notes`."""
        to_nowhere(self.stream)
        with contextlib.suppress(OSError):  # the notes may have gone with it (2>&1 | head)
            self.notes.write("run.py: note: the reader of the output has gone; the run goes on "
                             "without showing its lines\n")

    @contextlib.contextmanager
    def _named(self):
        try:
            yield
        except OSError as error:
            if error.filename is None and self.stream is sys.__stdout__:
                error.filename = STANDARD_OUTPUT
            raise

    def _note(self):
        if not EscapedStream.noted and self.notes:
            EscapedStream.noted = True
            self.notes.write(f"run.py: note: the output's encoding, {self.stream.encoding}, cannot "
                             f"write every character: those are written as \\u escapes; set "
                             f"PYTHONIOENCODING=utf-8 (or a UTF-8 locale) to see them\n")

    def __getattr__(self, name):
        return getattr(self.stream, name)


def one_line(message):
    """A message as the one line it is meant to be: a line break in it (a folder's name may hold
    one) written as an escape, as CONTROLS writes the other control characters."""
    return message.replace("\n", "\\u000a")


def json_text(value, indent=None):
    """`value` as JSON, valid wherever it is written: no NaN (not JSON: a value that is not a
    number is refused), and text past ASCII as it is only where standard output writes UTF-8,
    else as \\u escapes (JSON is UTF-8: latin-1's byte for é would not be JSON)."""
    utf8 = codecs.lookup(getattr(sys.stdout, "encoding", None) or "ascii").name == "utf-8"
    return json.dumps(value, indent=indent, ensure_ascii=not utf8, allow_nan=False)


def to_nowhere(stream):
    """`stream`'s descriptor pointed at /dev/null, which takes what is left in its buffer."""
    nowhere = os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, stream.fileno())
    os.close(nowhere)


def output_error_line(error):
    """Standard output's error as one line: the advice for a run's files (another --logdir) is
    no help there."""
    reason = error.strerror or str(error)
    return f"{STANDARD_OUTPUT}: {reason}; " + (
        os_advice(reason)[2:] if error.errno == errno.EFBIG else
        "the output could not all be written: send it to a file on a disk with room, or to "
        "a pipe")
