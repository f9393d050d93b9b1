"""What the tests share: `python run.py` as a process (run to its end, several at once, or sent a
signal), the one-line refusal and the promise every hostile input must keep, and runs trained
quietly with the library."""
import concurrent.futures
import contextlib
import csv
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import run_record
import tensorboard_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_PY = os.path.join(REPO, "run.py")
# metadata.tsv's header: the artist, each context kind's columns, its k-means cluster.
METADATA_HEADER = ["artist", "genres", "primary_genre", "mean_score", "score_bucket", "reviews",
                   "labels", "main_label", "year", "era", "cluster"]

# Module attributes a test lowers in a run.py it starts, so that what takes minutes in use takes
# seconds here. Named once, here, for whoever renames the modules.
CHECKPOINT_SECONDS = "training.CHECKPOINT_SECONDS"  # seconds between periodic checkpoints
# how long a task waits for a ps task to answer
CLUSTER_WAIT_SECONDS = "cluster_training.WAIT_SECONDS"


def quiet(*lines):
    """A `say` that keeps the library's progress out of the test output."""


def train_run(logs, data="demo", plots=False, **options):
    """Train a run named `trained` with the library; returns its folder."""
    import bands2vec
    return bands2vec.train(data, bands2vec.TrainOptions(**options), logs=str(logs), name="trained",
                           plots=plots, say=quiet).folder


def write_file(path, text, mode="w"):
    """`text` written at `path`, its folder made; returns the path as text."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    return str(path)


def csv_copy(database, folder):
    """Every table of a SQLite file as `<table>.csv` in `folder`, as the Kaggle export writes them
    (a header row, NULL as a bare NA); returns the folder."""
    os.makedirs(folder, exist_ok=True)
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        tables = [name for (name,)
                  in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = connection.execute(f"SELECT * FROM {table}")
            with open(os.path.join(folder, f"{table}.csv"), "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow([column[0] for column in cursor.description])
                writer.writerows(["NA" if value is None else value for value in row]
                                 for row in cursor)
    return folder


def cli_command(*args, settings=None):
    """The command line of `python -u run.py ARGS`; with `settings`, {"module.ATTRIBUTE": value}, a
    script that sets those first, then runs run.py's main as run.py does."""
    if not settings:
        return [sys.executable, "-u", RUN_PY, *args]
    sets = "; ".join(f"import {name.rpartition('.')[0]}; {name} = {value!r}"
                     for name, value in settings.items())
    return [sys.executable, "-u", "-c",
            f"import sys; sys.path.insert(0, {REPO!r}); {sets}; import run; "
            f"sys.exit(run.main(sys.argv[1:]))", *args]


def _environment(env):
    return None if env is None else dict(os.environ, **env)


def run_cli(*args, stdin=None, cwd=REPO, env=None, timeout=600, settings=None, file_limit=None,
            memory_limit=None, prefix=()):
    """`python run.py ARGS` to its end, its output captured; `env` adds variables to the
    environment; `file_limit` is the largest file it may write, in bytes (as the shell's `ulimit -f`
    sets it), and `memory_limit` its largest address space (`ulimit -v`); `prefix` a command that
    runs it (setpriv...)."""
    def limit():
        for kind, size in ((resource.RLIMIT_FSIZE, file_limit), (resource.RLIMIT_AS, memory_limit)):
            if size:
                resource.setrlimit(kind, (size, size))
    return subprocess.run([*prefix, *cli_command(*args, settings=settings)], input=stdin, cwd=cwd,
                          env=_environment(env), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit)


def answer_lines(text):
    """The answer lines of `similar` or `query` output (`Artist: ...`), without its questions'
    headings and its notes on ties."""
    return [line for line in text.splitlines() if line.startswith("Artist: ")]


