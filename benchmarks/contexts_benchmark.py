"""The tutorial's contexts (genre, score) against richer ones (record label, era), in one run on the
full data:

1. quality of each context set at its default shares, the fastest of --repeats trainings each:
   genre@10, score@10, mean score difference, label@10, mean release-year gap, training seconds, and
   the ratio of training times;
2. the trade-off the label share controls, one training per mix;
3. a held-out label check, so the label figure is not circular: a seeded 20% of the artists' label
   memberships are hidden from training, and we count how often those artists' 10 nearest neighbours
   include an artist of the hidden label, for each context set and for random vectors;
4. the 5 nearest neighbours of a few well-known artists under each context set.

    python benchmarks/contexts_benchmark.py --data ../shared/data/pitchfork
"""
import argparse
import datetime
import json
import os
import platform
import sys
import tempfile

import numpy as np
import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import data_utils  # noqa: E402
from artist_vectors import ArtistVectors  # noqa: E402
from contexts import format_contexts  # noqa: E402
from options import TrainOptions  # noqa: E402
from quality import neighbour_agreement, random_like  # noqa: E402
from ragged import Ragged  # noqa: E402
from training import train_vectors  # noqa: E402

CONTEXT_SETS = ("genre,score", "genre,score,label")
MIXES = ("genre,score,label=0.2", "genre,score,label=0.3", "genre,score,label",
         "genre,score,label=0.5")
WELL_KNOWN = ("burial", "kanye west", "sunn o)))", "bob dylan", "radiohead")
HIDDEN_SHARE = 0.2


def trained(catalog, contexts, seed):
    """(ArtistVectors, training seconds, resolved options) of one training run with the defaults."""
    options = TrainOptions(contexts=contexts, seed=seed).resolved(catalog)
    with tempfile.TemporaryDirectory() as folder:
        vectors, stats = train_vectors(catalog, options, folder, say=lambda line: None)
    return ArtistVectors(vectors, catalog.facts), stats.seconds, options


def hide_labels(catalog, share, seed):
    """The catalog with a seeded `share` of its label memberships removed, and the hidden (artist,
    label) pairs. Only memberships of labels with another artist can be found again, so only those
    are hidden."""
    labels = catalog.contexts["label"]
    shared = pd.Series(labels.values).map(pd.Series(labels.values).value_counts()).to_numpy() >= 2
    memberships = np.flatnonzero(shared)  # positions in labels.values
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(memberships, size=int(share * len(memberships)), replace=False))
    owners = labels.owners
    hidden = list(zip(owners[chosen].tolist(), labels.values[chosen].tolist()))
    kept = np.ones(len(labels.values), dtype=bool)
    kept[chosen] = False
    masked = Ragged.from_sorted(owners[kept], labels.values[kept], len(catalog))
    return catalog.replace(label=masked), hidden


