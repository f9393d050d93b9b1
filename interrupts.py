"""Ctrl-C and SIGTERM held as a flag, where an exception raised at any point would break C code that
is running: TensorFlow's wait for a ps task, openTSNE's tree of points (a segmentation fault)."""
import contextlib
import signal
import threading


@contextlib.contextmanager
def signals_as_a_flag():
    """An Event that Ctrl-C and SIGTERM set, while it lasts, instead of raising (where this is not
    the main thread, no signal comes: the Event is never set)."""
    stopping = threading.Event()
    try:
        previous = {signum: signal.signal(signum, lambda *_: stopping.set())
                    for signum in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield stopping
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