def run_many(commands, at_once=2):
    """{key: run_cli(*args)} for {key: args}, `at_once` processes at a time: a refusal is about a
    second of one core's work, most of it Python starting, so the machine's two cores take two."""
    with concurrent.futures.ThreadPoolExecutor(at_once) as pool:
        started = {key: pool.submit(run_cli, *args) for key, args in commands.items()}
        return {key: future.result() for key, future in started.items()}


def start_cli(*args, env=None, settings=None):
    """`python -u run.py ARGS` started, its stdout and stderr piped; the caller kills it when
    done."""
    return subprocess.Popen(cli_command(*args, settings=settings), cwd=REPO, env=_environment(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signalled(args, trigger, signum, settings=None, timeout=300, env=None, again=None):
    """Run `python run.py ARGS` and send it `signum` once a line of its output contains `trigger`,
    or, with a function for `trigger`, once trigger(process) is true (and, `again` seconds later, a
    second time); then wait for its end. Returns the result as subprocess.run does, the output with
    every line it printed."""
    # Python's faulthandler prints every thread's stack on SIGABRT, so a run that never ends says
    # where.
    process = start_cli(*args, settings=settings, env=dict(env or {}, PYTHONFAULTHANDLER="1"))
    try:
        lines = []
        if callable(trigger):
            deadline = time.monotonic() + timeout
            while not trigger(process):
                assert (process.poll() is None
                        and time.monotonic() < deadline), "it ended before the signal"
                time.sleep(0.01)
        else:
            for line in process.stdout:
                lines.append(line)
                if trigger in line:
                    break
        process.send_signal(signum)
        if again is not None:
            time.sleep(again)
            if process.poll() is None:
                process.send_signal(signum)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stderr = process.communicate(timeout=60)[1]
            raise AssertionError(f"still running {timeout} s after the signal; "
                                 f"where it waited:\n{stderr}")
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines) + stdout,
                                       stderr)


def has_open(path):
    """A trigger for `signalled`: the process has the file `path` open (read from /proc)."""
    def trigger(process):
        folder = f"/proc/{process.pid}/fd"
        try:
            return any(os.readlink(os.path.join(folder, fd)) == path for fd in os.listdir(folder))
        except OSError:  # a descriptor closed while we looked
            return False
    return trigger


def run_state(run_dir):
    """(state, missing, next command) that a run's run.json tells."""
    record = run_record.read(str(run_dir))
    return record.state, record.missing, record.next


def assert_refused(result, *fragments, lines=1):
    """Exit status 2, no traceback, and at most `lines` lines on stderr, each starting `run.py:`
    (or, from argparse, `run.py [train]:`), saying each of `fragments`."""
    said = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and 1 <= len(said) <= lines, result.stderr
    assert all(line.startswith(("run.py:", "run.py [train]:"))  # argparse's
               for line in said), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


def assert_promise(result, logs, code, *fragments, lines=2):
    """What run.py promises whatever its input: it ends with `code`, which is 0, 2 or 130, without
    a traceback; a refusal is at most two lines (or `lines`); each fragment is in what it said; and
    every run folder it leaves in `logs` has a run.json telling its state and no temporary file.
    Returns {run: its run.json}."""
    assert code in (0, 2, 130) and result.returncode == code, (
        result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    if code == 2:
        assert_refused(result, lines=lines)
    for fragment in fragments:
        assert fragment in result.stderr + result.stdout, (fragment, result.stderr)
    runs = {}
    for name in os.listdir(logs) if os.path.isdir(logs) else []:
        path = os.path.join(logs, name)
        if not name.endswith(".lock") and name != tensorboard_files.EXPERIMENT_FILE:
            runs[name] = run_record.read(path)  # a RunError if it has none
            assert runs[name].state in ("training", "interrupted", "incomplete",
                                        "finished"), runs[name]
            assert not [f for f in os.listdir(path) if f.startswith(".")], os.listdir(path)
    return runs


def free_ports(n):
    """`n` ports free on 127.0.0.1 (for the services a test starts there)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
