"""The docs run: every command and Python block of README.md and docs/*.md, in the order written, in
a fresh copy of the repository with the full data where the README places it (data/database.sqlite),
and each output a doc shows compared with what the command prints, its figures allowed to vary."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import REPO, free_ports

# The README first, then the docs it sends a newcomer to first, then the others: the questions of
# docs/queries.md ask the README's run before docs/contexts.md trains two more beside it.
FIRST = ["README.md", "docs/queries.md", "docs/runs.md"]
DOCS = FIRST + sorted(set(os.path.join("docs", name)
                          for name in os.listdir(os.path.join(REPO, "docs"))
                          if name.endswith(".md")) - set(FIRST))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
SECONDS_A_COMMAND = 1800

# Commands the docs show that the docs test does not run, each with its reason.
NOT_RUN = {
    "python -m pytest": "it is this test suite",
    "git worktree add": "it needs the repository's history, which a copy has not",
}
# A benchmark takes minutes to an hour: the docs test checks its command line, and the figures the
# docs show are those it printed when it last ran (docs/benchmarks.md).
BENCHMARK = "python benchmarks/"
# Commands that serve until stopped: started, asked once they answer, then stopped.
SERVERS = {"tensorboard": "--port {port} --host 127.0.0.1"}
# The names docs/cluster.md and the README give a cluster's hosts.
HOSTS = re.compile(r"\b([a-g]):2222\b")


def fenced_blocks(path):
    """[(line, language, text)] of a Markdown file's fenced blocks."""
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        text = f.read()
    return [(text[:match.start()].count("\n") + 1, match.group(1), match.group(2))
            for match in FENCE.finditer(text)]


def shell_steps(text):
    """[(command, expected output lines)] of a shell block: `$ ` lines with the output under them,
    or, without prompts, each command (a line ending inside quotes goes on to the next)."""
    steps, pending = [], ""
    prompted = any(line.startswith("$ ") for line in text.splitlines())
    for line in text.splitlines():
        if prompted and not line.startswith("$ "):
            if steps and line.strip():
                steps[-1][1].append(line)
            continue
        pending += (line[2:] if prompted else line) + "\n"
        if pending.count("'") % 2 == 0 and pending.strip() and not pending.lstrip().startswith("#"):
            steps.append((pending.strip(), []))
            pending = ""
        elif pending.lstrip().startswith("#"):
            pending = ""
    return steps


def pattern_of(expected_line):
    """A regular expression matching the line with any figures in place of its own, and anything in
    place of a `...` (a path of the writer's machine, say)."""
    parts = [NUMBER.split(part) for part in expected_line.split("...")]
    return re.compile(".*".join(r"[-\d,.]+".join(map(re.escape, numbers)) for numbers in parts)
                      + r"\s*")


def assert_prints(result, expected):
    """Each line the doc shows is printed, in order, figures aside (the doc may leave lines out):
    the output, then what stderr said."""
    printed = iter(result.stdout.splitlines() + result.stderr.splitlines())
    for want in expected:
        assert any(pattern_of(want).fullmatch(got) for got in printed), \
            f"the doc shows\n  {want}\nwhich the command did not print:\n" \
            f"{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory, full_data):
    """The repository's files as a clone has them, with database.sqlite in data/ as the README
    says."""
    home = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        if os.path.isfile(os.path.join(REPO, name)):
            os.makedirs(home / os.path.dirname(name), exist_ok=True)
            shutil.copy2(os.path.join(REPO, name), home / name)
    database = (full_data if full_data.endswith(".sqlite")
                else os.path.join(full_data, "database.sqlite"))
    os.makedirs(home / "data", exist_ok=True)
    os.symlink(os.path.realpath(database), home / "data" / "database.sqlite")
    return home


