"""Bands2Vec from the command line.

    python run.py                          train on the data found (see --data), write logs/<run>/
    python run.py similar coil -k 5        the artists nearest to one artist
    python run.py query "coil - elder ones"
    python run.py plot                     t-SNE plots of the latest run
    python run.py evaluate                 how good the latest run's vectors are
"""
import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import time

import logdir

COMMANDS = ("train", "similar", "query", "plot", "evaluate")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    from training import TrainOptions

    defaults = TrainOptions()
    parser = ArgumentParser(prog="run.py", description="Bands2Vec: artist embeddings from Pitchfork reviews.")
    commands = parser.add_subparsers(dest="command")

    # Training options default to None here: None means "the default", or the resumed run's own value.
    train = commands.add_parser("train", help="train (the default command)")
    train.add_argument("--data", help="Kaggle database.sqlite, or a folder with it or with reviews.csv and "
                                      "genres.csv (default: $BANDS2VEC_DATA, then data/, then the demo catalog)")
    train.add_argument("--steps", type=int, help=f"training steps ({defaults.steps})")
    train.add_argument("--batch-size", type=int, help="pairs per step (2048, or fewer for a small catalog)")
    train.add_argument("--embedding-size", type=int, help=f"dimensions ({defaults.embedding_size})")
    train.add_argument("--num-sampled", type=int,
                       help=f"negative artists sampled per step by NCE ({defaults.num_sampled})")
    train.add_argument("--learning-rate", type=float,
                       help="gradient-descent rate at the start, decayed linearly to 1%% (artists / 90)")
    train.add_argument("--genre-share", type=float,
                       help=f"share of same-genre pairs; the rest share a score ({defaults.genre_share})")
    train.add_argument("--seed", type=int, help=f"random seed ({defaults.seed})")
    train.add_argument("--clusters", type=int, default=10, help="k-means clusters (%(default)s)")
    train.add_argument("--run", help="name of the run's folder under --logdir (default: run-<date>-<time>)")
    train.add_argument("--overwrite", action="store_true", help="replace the --run folder if it exists")
    train.add_argument("--no-plots", action="store_true", help="skip the t-SNE plots")
    train.add_argument("--resume", action="store_true",
                       help="continue the latest run (or --run) from its last checkpoint, with its own options")

    similar = commands.add_parser("similar", help="artists nearest to an artist")
    similar.add_argument("name")
    query = commands.add_parser("query", help='nearest artists to an expression, e.g. "coil - elder ones"')
    query.add_argument("expression")
    for command in (similar, query):
        command.add_argument("-k", type=int, default=10, help="how many artists (%(default)s)")
        command.add_argument("--json", action="store_true", help="print JSON")

    plot = commands.add_parser("plot", help="t-SNE plots of a trained run")
    plot.add_argument("--clusters", type=int, help="re-cluster with k-means into this many clusters")
    evaluate = commands.add_parser("evaluate", help="quality of a trained run's vectors")
    evaluate.add_argument("-k", type=int, default=10, help="neighbours per artist (%(default)s)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")

    for command in (train, similar, query, plot, evaluate):
        command.add_argument("--logdir", default="logs", help="log directory (%(default)s)")
    for command in (similar, query, plot, evaluate):
        command.add_argument("--run", help="run folder under --logdir (default: the latest)")
    return parser


def parse_args(argv):
    # Training is the default command: `python run.py --steps 100` trains.
    if not argv or argv[0] not in COMMANDS + ("-h", "--help"):
        argv = ["train"] + list(argv)
    return build_parser().parse_args(argv)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

TRAIN_OPTIONS = ("steps", "batch_size", "embedding_size", "num_sampled", "learning_rate", "genre_share", "seed")


