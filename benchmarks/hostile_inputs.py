"""Hostile input: cases that try to break `python run.py` (bad data and options, catalogs too small, unusable
folders, a full disk, damaged runs, signals at every phase, kill -9, two writers at once), each run as whole
processes. Prints a table: the case, the exit status, the last line on stderr (else stdout), what is left in
the log directory, and whether that is clean: exit 0, 2 or 130, no traceback, at most two lines on stderr for
a refusal, and every run folder with a run.json that tells its state.

    python benchmarks/hostile_inputs.py --data ../shared/data/pitchfork [--only WORD]

The full-disk and read-only cases mount a small tmpfs (root on Linux); where that is refused they say so.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import data_utils  # noqa: E402
import logdir  # noqa: E402
from synthetic_catalog import write_tables  # noqa: E402

CASES = []


def case(function):
    CASES.append(function)
    return function


class Outcome:
    """How a process ended, and the log directory as it left it."""

    def __init__(self, returncode, stdout, stderr, logs):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.state, self.folders_clean = folder_state(logs)


def run(args, logs, trigger=None, send=signal.SIGTERM, stdin=None, checkpoint_seconds=None):
    """`python run.py ARGS --logdir LOGS` (with `checkpoint_seconds`, a script that first sets training's
    checkpoint interval); with `trigger`, a regex: `send` goes to the process when a line of its output matches,
    or a number: after that many seconds."""
    command = [sys.executable, "-u", os.path.join(REPO, "run.py"), *args, "--logdir", logs]
    if checkpoint_seconds:
        command[2:3] = ["-c", f"import sys; sys.path.insert(0, {REPO!r}); import training; "
                              f"training.CHECKPOINT_SECONDS = {checkpoint_seconds}; import run; "
                              f"sys.exit(run.main(sys.argv[1:]))"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT if trigger else subprocess.PIPE,
                               stdin=subprocess.PIPE if stdin else None, text=True, cwd=REPO)
    if isinstance(trigger, float):
        time.sleep(trigger)
        process.send_signal(send)
        stdout, _ = process.communicate(timeout=600)
        return Outcome(process.returncode, "", stdout, logs)
    if trigger:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if re.search(trigger, line):
                process.send_signal(send)
                break
        rest, _ = process.communicate(timeout=600)
        output = "".join(lines) + rest
        # Interleaved: the last line is the process's last word, on whichever stream.
        return Outcome(process.returncode, "", output, logs)
    stdout, stderr = process.communicate(input=stdin, timeout=900)
    return Outcome(process.returncode, stdout, stderr, logs)


def folder_state(logs):
    """What is in the log directory: each run and the state its run.json tells, or what is wrong."""
    if not os.path.isdir(logs):
        return "no log folder", True
    names = sorted(name for name in os.listdir(logs) if not name.endswith(".lock"))
    if not names:
        return "nothing written", True
    states, clean = [], True
    for name in names:
        path = os.path.join(logs, name)
        if not os.path.isdir(path):
            states.append(f"{name}: not a folder")
            continue
        try:
            info = logdir.read_run_info(path)
        except logdir.RunError:
            states.append(f"{name}: NO RUN.JSON")
            clean = False
            continue
        missing = f" (missing {', '.join(info['missing'])})" if info.get("missing") else ""
        states.append(f"{name}: {info.get('state')}{missing}, step {info['stats']['steps']:,}")
        clean &= not [f for f in os.listdir(path) if f.startswith(".")]  # no temporary file left
    return "; ".join(states), clean


def verdict(outcome):
    lines = outcome.stderr.strip().splitlines()
    clean = (outcome.returncode in (0, 2, 130) and "Traceback" not in outcome.stderr and outcome.folders_clean
             and (outcome.returncode != 2 or len([line for line in lines if line.startswith("run.py:")]) <= 2))
    last = (lines or outcome.stdout.strip().splitlines() or [""])[-1]
    return outcome.returncode, last, outcome.state, clean


@contextlib.contextmanager
def tmpfs(path, size):
    """A tmpfs of `size` mounted at `path`, or None where mounting is refused."""
    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                             capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", path], capture_output=True)


def csv_folder(folder, reviews, genres):
    import csv
    os.makedirs(folder, exist_ok=True)
    for name, header, rows in (("reviews.csv", ["reviewid", "artist", "score"], reviews),
                               ("genres.csv", ["reviewid", "genre"], genres)):
        with open(os.path.join(folder, name), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
    return folder


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

@case
def missing_data_path(tmp, data):
    return run(["--data", "/no/such/file.sqlite"], f"{tmp}/logs")


@case
def folder_without_the_data(tmp, data):
    os.makedirs(f"{tmp}/empty")
    return run(["--data", f"{tmp}/empty"], f"{tmp}/logs")


@case
def text_file_as_sqlite(tmp, data):
    with open(f"{tmp}/x.sqlite", "w") as f:
        f.write("not a database")
    return run(["--data", f"{tmp}/x.sqlite"], f"{tmp}/logs")


@case
def dev_null_as_data(tmp, data):
    return run(["--data", "/dev/null"], f"{tmp}/logs")


@case
def database_sqlite_is_a_folder(tmp, data):
    os.makedirs(f"{tmp}/d/database.sqlite")
    return run(["--data", f"{tmp}/d"], f"{tmp}/logs")


@case
def csv_missing_a_column(tmp, data):
    os.makedirs(f"{tmp}/d")
    with open(f"{tmp}/d/reviews.csv", "w") as f:
        f.write("reviewid,artist\n1,a\n")
    with open(f"{tmp}/d/genres.csv", "w") as f:
        f.write("reviewid,genre\n1,rock\n")
    return run(["--data", f"{tmp}/d"], f"{tmp}/logs")


@case
def every_genre_null(tmp, data):
    return run(["--data", csv_folder(f"{tmp}/d", [(1, "a", 7), (2, "b", 6)], [(1, "NA"), (2, "")])], f"{tmp}/logs")


@case
def binary_garbage_csv(tmp, data):
    folder = csv_folder(f"{tmp}/d", [], [(1, "rock")])
    with open(f"{folder}/reviews.csv", "wb") as f:
        f.write(b'reviewid,artist,score\n1,"unclosed,7\n\xff\xfe\x00\n')
    return run(["--data", folder], f"{tmp}/logs")


@case
def unreadable_database(tmp, data):
    shutil.copy(data, f"{tmp}/db.sqlite")
    os.chmod(f"{tmp}/db.sqlite", 0)
    outcome = run(["--data", f"{tmp}/db.sqlite", "--no-plots"], f"{tmp}/logs")
    if os.geteuid() == 0:
        outcome.stderr += "\n(as root, which reads any file: this only shows the run is unharmed)"
    return outcome


# ---------------------------------------------------------------------------------------------
# Catalogs too small, and options out of range
# ---------------------------------------------------------------------------------------------

def synthetic(tmp, n, seed=3):
    return write_tables(data_utils.demo_tables(n, seed=seed), f"{tmp}/d{n}")


@case
def two_artists(tmp, data):
    return run(["--data", synthetic(tmp, 2)], f"{tmp}/logs")


@case
def three_artists_sharing_nothing(tmp, data):
    return run(["--data", synthetic(tmp, 3)], f"{tmp}/logs")


@case
def five_artists(tmp, data):
    return run(["--data", synthetic(tmp, 5)], f"{tmp}/logs")


@case
def forty_artists_fewer_than_the_negatives(tmp, data):
    return run(["--data", synthetic(tmp, 40)], f"{tmp}/logs")


def option_case(*options):
    def run_case(tmp, data):
        return run(["--data", "demo", *options], f"{tmp}/logs")
    run_case.__name__ = " ".join(options)
    return case(run_case)


for _options in (["--steps", "0"], ["--batch-size", "1000000000"], ["--embedding-size", "10000000"],
                 ["--seed", "-1"], ["--seed", "4294967296"], ["--learning-rate", "inf"], ["--learning-rate", "nan"],
                 ["--num-sampled", "300"], ["--genre-share", "1.5"], ["--contexts", "genre,mood"],
                 ["--clusters", "0"], ["--learning-rate", "1e9"], ["--clusters", "100000", "--steps", "50"],
                 ["--embedding-size", "1", "--steps", "50"], ["--run", "x" * 300], ["--run", "a/b"]):
    option_case(*_options)


# ---------------------------------------------------------------------------------------------
# Log directories and disks
# ---------------------------------------------------------------------------------------------

@case
def logdir_is_a_file(tmp, data):
    with open(f"{tmp}/file", "w"):
        pass
    return run(["--data", "demo"], f"{tmp}/file")


@case
def run_exists_without_overwrite(tmp, data):
    demo_run(tmp)
    return run(["--data", "demo", "--run", "r"], f"{tmp}/logs")


@case
def read_only_logdir(tmp, data):
    with tmpfs(f"{tmp}/ro", "1m") as mount:
        if not mount:
            return None
        subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
        return run(["--data", "demo"], mount)


def full_disk(size, data_args):
    def run_case(tmp, data):
        with tmpfs(f"{tmp}/full", size) as mount:
            if not mount:
                return None
            return run([*data_args(data), "--run", "r"], mount)
    run_case.__name__ = f"full disk ({size})"
    return case(run_case)


full_disk("300k", lambda data: ["--data", "demo"])
full_disk("1m", lambda data: ["--data", "demo"])
full_disk("8m", lambda data: ["--data", data])


# ---------------------------------------------------------------------------------------------
# Damaged runs and questions
# ---------------------------------------------------------------------------------------------

def demo_run(tmp, steps="200"):
    result = run(["--data", "demo", "--run", "r", "--steps", steps, "--no-plots"], f"{tmp}/logs")
    assert result.returncode == 0, result.stderr
    return f"{tmp}/logs/r"


@case
def unknown_artist_among_questions(tmp, data):
    demo_run(tmp)
    return run(["similar", "-", "-k", "2"], f"{tmp}/logs", stdin="lune, marée\nno such band\n!?!\n")


@case
def an_artist_minus_itself(tmp, data):
    demo_run(tmp)
    return run(["query", "!?! - !?!"], f"{tmp}/logs")


@case
def k_of_a_billion(tmp, data):
    demo_run(tmp)
    return run(["similar", "!?!", "-k", "1000000000"], f"{tmp}/logs")


@case
def questions_without_a_run(tmp, data):
    return run(["similar", "coil"], f"{tmp}/logs")


@case
def truncated_vectors_npy(tmp, data):
    folder = demo_run(tmp)
    with open(f"{folder}/{logdir.VECTORS_FILE}", "r+b") as f:
        f.truncate(500)
    return run(["similar", "!?!", "-k", "2"], f"{tmp}/logs")


def truncate_checkpoint(folder):
    for name in os.listdir(f"{folder}/checkpoints"):
        if name.endswith(".data-00000-of-00001"):
            with open(f"{folder}/checkpoints/{name}", "r+b") as f:
                f.truncate(100)


@case
def truncated_checkpoint_and_vectors(tmp, data):
    folder = demo_run(tmp)
    truncate_checkpoint(folder)
    with open(f"{folder}/{logdir.VECTORS_FILE}", "r+b") as f:
        f.truncate(500)
    return run(["evaluate"], f"{tmp}/logs")


@case
def resume_from_a_truncated_checkpoint(tmp, data):
    folder = demo_run(tmp)
    truncate_checkpoint(folder)
    return run(["--resume", "--run", "r", "--steps", "300"], f"{tmp}/logs")


def read_only_run(command):
    def run_case(tmp, data):
        with tmpfs(f"{tmp}/ro", "20m") as mount:
            if not mount:
                return None
            shutil.copytree(demo_run(tmp), f"{mount}/r")
            subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
            return run([command, "--run", "r"], mount)
    run_case.__name__ = f"{command} on a read-only run"
    return case(run_case)


read_only_run("plot")
read_only_run("export")


# ---------------------------------------------------------------------------------------------
# Signals, kill -9 and two writers
# ---------------------------------------------------------------------------------------------

def signal_case(name, trigger, send, data_args):
    def run_case(tmp, data):
        return run([*data_args(data), "--run", "r"], f"{tmp}/logs", trigger=trigger, send=send)
    run_case.__name__ = name
    return case(run_case)


signal_case("SIGTERM while loading", 0.8, signal.SIGTERM, lambda data: ["--data", data])
signal_case("SIGTERM while training", r"average loss", signal.SIGTERM, lambda data: ["--data", data])
signal_case("SIGINT while clustering", r"^Clustering", signal.SIGINT, lambda data: ["--data", data])
signal_case("SIGTERM while measuring", r"^Measuring", signal.SIGTERM, lambda data: ["--data", data])
signal_case("SIGTERM during t-SNE", r"t-SNE iteration 100 ", signal.SIGTERM, lambda data: ["--data", data])


@case
def kill_9_while_training_then_resume(tmp, data):
    logs = f"{tmp}/logs"
    killed = run(["--data", data, "--run", "r", "--steps", "40000", "--no-plots"], logs, trigger=r"step\s+5000/",
                 send=signal.SIGKILL, checkpoint_seconds=2)
    info = logdir.read_run_info(f"{logs}/r")
    resumed = run(["--resume", "--run", "r", "--steps", str(info["stats"]["steps"] + 500), "--no-plots"], logs)
    resumed.stderr = (f"killed ({killed.returncode}) with its run.json saying {info['state']} at step "
                      f"{info['stats']['steps']:,}; resumed: " + (resumed.stderr.strip() or "exit 0"))
    return resumed


@case
def a_second_overwrite_while_training(tmp, data):
    logs = f"{tmp}/logs"
    first = subprocess.Popen([sys.executable, "-u", os.path.join(REPO, "run.py"), "--data", data, "--run", "same",
                              "--steps", "8000", "--no-plots", "--logdir", logs], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in first.stdout:
        if "average loss" in line:
            break
    second = run(["--data", "demo", "--run", "same", "--overwrite"], logs)
    first.communicate(timeout=600)
    second.stderr = second.stderr.strip() + f" (the first exited {first.returncode})"
    return second


# ---------------------------------------------------------------------------------------------
# A cluster's TF_CONFIG
# ---------------------------------------------------------------------------------------------

def cluster_case(name, config):
    def run_case(tmp, data):
        os.environ["TF_CONFIG"] = config
        try:
            return run(["--data", "demo"], f"{tmp}/logs")
        finally:
            del os.environ["TF_CONFIG"]
    run_case.__name__ = f"TF_CONFIG {name}"
    return case(run_case)


cluster_case("not JSON", "{not json")
cluster_case("index out of range", '{"cluster": {"chief": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]}, '
                                   '"task": {"type": "ps", "index": 3}}')
cluster_case("without a chief", '{"cluster": {"worker": ["127.0.0.1:1"], "ps": ["127.0.0.1:2"]}, '
                                '"task": {"type": "worker", "index": 0}}')


@case
def a_chief_whose_ps_never_answers(tmp, data):
    import cluster

    port = socket_port()
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"chief": [f"127.0.0.1:{socket_port()}"],
                                                      "ps": [f"127.0.0.1:{port}"]},
                                          "task": {"type": "chief", "index": 0}})
    try:
        outcome = run(["--data", "demo"], f"{tmp}/logs")
    finally:
        del os.environ["TF_CONFIG"]
    outcome.stderr = outcome.stderr.rstrip() + f" (after waiting {cluster.WAIT_SECONDS} s)"
    return outcome


def socket_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--only", help="the cases whose name has this word")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # run.py hears Ctrl-C when this runs in the background
    data = os.path.abspath(os.path.join(args.data, "database.sqlite") if os.path.isdir(args.data) else args.data)
    rows, started = [], time.perf_counter()
    for function in CASES:
        name = function.__name__.replace("_", " ")
        if args.only and args.only not in name:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            outcome = function(tmp, data)
            if outcome is None:
                rows.append((name, "-", "skipped: mounting a tmpfs was refused", "", ""))
                continue
            code, last, state, clean = verdict(outcome)
        rows.append((name, str(code), last, state, "yes" if clean else "NO"))
        print(f"{name}: {code}", file=sys.stderr, flush=True)
    print("| case | exit | last line | log folder | clean |\n| --- | ---: | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    print(f"\n{sum(row[4] == 'yes' for row in rows)} of {len(rows)} cases clean, in "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
