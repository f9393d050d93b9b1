"""The work after training that needs neither TensorFlow nor the run's folder, done in a second
process: it imports scikit-learn, openTSNE and matplotlib while TensorFlow loads and trains, then
computes k-means and the t-SNE plots while the run writes its other files (docs/benchmarks.md).

The run's own process keeps every file: the side process is given arrays and gives back arrays
and PNG bytes. Where it cannot start or dies, the work is done in the run's process instead.
"""
import contextlib
import multiprocessing
import os
import signal
import warnings

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

    def __enter__(self):
        return self

    def __exit__(self, *error):
        self.close()


class SideProcess(InProcess):
    """The work done in a second Python process, started now so that its imports are done by the
    time the work comes."""

    def __init__(self):
        super().__init__()
        context = multiprocessing.get_context("spawn")  # not a fork of a process with threads
        self._connection, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(theirs,), daemon=True,
                                        name="bands2vec side process")
        self._process.start()
        theirs.close()

    def submit(self, function, *args, says=False):
        super().submit(function, *args, says=says)
        try:
            self._connection.send(self._call)
        except OSError:
            pass  # it died: answer() does the work here

    def answer(self, say):
        try:
            while True:
                kind, value = self._connection.recv()
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

    def close(self):
        super().close()
        self._connection.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def started():
    """A SideProcess where a second core can run it beside this process, else InProcess."""
    if (os.cpu_count() or 1) < 2:
        return InProcess()
    return SideProcess()


def _serve(connection):
    """The side process: import, then answer calls until the run's process closes the pipe."""
    # Ctrl-C reaches the whole process group: the run's process stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import importlib
    for module in WARM_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # openTSNE is optional; what is missing fails in the call that needs it
    while True:
        try:
            function, args, says = connection.recv()
        except (EOFError, OSError):
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                value = (function(*args, say=lambda line: connection.send(("say", line)))
                         if says else function(*args))
                reply = ("value", value)
            except BaseException as error:  # each is the run's process's to raise
                reply = ("error", error)
        try:
            for warning in caught:
                connection.send(("warning", (str(warning.message), warning.category)))
            connection.send(reply)
        except Exception:  # the run's process is gone, or the reply cannot be pickled:
            return  # there, the call is made again in the run's process