def environment(home):
    """The user's shell: this Python first on the PATH, no test-only settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BANDS2VEC_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env["PYTHONPATH"] = str(home)
    return env


def run_shell(command, home):
    return subprocess.run(["bash", "-c", command], cwd=home, env=environment(home),
                          capture_output=True, text=True, timeout=SECONDS_A_COMMAND)


def serve_once(command, home):
    """Start a server the docs show, on a free port of 127.0.0.1, wait until it answers, then stop
    it."""
    port = free_ports(1)[0]
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command} {SERVERS[command.split()[0]]}".format(port=port)],
        cwd=home, env=environment(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            assert process.poll() is None, process.stdout.read().decode()
            time.sleep(0.5)
        pytest.fail(f"{command} did not answer on port {port} within 120 s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def run_cluster(command, home):
    """A cluster command names hosts a to g: every task of that cluster started on 127.0.0.1, the
    command's own task among them, all run to their end."""
    hosts = sorted(set(HOSTS.findall(command)))
    ports = dict(zip(hosts, free_ports(len(hosts))))
    local = HOSTS.sub(lambda match: f"127.0.0.1:{ports[match.group(1)]}", command)
    config = re.search(r"TF_CONFIG='(.*?)'", local, re.S).group(1)
    tasks = re.findall(r'"(chief|worker|ps)": \[([^]]*)\]', config)
    commands = []
    for kind, addresses in tasks:
        for index in range(addresses.count(":")):
            task = f'"task": {{"type": "{kind}", "index": {index}}}'
            commands.append(re.sub(r'"task": \{[^}]*\}', task, local))
    # The demo in a log folder of its own, so that the docs after it still ask the README's run.
    trial = "demo --logdir logs-cluster"
    processes = [subprocess.Popen(["bash", "-c", line.replace("DATA", trial)], cwd=home,
                                  env=environment(home), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)
                 for line in commands]
    try:
        for process in processes:
            out, err = process.communicate(timeout=SECONDS_A_COMMAND)
            assert process.returncode == 0, err
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def run_step(command, expected, home):
    if any(command.startswith(skipped) for skipped in NOT_RUN):
        return
    if BENCHMARK in command:  # `nice -n 5 python benchmarks/...` too
        command = command.split("#")[0] + " --help"
    if command.split()[0] in SERVERS:
        return serve_once(command, home)
    if "TF_CONFIG=" in command:
        return run_cluster(command, home)
    result = run_shell(command, home)
    refused = any(line.startswith("run.py: error: ") for line in expected)
    assert result.returncode == (2 if refused else 0), f"{command}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert_prints(result, expected)


def run_python(text, home):
    result = subprocess.run([sys.executable, "-c", text], cwd=home, env=environment(home),
                            capture_output=True, text=True, timeout=SECONDS_A_COMMAND)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_every_block_of_the_docs_runs(fresh_clone):
    """Each doc's blocks in the order written; the docs in the order of DOCS, one after another in
    one clone, so that a run the README trains is there for the docs after it."""
    for doc in DOCS:
        for line, language, text in fenced_blocks(doc):
            try:
                run_block(language, text, fresh_clone)
            except AssertionError as error:
                raise AssertionError(f"{doc}, the block at line {line}: {error}") from None


def run_block(language, text, home):
    if language == "python":
        run_python(text, home)
    elif language in ("", "sh", "bash", "shell"):
        for command, expected in shell_steps(text):
            run_step(command, expected, home)
    else:
        assert language == "text", f"a block in {language!r}, which the docs test cannot run"


def test_the_block_reader_sees_every_command():
    """What the runner runs: prompts with their output, commands on two lines, comments aside."""
    steps = shell_steps("$ python run.py similar a\nArtist: b, Similarity: 0.5\n\n"
                        "$ python run.py x\n")
    assert steps == [("python run.py similar a", ["Artist: b, Similarity: 0.5"]),
                     ("python run.py x", [])]
    steps = shell_steps("# on a:\nTF_CONFIG='{\"a\":\n  1}' python run.py\n"
                        "python run.py plot  # again\n")
    assert steps == [("TF_CONFIG='{\"a\":\n  1}' python run.py", []),
                     ("python run.py plot  # again", [])]
    assert pattern_of("Similarity: 0.838, 8,712 artists").fullmatch("Similarity: 0.5, 12 artists")
    assert not pattern_of("Artist: so, Similarity: 0.838").fullmatch(
        "Artist: yo, Similarity: 0.838")
    assert pattern_of("answering from .../logs (8,712 artists)").fullmatch(
        "answering from /t/logs (5 artists)")
