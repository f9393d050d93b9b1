"""The work after training that needs neither TensorFlow nor the run's folder, done in a second
process: it imports scikit-learn, openTSNE and matplotlib while TensorFlow loads and trains, then
computes k-means and the t-SNE plots while the run writes its other files (docs/benchmarks.md).

The run's own process keeps every file: the side process is given arrays and gives back arrays
and PNG bytes. Where it cannot start or dies, the work is done in the run's process instead.
"""
import contextlib
import fcntl
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import warnings
from multiprocessing.connection import Connection

from interrupts import signals_as_a_flag

HERE = os.path.dirname(os.path.abspath(__file__))  # where the side process finds these modules

# How long a closed side process is given to end before it is killed.
CLOSE_SECONDS = 5
# What the work imports, loaded as soon as the side process starts.
WARM_MODULES = ("sklearn.cluster", "openTSNE", "matplotlib.pyplot")


class InProcess:
    """The work done here, one call at a time: where there is one core, or no run to write."""

    def __init__(self):
        self._call = None

    def submit(self, function, *args, says=False):
        """Start `function(*args)` (with `say=` when it `says`); answer() gives its value."""
        self._call = (function, args, says)

    @property
    def pending(self):
        return self._call is not None

    def answer(self, say):
        """The submitted call's value (what it says goes to `say`); its exception is raised here."""
        (function, args, says), self._call = self._call, None
        return function(*args, say=say) if says else function(*args)

    def close(self):
        self._call = None

    def sharing_cores(self):
        """A context in which this process leaves the side process its core."""
        return contextlib.nullcontext()

    def peak_memory_mb(self):
        """The side process's peak resident memory so far (0 without one)."""
        return 0.0

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.close()


class SideProcess(InProcess):
    """The work done in a second Python process, started now so that its imports are done by the
    time the work comes. It is a fresh interpreter given this folder's modules (not a fork of a
    process with threads, nor multiprocessing's spawn, which would run the user's script again),
    in a process group of its own: Ctrl-C reaches this process, which stops it."""

    def __init__(self):
        super().__init__()
        # Two one-way pipes; where one cannot be made or the process started, they close when
        # collected.
        self._receiving, theirs_sending = multiprocessing.Pipe(duplex=False)
        theirs_receiving, self._sending = multiprocessing.Pipe(duplex=False)
        ends = []
        try:
            # Past the standard streams' numbers: where the caller closed those, a pipe can have
            # one, and the side process's stdin and stdout (/dev/null) would take its place.
            for end in (theirs_receiving, theirs_sending):
                ends.append(fcntl.fcntl(end.fileno(), fcntl.F_DUPFD_CLOEXEC, 3))
            start = (f"import sys; sys.path.insert(0, {HERE!r}); import side_process; "
                     f"side_process.serve{tuple(ends)}")
            self._process = subprocess.Popen(
                # -P: not the current folder first on its path, where anyone's sklearn.py would run.
                [sys.executable, "-P", "-c", start], pass_fds=ends, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, process_group=0)
        finally:
            theirs_receiving.close()
            theirs_sending.close()
            for end in ends:
                os.close(end)

    def submit(self, function, *args, says=False):
        super().submit(function, *args, says=says)
        try:
            with _pipe_errors_raised():
                self._sending.send(self._call)
        except OSError:
            pass  # it died: answer() does the work here

    def answer(self, say):
        try:
            while True:
                kind, value = self._receiving.recv()
                if kind == "say":
                    say(value)
                elif kind == "warning":
                    warnings.warn(value[0], value[1])
                else:
                    self._call = None
                    if kind == "error":
                        raise value
                    return value
        except (EOFError, OSError):  # it died (the kernel's OOM killer, say): the work is done here
            return super().answer(say)

    def sharing_cores(self):
        # numpy's BLAS threads would take every core from the side process's work.
        from threadpoolctl import threadpool_limits
        return threadpool_limits(1, user_api="blas")

    def peak_memory_mb(self):
        try:  # Linux's; elsewhere it is not counted
            with open(f"/proc/{self._process.pid}/status", encoding="ascii") as status:
                peak = next(line for line in status if line.startswith("VmHWM:"))
            return int(peak.split()[1]) / 1024
        except (OSError, StopIteration, ValueError):
            return 0.0

    def close(self):
        # It ends the run's life, often after Ctrl-C: a second one must not cut it short.
        with signals_as_a_flag():
            super().close()
            self._sending.close()
            self._receiving.close()
            if self._process.poll() is None:
                self._process.terminate()
            try:
                self._process.wait(timeout=CLOSE_SECONDS)
            except subprocess.TimeoutExpired:  # stopped (SIGSTOP), say: it must not hold the run
                self._process.kill()
                self._process.wait()


def started():
    """A SideProcess where a second core can run it beside this process, else InProcess."""
    if (os.cpu_count() or 1) < 2 or not sys.executable:
        return InProcess()
    try:
        return SideProcess()
    except OSError:  # no process to spare (a limit on processes, or on open files)
        return InProcess()


def serve(receiving, sending):
    """The side process: import, then answer calls until the run's process closes its pipe."""
    receiving, sending = Connection(receiving, writable=False), Connection(sending, readable=False)
    _ended_with_the_run()
    os.environ["MPLBACKEND"] = "Agg"  # PNG files only, whatever display there is
    for module in WARM_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # openTSNE is optional; what is missing fails in the call that needs it
    while True:
        try:
            function, args, says = receiving.recv()
        except (EOFError, OSError):
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                value = (function(*args, say=lambda line: sending.send(("say", line)))
                         if says else function(*args))
                reply = ("value", value)
            except KeyboardInterrupt:  # sent to it alone: it ends, the run does the work itself
                return
            except BaseException as error:  # each is the run's process's to raise
                reply = ("error", error)
        try:
            for warning in caught:
                sending.send(("warning", (str(warning.message), warning.category)))
            sending.send(reply)
        except Exception:  # the run's process is gone, or the reply cannot be pickled:
            return  # there, the call is made again in the run's process


def _ended_with_the_run():
    """Linux's: this process is killed when the run's process ends, however it ends (kill -9), not
    left to finish a t-SNE nobody will read."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _pipe_errors_raised():
    """A write to a closed pipe as an OSError (EPIPE), even where the caller left SIGPIPE at its
    default, which would kill this process without a word."""
    blocked = {signal.SIGPIPE}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        if signal.SIGPIPE not in previous:
            while signal.sigpending() & blocked:
                signal.sigtimedwait(blocked, 0)  # the one the failed write raised, taken
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
