"""Training speed and quality, side by side in one run on the full data:

1. Bands2Vec with its defaults, as `python run.py` trains (with the reports TensorBoard shows:
   neighbours and quality scalars), and without those reports, for their cost;
2. the tutorial's algorithm and settings (pairs one at a time in a Python loop, batch 64, 16 sampled
   negatives, SGD at 1.0, 100,000 steps), on the project's graph;
3. gensim's Word2Vec (skip-gram, negative sampling, 64 dimensions) on pairs from the project's
   sampler, as 2-token sentences;
and the whole `python run.py` (load, train, checkpoint, projector files, t-SNE plots), timed from
outside. Each contender trains --repeats times and its fastest run counts, as timeit reports: on a
shared machine, noise only ever adds time.

    pip install -r benchmarks/requirements.txt
    python benchmarks/train_benchmark.py --data ../shared/data/pitchfork
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import data_utils  # noqa: E402
from artist_vectors import ArtistVectors  # noqa: E402
from bands2vec_graph import build_graph, tf1  # noqa: E402
from options import TrainOptions  # noqa: E402
from pair_sampler import PairSampler  # noqa: E402
from quality import neighbour_agreement, random_like, training_probe  # noqa: E402
from training import train_vectors  # noqa: E402


def project(catalog, seed, quality=True):
    """Bands2Vec's defaults as run.py trains them: with the reports' neighbours and quality scalars
    taken while training, or without."""
    options = TrainOptions(seed=seed).resolved(catalog)
    probe = training_probe(ArtistVectors(np.zeros((len(catalog), 1)), catalog.facts), seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        vectors, stats = train_vectors(catalog, options, folder, say=lambda line: None,
                                       probe=probe if quality else None)
    return vectors, stats.seconds, stats.pairs


def tutorial_dicts(catalog):
    """The tutorial's two context dictionaries, as Python lists of artist ids."""
    return tuple({key: [int(i) for i in ids] for key, ids in groups.items() if len(ids) >= 2}
                 for groups in (catalog.genre_dict, catalog.score_dict))


def tutorial_batch(genre_dict, score_dict, batch_size, genre_share):
    """The tutorial's generate_batch: a random genre (or score) key, then two of its artists."""
    batch = np.ndarray(shape=(batch_size,), dtype=np.int32)
    labels = np.ndarray(shape=(batch_size, 1), dtype=np.int32)
    for i in range(batch_size):
        groups = genre_dict if random.random() < genre_share else score_dict
        batch[i], labels[i, 0] = random.sample(groups[random.choice(list(groups))], 2)
    return batch, labels


def tutorial(catalog, seed, steps, batch_size=64, num_sampled=16, learning_rate=1.0,
             genre_share=0.6):
    random.seed(seed)
    genre_dict, score_dict = tutorial_dicts(catalog)
    model = build_graph(len(catalog), 64, num_sampled, learning_rate, init_scale=1.0, seed=seed)
    with tf1.Session(graph=model.graph) as session:
        session.run(model.init)
        started = time.perf_counter()
        for _ in range(steps):
            inputs, labels = tutorial_batch(genre_dict, score_dict, batch_size, genre_share)
            session.run([model.optimizer, model.loss],
                        {model.train_inputs: inputs, model.train_labels: labels})
        seconds = time.perf_counter() - started
        return session.run(model.embeddings), seconds, steps * batch_size


def gensim_word2vec(catalog, seed, pairs, genre_share=0.6):
    from gensim.models import Word2Vec

    shares = {"genre": genre_share, "score": 1 - genre_share}
    inputs, labels = PairSampler(catalog, shares, seed).pairs(pairs)
    tokens = [str(i) for i in range(len(catalog))]
    sentences = [[tokens[a], tokens[b]] for a, b in zip(inputs, labels[:, 0])]
    started = time.perf_counter()
    model = Word2Vec(sentences, vector_size=64, window=1, sg=1, negative=5, min_count=1, workers=2,
                     epochs=1, seed=seed)
    seconds = time.perf_counter() - started
    vectors = np.array([model.wv[t] if t in model.wv else np.zeros(64, np.float32) for t in tokens])
    return vectors, seconds, pairs


def end_to_end(data):
    with tempfile.TemporaryDirectory() as logs:
        started = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(REPO, "run.py"), "--data", data,
                        "--logdir", logs], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data",
                        default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tutorial-steps", type=int, default=100_000)
    parser.add_argument("--gensim-pairs", type=int, default=6_400_000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per contender; the fastest counts (3)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "latest.json"))
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")

    catalog = data_utils.load_catalog(args.data)
    rows = {}
    contenders = [("bands2vec", lambda: project(catalog, args.seed)),
                  ("bands2vec, no reports", lambda: project(catalog, args.seed, quality=False)),
                  ("tutorial", lambda: tutorial(catalog, args.seed, args.tutorial_steps)),
                  ("gensim", lambda: gensim_word2vec(catalog, args.seed, args.gensim_pairs))]
    for name, fit in contenders:
        vectors, seconds, pairs = min((fit() for _ in range(args.repeats)), key=lambda run: run[1])
        rows[name] = {"seconds": seconds, "pairs": pairs, "pairs_per_second": pairs / seconds,
                      **neighbour_agreement(ArtistVectors(vectors, catalog.facts))}
        print(f"{name}: {seconds:.1f}s", file=sys.stderr, flush=True)
    blank = ArtistVectors(np.zeros((len(catalog), 64)), catalog.facts)
    rows["random"] = {"seconds": 0.0, "pairs": 0, "pairs_per_second": 0.0,
                      **neighbour_agreement(random_like(blank, args.seed))}
    run_seconds = end_to_end(args.data)

    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "data": catalog.source, "artists": len(catalog), "repeats": args.repeats,
              "python_run_py_seconds": run_seconds,
              "defaults": dataclasses.asdict(TrainOptions().resolved(catalog)), "rows": rows}
    print(table(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def table(result):
    ours = result["rows"]["bands2vec"]
    lines = [f"Training benchmark, {result['date']}, {result['machine']}, "
             f"{result['artists']:,} artists, fastest of {result['repeats']} runs each",
             "",
             "| | training s | pairs | pairs/s | genre@10 | score@10 | score diff "
             "| time / bands2vec |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in result["rows"].items():
        ratio = f"{row['seconds'] / ours['seconds']:.2f}x" if row["seconds"] else ""
        lines.append(f"| {name} | {row['seconds']:.1f} | {row['pairs']:,} | "
                     f"{row['pairs_per_second']:,.0f} | {row['genre']:.1%} | {row['score']:.1%} | "
                     f"{row['score_difference']:.3f} | {ratio} |")
    lines += ["", f"`python run.py` on the full data, end to end: "
                  f"{result['python_run_py_seconds']:.1f} s"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
