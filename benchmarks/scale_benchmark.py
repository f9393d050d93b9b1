"""`python run.py` with its defaults at several catalog sizes, one process per size, plots included:

synthetic Pitchfork-shaped catalogs (benchmarks/synthetic_catalog.py) of 10,000 and 100,000 artists (and
1,000,000 with --million), and the full Pitchfork data. For each: the seconds of each phase (load, train,
write, plots), the whole run from outside, peak memory, genre@10 and score@10 (run.json), the concurrent
steps, the periodic checkpoints and their seconds (what `kill -9` can cost: at most the interval and a
save), then the slope of time and memory against artists between sizes (1.0 is linear).

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
import logdir  # noqa: E402
from synthetic_catalog import write_tables  # noqa: E402


def measure(data, logs):
    """run.json of one `python run.py --data data`, with the wall time of the whole process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "--data", data, "--logdir", logs, "--run", "r"],
                   check=True, stdout=subprocess.DEVNULL)
    info = logdir.read_run_info(os.path.join(logs, "r"))
    info["wall_seconds"] = time.perf_counter() - started
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--million", action="store_true", help="add a 1,000,000-artist catalog (about 20 min)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "scale.json"))
    args = parser.parse_args()

    sizes = [10_000, 100_000] + ([1_000_000] if args.million else [])
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, size in [("pitchfork", None)] + [(f"synthetic {n:,}", n) for n in sizes]:
            data = args.data if size is None else write_tables(data_utils.demo_tables(size),
                                                               os.path.join(scratch, f"data-{size}"))
            info = measure(data, os.path.join(scratch, f"logs-{name.replace(' ', '-')}"))
            rows.append({"catalog": name, "artists": info["artists"], "steps": info["stats"]["steps"],
                         "batch_size": info["options"]["batch_size"], "learning_rate": info["options"]["learning_rate"],
                         "concurrent_steps": info["options"]["concurrent_steps"],
                         "checkpoints": info["stats"]["checkpoints"],
                         "checkpoint_seconds": info["stats"]["checkpoint_seconds"],
                         "phases": info["phases"],
                         "wall_seconds": info["wall_seconds"], "peak_memory_mb": info["peak_memory_mb"],
                         "genre": info["quality"]["genre"]["trained"], "score": info["quality"]["score"]["trained"]})
            print(f"{name}: {info['wall_seconds']:.1f}s", file=sys.stderr, flush=True)
    result = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "rows": rows}
    print(table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def slope(a, b, key):
    return math.log(b[key] / a[key]) / math.log(b["artists"] / a["artists"])


def table(result):
    lines = [f"Scale benchmark, {result['date']}, {result['machine']}, defaults, plots included", "",
             "| catalog | artists | steps | batch | rate | concurrent | load s | train s | write s | plots s "
             "| whole run s | peak MB | genre@10 | score@10 | checkpoints (s each) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in result["rows"]:
        p = row["phases"]
        each = row["checkpoint_seconds"] / row["checkpoints"] if row["checkpoints"] else 0
        lines.append(f"| {row['catalog']} | {row['artists']:,} | {row['steps']:,} | {row['batch_size']:,} | "
                     f"{row['learning_rate']:.3g} | {row['concurrent_steps']} | "
                     f"{p['load']:.1f} | {p['train']:.1f} | {p['write']:.1f} | {p['plots']:.1f} | "
                     f"{row['wall_seconds']:.1f} | {row['peak_memory_mb']:,.0f} | {row['genre']:.1%} | "
                     f"{row['score']:.1%} | {row['checkpoints']} ({each:.1f}) |")
    synthetic = [row for row in result["rows"] if row["catalog"].startswith("synthetic")]
    lines += ["", "| from | to | time slope | memory slope |", "| --- | --- | ---: | ---: |"]
    for a, b in zip(synthetic, synthetic[1:]):
        lines.append(f"| {a['artists']:,} | {b['artists']:,} | {slope(a, b, 'wall_seconds'):.2f} | "
                     f"{slope(a, b, 'peak_memory_mb'):.2f} |")
    lines += ["", "Slopes are d log(cost) / d log(artists): 1.0 grows linearly, below 1 slower (fixed costs)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
