"""The whole default run against gensim's training alone, side by side in one run on the full data.

`python run.py --data DATA` (load, train, k-means, exports, projector files, quality, t-SNE
plots), timed from outside as a fresh process, alternates with gensim's Word2Vec training alone as
the training benchmark times it (train_benchmark.gensim_word2vec: the same settings, pairs from the
project's sampler); each --repeats times, and the medians' ratio is printed. The run's phases
(run.json) and its map's quality (trustworthiness, genre agreement of its t-SNE neighbours) come
with it.

    pip install -r benchmarks/requirements.txt
    python benchmarks/run_benchmark.py --data ../shared/data/pitchfork
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

import data_utils  # noqa: E402
import plots  # noqa: E402
import run_record  # noqa: E402
from artist_vectors import ArtistVectors  # noqa: E402
from quality import map_quality  # noqa: E402
from train_benchmark import gensim_word2vec  # noqa: E402


def whole_run(data, logs):
    """Seconds of `python run.py --data DATA` as a fresh process, and its folder."""
    folder = os.path.join(logs, f"run-{len(os.listdir(logs))}")
    started = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "--data", data,
                    "--logdir", logs, "--run", os.path.basename(folder)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, folder


def run_map_quality(folder):
    """map_quality of the run's t-SNE map (its cached coordinates) against its vectors."""
    vectors = ArtistVectors.load(folder)
    rows = plots.map_rows(vectors.artists.review_counts)
    with np.load(os.path.join(folder, plots.TSNE_CACHE)) as cached:
        coordinates = cached["coordinates"]
    return map_quality(vectors.unit_vectors[rows], coordinates,
                       vectors.artists.primary_genres[rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get(data_utils.DATA_ENV,
                                                         "../shared/data/pitchfork"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gensim-pairs", type=int, default=6_400_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each, alternating; the medians count (3)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "run.json"))
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")

    catalog = data_utils.load_catalog(args.data)
    runs, gensim, phases, loads = [], [], [], []
    with tempfile.TemporaryDirectory() as logs:
        for _ in range(args.repeats):
            loads.append(os.getloadavg()[0])
            seconds, folder = whole_run(args.data, logs)
            runs.append(seconds)
            phases.append(run_record.read(folder).phases)
            gensim.append(gensim_word2vec(catalog, args.seed, args.gensim_pairs)[1])
            print(f"run.py {seconds:.1f}s, gensim {gensim[-1]:.1f}s", file=sys.stderr, flush=True)
        quality = run_map_quality(folder)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average": statistics.median(loads), "data": catalog.source,
              "artists": len(catalog), "repeats": args.repeats,
              "tsne": "openTSNE" if plots.fast_tsne_installed() else "scikit-learn",
              "run_seconds": runs, "gensim_seconds": gensim,
              "ratio": statistics.median(runs) / statistics.median(gensim),
              "phases": {name: statistics.median(p[name] for p in phases) for name in phases[0]},
              "map_quality": quality}
    print(table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def table(result):
    run = statistics.median(result["run_seconds"])
    gensim = statistics.median(result["gensim_seconds"])
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in result["phases"].items())
    quality = result["map_quality"]
    return "\n".join([
        f"Whole run against gensim, {result['date']}, {result['machine']}, "
        f"{result['artists']:,} artists, medians of {result['repeats']} alternating runs, "
        f"load average {result['load_average']:.1f}",
        "",
        "| | s | / gensim |",
        "| --- | ---: | ---: |",
        f"| `python run.py`, whole ({result['tsne']} t-SNE) | {run:.1f} | "
        f"{result['ratio']:.2f}x |",
        f"| gensim's training alone | {gensim:.1f} | 1.00x |",
        "",
        f"The run's phases, s: {phases}",
        f"Its map: trustworthiness {quality['trustworthiness']:.4f}, "
        f"genre agreement of map neighbours {quality['genre']:.1%}"])


if __name__ == "__main__":
    main()
