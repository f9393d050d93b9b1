"""Ctrl-C and SIGTERM held as a flag, where an exception raised at any point would break C code that
is running (TensorFlow's wait for a ps task, its graph, its checkpoints; openTSNE's tree of points)
or leave half done what must be whole."""
import contextlib
import signal
import threading


# Besides Ctrl-C, what stops a run as it does: SIGTERM, and SIGHUP where its terminal is closed.
STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                         if hasattr(signal, name))


# Held signals wait for what holds them, but the third is raised at once: that may block for ever.
FORCED_AFTER = 3
# Every stop held: one that raised nothing came as the work ended, too late to stop any of it.
HELD_STOPS = []
# Set by the library, as it still holds the signals, once a run is complete: from then on a stop has
# nothing left to stop. The command line's own handler holds such a stop, and clears this.
RUN_COMPLETE = []


@contextlib.contextmanager
def signals_as_a_flag():
    """An Event that Ctrl-C and the STOPPING_SIGNALS set, while it lasts, instead of raising (where
    this is not the main thread, no signal comes: the Event is never set)."""
    stopping, heard = threading.Event(), []

    def held(*_):
        heard.append(True)
        HELD_STOPS.append(True)
        stopping.set()
        if len(heard) >= FORCED_AFTER:  # what is held blocks: the user insists
            raise KeyboardInterrupt

    try:
        previous = {signum: signal.signal(signum, held)
                    for signum in (signal.SIGINT, *STOPPING_SIGNALS)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield stopping
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM held while it lasts and raised as a KeyboardInterrupt at its end: for work
    that must end whole (a checkpoint), or that runs in TensorFlow's C++, out of which an interrupt
    raised inside comes mangled into another error."""
    with signals_as_a_flag() as stopping:
        yield
    if stopping.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and the STOPPING_SIGNALS held while it lasts, then given at its end, as Ctrl-C, to
    the handlers before it: for a few lines that must not be parted (a file made, and its name
    kept to remove it), wherever they run (in a signals_as_a_flag, the stop sets its flag)."""
    stopping = None
    try:
        with signals_as_a_flag() as stopping:
            yield
    finally:
        if stopping is not None and stopping.is_set():
            signal.raise_signal(signal.SIGINT)
