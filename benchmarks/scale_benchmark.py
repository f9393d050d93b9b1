"""`python run.py` with its defaults at several catalog sizes, one process per size, plots included:

synthetic Pitchfork-shaped catalogs (benchmarks/synthetic_catalog.py) of 10,000 and 100,000 artists
(and 1,000,000 with --million), and the full Pitchfork data. For each: the seconds of each phase
(load, train, write, plots), the whole run from outside, peak memory, genre@10 and score@10
(run.json), the concurrent steps, the periodic checkpoints and their seconds (what `kill -9` can
cost: at most the interval and a save), then the slope of time and memory against artists between
sizes (1.0 is linear).

    python benchmarks/scale_benchmark.py --data ../shared/data/pitchfork [--million]
"""
import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import data_utils  # noqa: E402
import demo_data  # noqa: E402
import run_record  # noqa: E402
from synthetic_catalog import write_tables  # noqa: E402


def measure(data, logs):
    """(run.json's record, wall seconds of the whole process) of one `python run.py --data data`."""
    started = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "--data", data, "--logdir", logs,
                    "--run", "r"], check=True, stdout=subprocess.DEVNULL)
    wall_seconds = time.perf_counter() - started
    return run_record.read(os.path.join(logs, "r")), wall_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data",
                        default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--million", action="store_true",
                        help="add a 1,000,000-artist catalog (about 20 min)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "scale.json"))
    args = parser.parse_args()

    sizes = [10_000, 100_000] + ([1_000_000] if args.million else [])
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, size in [("pitchfork", None)] + [(f"synthetic {n:,}", n) for n in sizes]:
            data = args.data if size is None else write_tables(
                demo_data.demo_tables(size), os.path.join(scratch, f"data-{size}"))
            record, wall_seconds = measure(
                data, os.path.join(scratch, f"logs-{name.replace(' ', '-')}"))
            rows.append({"catalog": name, "artists": record.artists, "steps": record.stats.steps,
                         "batch_size": record.options.batch_size,
                         "learning_rate": record.options.learning_rate,
                         "concurrent_steps": record.options.concurrent_steps,
                         "checkpoints": record.stats.checkpoints,
                         "checkpoint_seconds": record.stats.checkpoint_seconds,
                         "phases": record.phases,
                         "wall_seconds": wall_seconds, "peak_memory_mb": record.peak_memory_mb,
                         "genre": record.quality["genre"]["trained"],
                         "score": record.quality["score"]["trained"]})
            print(f"{name}: {wall_seconds:.1f}s", file=sys.stderr, flush=True)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "rows": rows}
    print(table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def slope(a, b, key):
    return math.log(b[key] / a[key]) / math.log(b["artists"] / a["artists"])


def table(result):
    lines = [f"Scale benchmark, {result['date']}, {result['machine']}, defaults, plots included",
             "",
             "| catalog | artists | steps | batch | rate | concurrent | load s | train s | write s "
             "| plots s | whole run s | peak MB | genre@10 | score@10 | checkpoints (s each) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in result["rows"]:
        p = row["phases"]
        each = row["checkpoint_seconds"] / row["checkpoints"] if row["checkpoints"] else 0
        lines.append(f"| {row['catalog']} | {row['artists']:,} | {row['steps']:,} | "
                     f"{row['batch_size']:,} | "
                     f"{row['learning_rate']:.3g} | {row['concurrent_steps']} | "
                     f"{p['load']:.1f} | {p['train']:.1f} | {p['write']:.1f} | {p['plots']:.1f} | "
                     f"{row['wall_seconds']:.1f} | {row['peak_memory_mb']:,.0f} | "
                     f"{row['genre']:.1%} | {row['score']:.1%} | "
                     f"{row['checkpoints']} ({each:.1f}) |")
    synthetic = [row for row in result["rows"] if row["catalog"].startswith("synthetic")]
    lines += ["", "| from | to | time slope | memory slope |", "| --- | --- | ---: | ---: |"]
    for a, b in zip(synthetic, synthetic[1:]):
        lines.append(f"| {a['artists']:,} | {b['artists']:,} | {slope(a, b, 'wall_seconds'):.2f} | "
                     f"{slope(a, b, 'peak_memory_mb'):.2f} |")
    lines += ["", "Slopes are d log(cost) / d log(artists): 1.0 grows linearly, below 1 slower "
                  "(fixed costs)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