def train_command(args):
    import data_utils
    from training import Interrupted, TrainOptions, check_options, train

    given = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    _check_at_least_one("--clusters", args.clusters)
    # Everything that can refuse the input does so before anything is written.
    if args.resume:
        run_dir, catalog, options, checkpoint = _resumed_run(args, given)
    else:
        catalog = data_utils.load_catalog(args.data)
        options = TrainOptions(**given).resolved(len(catalog))
        check_options(options, len(catalog))
        run_dir, checkpoint = logdir.new_run_dir(args.logdir, args.run, args.overwrite), None

    if catalog.source == data_utils.DEMO_SOURCE:
        print(f"Using the built-in demo catalog ({len(catalog)} fictional artists). For the real thing, download "
              f"database.sqlite from {data_utils.KAGGLE_URL} into data/ or pass --data PATH.")
    else:
        print(f"Loaded {len(catalog):,} artists, {catalog.review_count:,} reviews from {catalog.source}")
    if catalog.dropped_scores:
        print(f"Skipped {catalog.dropped_scores:,} reviews whose score is missing or outside 0-10")
    print(f"Training {options.steps:,} steps of {options.batch_size:,} pairs, learning rate "
          f"{options.learning_rate:g}; logs in {run_dir}")

    started = time.perf_counter()
    try:
        vectors, stats = train(catalog, options, run_dir, checkpoint=checkpoint)
    except Interrupted as stop:
        write_outputs(catalog, stop.vectors, stop.stats, options, args, run_dir)
        print(f"Interrupted at step {stop.stats['steps']:,}: checkpoint and projector files saved in {run_dir}; "
              f"continue with: python run.py --resume --logdir {args.logdir} --run {os.path.basename(run_dir)}",
              file=sys.stderr)
        return 130
    except BaseException:
        if checkpoint is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # a new run that did not get going leaves nothing
        raise
    artist_vectors, report = write_outputs(catalog, vectors, stats, options, args, run_dir)
    plots = {} if args.no_plots else _plot(artist_vectors, run_dir, options.seed)
    _say_summary(catalog, stats, report, run_dir, plots, time.perf_counter() - started, args.logdir)
    return 0


def _resumed_run(args, given):
    """The run to resume, its catalog (checked against the run's artists), options and last checkpoint."""
    import data_utils
    from bands2vec_graph import tf1
    from training import TrainOptions, check_options

    if set(given) - {"steps"}:
        raise ValueError("--resume continues with the run's own options; only --steps may be changed")
    run_dir = logdir.find_run(args.logdir, args.run)
    info = logdir.read_run_info(run_dir)
    catalog = data_utils.load_catalog(args.data or info["data"])
    names = [row["artist"] for row in logdir.read_metadata(run_dir)]
    if names != [logdir.tsv_field(name) for name in catalog.names]:
        raise logdir.RunError(f"{run_dir} was trained on other data ({len(names):,} artists, from {info['data']}) "
                              f"than {catalog.source} ({len(catalog):,} artists)")
    options = dataclasses.replace(TrainOptions(**info["options"]), **given)
    check_options(options, len(catalog))
    checkpoint = tf1.train.latest_checkpoint(run_dir)
    if checkpoint is None:
        raise logdir.RunError(f"{run_dir}: no checkpoint to resume from")
    if info["stats"]["steps"] >= options.steps:
        raise ValueError(f"{run_dir} has trained all its {options.steps:,} steps; pass --steps N with more "
                         f"to train on")
    return run_dir, catalog, options, checkpoint


def write_outputs(catalog, vectors, stats, options, args, run_dir):
    """metadata.tsv (with k-means clusters), the vector exports and run.json; returns the vectors and
    their quality report."""
    from artist_vectors import ArtistVectors, kmeans_clusters, quality_report
    from data_utils import DEMO_SOURCE

    artist_vectors = ArtistVectors(catalog.names, vectors, [a.genres for a in catalog.artists],
                                   [a.mean_score for a in catalog.artists],
                                   [len(a.review_ids) for a in catalog.artists])
    artist_vectors.clusters = kmeans_clusters(artist_vectors, args.clusters, options.seed)
    logdir.write_metadata(run_dir, catalog, artist_vectors.clusters)
    logdir.write_vectors(run_dir, catalog.names, vectors)
    report = quality_report(artist_vectors, seed=options.seed)
    logdir.write_run_info(run_dir, {
        "data": catalog.source if catalog.source == DEMO_SOURCE else os.path.abspath(catalog.source),
        "artists": len(catalog), "options": dataclasses.asdict(options),
        "clusters": args.clusters, "stats": stats, "quality": report,
        "finished": stats["steps"] == options.steps,
    })
    return artist_vectors, report


def _plot(artist_vectors, run_dir, seed):
    import plots

    started = time.perf_counter()
    paths = plots.write_plots(artist_vectors, run_dir, seed)
    print(f"t-SNE plots written in {time.perf_counter() - started:.1f}s")
    return paths


