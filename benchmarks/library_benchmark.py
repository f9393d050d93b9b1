"""Answers in a blink: the library's figures on the full data, each timed as a whole process, in one
run:

1. `python run.py similar radiohead`: wall seconds and peak memory, median of --repeats processes;
2. 100 artists on standard input against one: the seconds the other 99 add;
3. a fresh Python that imports the library, opens the run and asks one most_similar: seconds
   inside it;
4. the notebook, examples/bands2vec.ipynb, executed on the demo catalog;
5. `python run.py` on the full data, end to end, median of 3, and the vectors it trains.

With --before DIR (a checkout of an earlier version, such as `git worktree add ../before HEAD~1`),
1 and 5 are timed for it too, alternating with this version's, and 5 checks both train the same
vectors for the seed.

    python benchmarks/library_benchmark.py --data ../shared/data/pitchfork [--before ../before]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import bands2vec  # noqa: E402
import data_utils  # noqa: E402
import vector_files  # noqa: E402


def whole_process(command, stdin=None, cwd=REPO):
    """(wall seconds, peak resident MB) of one process, from the kernel's accounting of it."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    process.stdin.write((stdin or "").encode())
    process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def medians(samples):
    walls, peaks = zip(*samples)
    return {"seconds": statistics.median(walls), "peak_mb": statistics.median(peaks)}


def alternate(commands, repeats):
    """{name: medians} of each command, run in turn `repeats` times so that drift hits
    them alike."""
    samples = {name: [] for name in commands}
    for _ in range(repeats):
        for name, (command, stdin) in commands.items():
            samples[name].append(whole_process(command, stdin))
    return {name: medians(values) for name, values in samples.items()}


def run_py(checkout, *args):
    return [sys.executable, os.path.join(checkout, "run.py"), *args]


def fresh_python_query(logs, repeats):
    """Seconds inside a fresh Python from the library's import to one most_similar's answer."""
    script = (f"import sys, time; started = time.perf_counter(); sys.path.insert(0, {REPO!r}); "
              f"import bands2vec; bands2vec.open_run({logs!r}).vectors.most_similar('radiohead'); "
              f"print(time.perf_counter() - started)")
    return statistics.median(float(subprocess.run([sys.executable, "-c", script], check=True,
                                                  capture_output=True, text=True).stdout)
                             for _ in range(repeats))


def notebook_seconds():
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(os.path.join(REPO, "examples", "bands2vec.ipynb"), as_version=4)
    with tempfile.TemporaryDirectory() as logs:
        os.environ.update({data_utils.DATA_ENV: data_utils.DEMO_SOURCE, "BANDS2VEC_LOGS": logs})
        started = time.perf_counter()
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": os.path.join(REPO, "examples")}}).execute()
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data",
                        default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--before", help="a checkout of an earlier version, timed beside this one")
    parser.add_argument("--repeats", type=int, default=5, help="processes per query figure (5)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "library.json"))
    args = parser.parse_args()
    data = os.path.abspath(args.data)

    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "repeats": args.repeats, "before": args.before}
    with tempfile.TemporaryDirectory() as scratch:
        # The run to ask is trained in a process of its own: a child forked from a process that
        # holds a trained run would count the parent's pages in its own peak memory.
        logs = os.path.join(scratch, "logs")
        whole_process(run_py(REPO, "--data", data, "--logdir", logs, "--run", "full", "--no-plots"))
        where = ["--logdir", logs, "--run", "full"]
        artists = bands2vec.open_run(logs, "full").artists
        top = np.argsort(-artists.review_counts, kind="stable")[:100]
        hundred = "".join(artists.names[i] + "\n" for i in top)
        versions = {"now": REPO,
                    **({"before": os.path.abspath(args.before)} if args.before else {})}
        similar = alternate({name: (run_py(checkout, "similar", "radiohead", *where), None)
                             for name, checkout in versions.items()}, args.repeats)
        stdin = alternate({"one": (run_py(REPO, "similar", "-", *where), "radiohead\n"),
                           "hundred": (run_py(REPO, "similar", "-", *where), hundred)},
                          args.repeats)
        result.update(similar=similar, stdin=stdin,
                      fresh_python_seconds=fresh_python_query(logs, args.repeats))
        print("queries done", file=sys.stderr, flush=True)

        trained = {}
        for repeat in range(3):
            for name, checkout in versions.items():
                folder = os.path.join(scratch, f"train-{name}")
                trained.setdefault(name, []).append(whole_process(
                    run_py(checkout, "--data", data, "--logdir", folder, "--run", str(repeat)),
                    cwd=checkout))
                run_dir = os.path.join(folder, str(repeat))
                vectors = (np.load(os.path.join(run_dir, vector_files.VECTORS_FILE))
                           if name == "now" else vector_files.checkpoint_vectors(run_dir))
                result.setdefault("vectors", {})[name] = vectors
        result["train"] = {name: medians(samples) for name, samples in trained.items()}
        vectors = result.pop("vectors")
        result["same_vectors_as_before"] = (bool(np.array_equal(vectors["now"], vectors["before"]))
                                            if "before" in vectors else None)
    result["notebook_demo_seconds"] = notebook_seconds()
    print(table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def table(result):
    similar, stdin, train = result["similar"], result["stdin"], result["train"]
    lines = [f"Library benchmark, {result['date']}, {result['machine']}, full data, "
             f"medians of whole processes", "",
             "| figure | now | before | now / before |", "| --- | ---: | ---: | ---: |"]

    def row(label, now, before, unit):
        ratio = f"{now / before:.2f}" if before else ""
        lines.append(f"| {label} | {now:{unit}} | "
                     f"{'' if before is None else format(before, unit)} | {ratio} |")

    before = "before" in similar
    row("`python run.py similar radiohead`, s", similar["now"]["seconds"],
        similar["before"]["seconds"] if before else None, ".2f")
    row("the same, peak MB", similar["now"]["peak_mb"],
        similar["before"]["peak_mb"] if before else None, ".0f")
    row("`python run.py` on the full data, s (median of 3)", train["now"]["seconds"],
        train["before"]["seconds"] if before else None, ".1f")
    lines += ["",
              f"100 artists on standard input: {stdin['hundred']['seconds']:.2f} s, against "
              f"{stdin['one']['seconds']:.2f} s for one "
              f"({stdin['hundred']['seconds'] - stdin['one']['seconds']:+.2f} s)",
              f"A fresh Python, from importing the library to one most_similar's answer: "
              f"{result['fresh_python_seconds']:.3f} s",
              f"The notebook on the demo catalog: {result['notebook_demo_seconds']:.1f} s"]
    if result["same_vectors_as_before"] is not None:
        lines.append(f"Same vectors as before for the same seed: "
                     f"{'yes' if result['same_vectors_as_before'] else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