def held_out_hits(vectors, catalog, masked, hidden, k=10):
    """The share of hidden (artist, label) memberships whose artist's k nearest neighbours include
    an artist of that label (by the full catalog): over all of them, over the artists that kept
    another label in training, and over those left with none."""
    neighbours = vectors.nearest_neighbours(k)
    labels = [set(labels) for labels in catalog.contexts["label"].tuples()]
    hits = np.array([any(label in labels[j] for j in neighbours[i]) for i, label in hidden])
    kept = masked.contexts["label"].counts[[i for i, _ in hidden]] > 0
    return {"all": float(hits.mean()), "kept_a_label": float(hits[kept].mean()),
            "no_label_left": float(hits[~kept].mean()), "share_kept": float(kept.mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data",
                        default=os.environ.get(data_utils.DATA_ENV, "../shared/data/pitchfork"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="trainings per context set; the fastest counts")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "contexts.json"))
    args = parser.parse_args()

    catalog = data_utils.load_catalog(args.data)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "data": catalog.source, "artists": len(catalog), "repeats": args.repeats,
              "sets": {}, "mixes": {}, "held_out": {}, "neighbours": {}}
    random_vectors = random_like(ArtistVectors(np.zeros((len(catalog), 64)), catalog.facts),
                                 args.seed)

    for contexts in CONTEXT_SETS:
        runs = [trained(catalog, contexts, args.seed) for _ in range(args.repeats)]
        vectors, seconds, options = min(runs, key=lambda run: run[1])
        result["sets"][contexts] = {"contexts": format_contexts(options.contexts),
                                    "steps": options.steps,
                                    "seconds": seconds,
                                    **neighbour_agreement(vectors)}
        result["neighbours"][contexts] = {name: [n for n, _ in vectors.most_similar(name, topn=5)]
                                          for name in WELL_KNOWN if name in vectors}
        print(f"{contexts}: {seconds:.1f}s", file=sys.stderr, flush=True)
    result["sets"]["random"] = neighbour_agreement(random_vectors)

    for mix in MIXES:
        vectors, seconds, options = trained(catalog, mix, args.seed)
        result["mixes"][format_contexts(options.contexts)] = {"seconds": seconds,
                                                              **neighbour_agreement(vectors)}
        print(f"{mix}: {seconds:.1f}s", file=sys.stderr, flush=True)

    masked, hidden = hide_labels(catalog, HIDDEN_SHARE, args.seed)
    for contexts in CONTEXT_SETS:
        vectors, _, _ = trained(masked, contexts, args.seed)
        result["held_out"][contexts] = held_out_hits(vectors, catalog, masked, hidden)
    result["held_out"]["random"] = held_out_hits(random_vectors, catalog, masked, hidden)
    result["held_out_memberships"] = len(hidden)

    print(tables(result))
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


def _figures(row):
    return (f"{row['genre']:.1%} | {row['score']:.1%} | {row['score_difference']:.3f} | "
            f"{row['label']:.1%} | {row['year_gap']:.2f}")


def tables(result):
    tutorial = result["sets"][CONTEXT_SETS[0]]
    lines = [f"Contexts benchmark, {result['date']}, {result['machine']}, "
             f"{result['artists']:,} artists, "
             f"fastest of {result['repeats']} trainings per context set", "",
             "| contexts | shares | steps | training s | time / genre,score | genre@10 | score@10 "
             "| score diff | label@10 | year gap |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in result["sets"].items():
        if name == "random":
            lines.append(f"| random vectors | | | | | {_figures(row)} |")
        else:
            lines.append(f"| {name} | {row['contexts']} | {row['steps']:,} | "
                         f"{row['seconds']:.1f} | "
                         f"{row['seconds'] / tutorial['seconds']:.2f}x | {_figures(row)} |")
    held = result["held_out"]
    lines += ["", f"Held-out labels: {result['held_out_memberships']:,} label memberships "
                  f"({HIDDEN_SHARE:.0%}) hidden from training; a hit is an artist of the hidden "
                  f"label among the artist's 10 nearest neighbours. "
                  f"{held['random']['share_kept']:.0%} of them belong to artists that kept "
                  f"another label.", "",
              "| vectors | hit, all | artists that kept another label | artists left with none |",
              "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {h['all']:.1%} | {h['kept_a_label']:.1%} | {h['no_label_left']:.1%} |"
              for name, h in held.items()]
    lines += ["",
              "| shares | genre@10 | score@10 | score diff | label@10 | year gap |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {mix} | {_figures(row)} |" for mix, row in result["mixes"].items()]
    lines += ["", "| artist | " + " | ".join(CONTEXT_SETS) + " |", "| --- | --- | --- |"]
    names = result["neighbours"][CONTEXT_SETS[0]]
    lines += [f"| {name} | "
              + " | ".join("; ".join(result["neighbours"][c][name]) for c in CONTEXT_SETS) + " |"
              for name in names]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