def _say_summary(catalog, stats, report, run_dir, plot_paths, seconds, logdir_root):
    print()
    print(f"Artists:     {len(catalog):,}")
    print(f"Pairs seen:  {stats['pairs']:,} in {stats['steps']:,} steps "
          f"({stats['pairs'] / max(stats['seconds'], 1e-9):,.0f} pairs/s of training)")
    print(f"Final loss:  {stats['loss']:.3f}")
    print(f"Quality:     10 nearest neighbours share a genre {report['genre']['trained']:.1%} "
          f"(random vectors {report['genre']['random']:.1%}), the same rounded mean score "
          f"{report['score']['trained']:.1%} (random {report['score']['random']:.1%})")
    print(f"Time:        {stats['seconds']:.1f}s training, {seconds:.1f}s in all")
    print(f"Outputs in:  {run_dir}")
    print("             checkpoint model.ckpt-*, events, metadata.tsv, projector_config.pbtxt, "
          "vectors.tsv, vectors.txt (word2vec format), run.json")
    for path in plot_paths.values():
        print(f"             {path}")
    print(f"Next:        tensorboard --logdir {logdir_root}")


# ---------------------------------------------------------------------------------------------
# similar, query, plot, evaluate: from a trained run, without retraining
# ---------------------------------------------------------------------------------------------

def load_run(args):
    from artist_vectors import ArtistVectors

    run_dir = logdir.find_run(args.logdir, args.run)
    return run_dir, ArtistVectors.from_run(run_dir)


def similar_command(args):
    _check_at_least_one("-k", args.k)
    _, vectors = load_run(args)
    _print_results(vectors, vectors.most_similar(args.name, topn=args.k), args.json)
    return 0


def query_command(args):
    _check_at_least_one("-k", args.k)
    _, vectors = load_run(args)
    _print_results(vectors, vectors.query(args.expression, topn=args.k), args.json)
    return 0


def _check_at_least_one(option, value):
    if value < 1:
        raise ValueError(f"{option} must be at least 1, not {value}")


def _print_results(vectors, results, as_json):
    if as_json:
        rows = [{"artist": name, "similarity": round(similarity, 6),
                 "mean_score": round(float(vectors.mean_scores[vectors.index(name)]), 4),
                 "genres": list(vectors.genres[vectors.index(name)])} for name, similarity in results]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for name, similarity in results:
        print(f"{vectors.describe(name)}, Similarity: {similarity:.3f}")


def plot_command(args):
    from artist_vectors import kmeans_clusters

    run_dir, vectors = load_run(args)
    if args.clusters is not None:
        _check_at_least_one("--clusters", args.clusters)
        vectors.clusters = kmeans_clusters(vectors, args.clusters)
    for path in _plot(vectors, run_dir, seed=0).values():
        print(path)
    return 0


def evaluate_command(args):
    from artist_vectors import cluster_summary, quality_report

    _check_at_least_one("-k", args.k)
    run_dir, vectors = load_run(args)
    report = quality_report(vectors, k=args.k)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Run {run_dir}: {len(vectors):,} artists; each figure beside the same for random vectors")
    rows = [("neighbours sharing a genre", "genre", "{:.1%}"),
            ("neighbours with the same rounded mean score", "score", "{:.1%}"),
            ("mean absolute score difference to neighbours", "score_difference", "{:.3f}"),
            ("NMI of k-means clusters with primary genre", "cluster_genre_nmi", "{:.3f}")]
    for label, key, form in rows:
        print(f"  {label:<46} {form.format(report[key]['trained']):>8}   random {form.format(report[key]['random'])}")
    print(f"  ({args.k} nearest neighbours by cosine similarity)")
    print("Clusters (size, top primary genres, mean score, most-reviewed artists):")
    for cluster, size, genres, mean_score, examples in cluster_summary(vectors):
        top = ", ".join(f"{genre} {count}" for genre, count in genres)
        print(f"  {cluster:>2}: {size:>5}  {top:<40} {mean_score:4.2f}  {', '.join(examples)}")
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from artist_vectors import QueryError, UnknownArtist
    from data_utils import DataError

    command = {"train": train_command, "similar": similar_command, "query": query_command,
               "plot": plot_command, "evaluate": evaluate_command}[args.command]
    # SIGTERM stops a run as Ctrl-C does: training checkpoints where it stands.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return command(args)
    except (DataError, logdir.RunError, UnknownArtist, QueryError, ValueError) as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) has gone; the rest of the output has nowhere to go.
        sys.stderr.close()
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
