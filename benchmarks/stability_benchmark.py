"""How much of an answer is a draw of the seed: pairs of runs that differ only in their seed.

Runs of --seed 0 and --seed 1000, for one model and ensembles of 2, 3, 5 and 10 members, with the
tutorial's contexts and with labels.

Each run is `python run.py --no-plots` as a user starts it (the whole run timed: loading, training,
writing, the quality report; with --plots its t-SNE plots too, as `python run.py` makes them), with
default steps. A row gives the stability (mean
Jaccard of the two runs' 10 nearest neighbours over the same 400 artists, and how many of the 10 the
second keeps), the members' own agreement, the quality (genre, score and label agreement, the mean
of the two runs) and the whole run's seconds (the mean of the two), beside one model's.

    python benchmarks/stability_benchmark.py --data data/database.sqlite
"""
import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import bands2vec  # noqa: E402
import data_utils  # noqa: E402
from quality import STABILITY_SAMPLE, neighbour_stability  # noqa: E402

CONTEXT_SETS = ("genre,score", "genre,score,label")
ENSEMBLES = (1, 2, 3, 5, 10)
SEEDS = (0, 1000)  # far apart, as the issue measured single models; ensembles share no member
QUALITY = ("genre", "score", "label")


def whole_run(data, logs, name, contexts, ensemble, seed, plots):
    """Train one run with the command line; returns (its Run, the whole run's seconds, its CPU
    seconds: on a shared machine the wall clock counts the others' work too)."""
    command = [sys.executable, os.path.join(REPO, "run.py"), "--data", data, "--logdir", logs,
               "--run", name, "--contexts", contexts, "--ensemble", str(ensemble),
               "--seed", str(seed)] + ([] if plots else ["--no-plots"])
    mark, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return bands2vec.open_run(logs, name), time.perf_counter() - mark, _children_cpu() - cpu


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(data, contexts, ensemble, plots):
    """A row of the table: the two seeds' runs compared."""
    with tempfile.TemporaryDirectory() as logs:
        runs = [whole_run(data, logs, f"seed-{seed}", contexts, ensemble, seed, plots)
                for seed in SEEDS]
        (first, first_seconds, first_cpu), (second, second_seconds, second_cpu) = runs
        stability = neighbour_stability(first.vectors, second.vectors, k=10)
        quality = {kind: sum(run.quality[kind]["trained"] for run, _, _ in runs) / 2
                   for kind in QUALITY}
        agreement = first.quality["member_agreement"]["trained"]
        return {"contexts": contexts, "ensemble": ensemble, "steps": first.options.steps,
                **stability, "artists": len(first.vectors), "member_agreement": agreement,
                **quality,
                "seconds": (first_seconds + second_seconds) / 2,
                "cpu_seconds": (first_cpu + second_cpu) / 2,
                "training_seconds": (first.record.stats.seconds + second.record.stats.seconds) / 2}


def _cpu(row, single=None):
    """The row's CPU seconds, or their ratio to one model's; blank where not measured."""
    if row.get("cpu_seconds") is None or (single and single.get("cpu_seconds") is None):
        return ""
    return (f"{row['cpu_seconds']:.1f}" if single is None
            else f"{row['cpu_seconds'] / single['cpu_seconds']:.2f}x")


def table(result):
    lines = [f"Stability benchmark, {result['date']}, {result['machine']}, {result['artists']:,} "
             f"artists, runs of --seed {SEEDS[0]} and --seed {SEEDS[1]} with default steps, "
             f"whole runs {'with' if result.get('plots') else 'without'} plots "
             f"(load average {result['load']:.1f} at the start)", "",
             "| contexts | ensemble | Jaccard@10 | kept of 10 | members agree | genre@10 "
             "| score@10 | label@10 | whole run s | time / one model | CPU s | CPU / one model "
             "| training s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: |"]
    order = {contexts: number for number, contexts in enumerate(CONTEXT_SETS)}
    for row in sorted(result["rows"], key=lambda row: (order.get(row["contexts"], 0),
                                                      row["ensemble"])):
        single = next(other for other in result["rows"]
                      if other["contexts"] == row["contexts"] and other["ensemble"] == 1)
        agreement = ("" if row["member_agreement"] is None
                     else f"{row['member_agreement']:.3f}")
        lines.append(f"| {row['contexts']} | {row['ensemble']} | {row['jaccard']:.3f} "
                     f"| {row['kept']:.1f} | {agreement} | {row['genre']:.1%} "
                     f"| {row['score']:.1%} | {row['label']:.1%} | {row['seconds']:.1f} "
                     f"| {row['seconds'] / single['seconds']:.2f}x | {_cpu(row)} "
                     f"| {_cpu(row, single)} | {row['training_seconds']:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data",
                        default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--contexts", nargs="+", default=CONTEXT_SETS)
    parser.add_argument("--ensembles", nargs="+", type=int, default=ENSEMBLES)
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "stability.json"))
    parser.add_argument("--plots", action="store_true",
                        help="time whole runs with their t-SNE plots, as python run.py makes them")
    parser.add_argument("--more", action="store_true",
                        help="keep the rows --json has and measure only those it lacks")
    args = parser.parse_args()

    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load": os.getloadavg()[0], "artists": None, "sample": STABILITY_SAMPLE,
              "seeds": list(SEEDS), "plots": args.plots, "rows": []}
    if args.more and os.path.isfile(args.json):
        with open(args.json) as f:
            result = json.load(f)
    measured_rows = {(row["contexts"], row["ensemble"]) for row in result["rows"]}
    for contexts in args.contexts:
        for ensemble in args.ensembles:
            if (contexts, ensemble) in measured_rows:
                continue
            row = measured(args.data if args.data == data_utils.DEMO_SOURCE
                           else os.path.abspath(args.data), contexts, ensemble, args.plots)
            result["rows"].append(row)
            result["artists"] = row["artists"]
            print(f"{contexts} x{ensemble}: Jaccard {row['jaccard']:.3f}, "
                  f"{row['seconds']:.1f}s", file=sys.stderr, flush=True)
            with open(args.json, "w") as f:  # each row as it comes: the whole takes a while
                json.dump(result, f, indent=2)
                f.write("\n")
    print(table(result))


if __name__ == "__main__":
    main()
