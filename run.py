"""Bands2Vec from the command line.

    python run.py                          train on the data found (see --data), write logs/<run>/
    python run.py similar coil -k 5        the artists nearest to one artist
    python run.py query "coil - elder ones"
    python run.py plot                     t-SNE plots of the latest run
    python run.py evaluate                 how good the latest run's vectors are
    python run.py export                   vectors.tsv and vectors.txt (written by training up to 100,000 artists)
"""
import argparse
import dataclasses
import json
import os
import resource
import shutil
import signal
import sys
import time

import logdir
import tensorboard_files

COMMANDS = ("train", "similar", "query", "plot", "evaluate", "export")


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
    train.add_argument("--steps", type=int,
                       help="training steps (8.5 x context memberships / learning rate, at least 1,900; README)")
    train.add_argument("--batch-size", type=int,
                       help="pairs per step (447 x artists / steps, a power of two from 1,024 to 2,048, fewer for a "
                            "small catalog; README)")
    train.add_argument("--embedding-size", type=int, help=f"dimensions ({defaults.embedding_size})")
    train.add_argument("--num-sampled", type=int,
                       help=f"negative artists sampled per step by NCE ({defaults.num_sampled})")
    train.add_argument("--learning-rate", type=float,
                       help="gradient-descent rate at the start, decayed linearly to 1%% (artists / 90)")
    train.add_argument("--contexts",
                       help="kinds of context, each optionally with its share of the pairs: genre, score, label "
                            f"(same label and genre), year (same era); e.g. genre,score,label=0.3 "
                            f"({defaults.contexts}, shares 0.6/0.4)")
    train.add_argument("--genre-share", type=float,
                       help="share of same-genre pairs, as genre=X in --contexts (0.6)")
    train.add_argument("--include-pseudo-artists", action="store_true",
                       help="keep 'various artists' and the other compilation names in the vocabulary")
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

    export = commands.add_parser("export", help="write vectors.tsv and vectors.txt (word2vec format) of a run")
    for command in (train, similar, query, plot, evaluate, export):
        command.add_argument("--logdir", default="logs", help="log directory (%(default)s)")
    for command in (similar, query, plot, evaluate, export):
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

TRAIN_OPTIONS = ("steps", "batch_size", "embedding_size", "num_sampled", "learning_rate", "contexts", "seed")


def train_command(args):
    import numpy as np

    import data_utils
    from artist_vectors import ArtistVectors, sampled_agreement
    from training import Interrupted, TrainOptions, check_options, hparams, train

    given = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.genre_share is not None:
        given["contexts"] = data_utils.with_genre_share(given.get("contexts", TrainOptions.contexts), args.genre_share)
    _check_at_least_one("--clusters", args.clusters)
    phases, mark = {}, time.perf_counter()
    # Everything that can refuse the input does so before anything is written.
    if args.resume:
        run_dir, catalog, options, checkpoint = _resumed_run(args, given)
    else:
        catalog = data_utils.load_catalog(args.data, args.include_pseudo_artists)
        options = TrainOptions(**given).resolved(catalog)
        check_options(options, len(catalog))
        for kind in data_utils.parse_contexts(options.contexts):
            catalog.context_groups(kind)  # a missing table is an error now, not after the run folder exists
        run_dir, checkpoint = logdir.new_run_dir(args.logdir, args.run, args.overwrite), None

    if catalog.source == data_utils.DEMO_SOURCE:
        print(f"Using the built-in demo catalog ({len(catalog)} fictional artists). For the real thing, download "
              f"database.sqlite from {data_utils.KAGGLE_URL} into data/ or pass --data PATH.")
    else:
        print(f"Loaded {len(catalog):,} artists, {catalog.review_count:,} reviews from {catalog.source}")
    if catalog.left_out:
        names = ", ".join(f"{name!r} ({count:,} review{'s' * (count != 1)})"
                          for name, count in sorted(catalog.left_out.items()))
        print(f"Left out compilations, not artists: {names}; --include-pseudo-artists keeps them")
    if catalog.dropped_scores:
        print(f"Skipped {catalog.dropped_scores:,} reviews whose score is missing or outside 0-10")
    print(f"Training {options.steps:,} steps of {options.batch_size:,} pairs ({options.contexts}), learning rate "
          f"{options.learning_rate:g}; logs in {run_dir}")

    # The artists' metadata; training's vectors take the place of this one-column stand-in.
    artists = ArtistVectors.from_catalog(catalog, np.zeros((len(catalog), 1)))
    phases["load"], mark = time.perf_counter() - mark, time.perf_counter()
    try:
        vectors, stats = train(catalog, options, run_dir, checkpoint=checkpoint,
                               quality=sampled_agreement(artists, seed=options.seed))
    except Interrupted as stop:
        write_outputs(catalog, artists.with_vectors(stop.vectors), stop.stats, options, args, run_dir)
        print(f"Interrupted at step {stop.stats['steps']:,}: checkpoint and projector files saved in {run_dir}; "
              f"continue with: python run.py --resume --logdir {args.logdir} --run {os.path.basename(run_dir)}",
              file=sys.stderr)
        return 130
    except BaseException:
        if checkpoint is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # a new run that did not finish leaves nothing
        raise
    phases["train"], mark = time.perf_counter() - mark, time.perf_counter()
    artist_vectors, info = write_outputs(catalog, artists.with_vectors(vectors), stats, options, args, run_dir)
    tensorboard_files.write_run_summaries(run_dir, info, hparams(options))
    phases["write"], mark = time.perf_counter() - mark, time.perf_counter()
    plots = {} if args.no_plots else _plot(artist_vectors, run_dir, options.seed, stats["steps"])
    phases["plots"] = time.perf_counter() - mark
    # What a run cost, for the scale benchmark and the reader: seconds by phase, and peak memory.
    info.update(phases=phases, peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB
    logdir.write_run_info(run_dir, info)
    _say_summary(catalog, info, run_dir, plots, args.logdir)
    return 0


def _resumed_run(args, given):
    """The run to resume, its catalog (checked against the run's artists), options and last checkpoint."""
    import data_utils
    from bands2vec_graph import tf1
    from training import TrainOptions, check_options

    if set(given) - {"steps"} or args.include_pseudo_artists:
        raise ValueError("--resume continues with the run's own options; only --steps may be changed")
    run_dir = logdir.find_run(args.logdir, args.run)
    info = logdir.read_run_info(run_dir)
    catalog = data_utils.load_catalog(args.data or info["data"], info.get("include_pseudo_artists", False))
    names = [row["artist"] for row in logdir.read_metadata(run_dir)]
    if names != [logdir.tsv_field(name) for name in catalog.names]:
        raise logdir.RunError(f"{run_dir} was trained on other data ({len(names):,} artists, from {info['data']}) "
                              f"than {catalog.source} ({len(catalog):,} artists)")
    options = dataclasses.replace(TrainOptions(**info["options"]), **given)
    check_options(options, len(catalog))
    checkpoint = tf1.train.latest_checkpoint(logdir.checkpoint_dir(run_dir))
    if checkpoint is None:
        raise logdir.RunError(f"{run_dir}: no checkpoint to resume from")
    if info["stats"]["steps"] >= options.steps:
        raise ValueError(f"{run_dir} has trained all its {options.steps:,} steps; pass --steps N with more "
                         f"to train on")
    return run_dir, catalog, options, checkpoint


def write_outputs(catalog, artist_vectors, stats, options, args, run_dir):
    """metadata.tsv (with k-means clusters), the vector exports, the projector's files and run.json;
    returns the vectors, clustered, and run.json's contents."""
    from artist_vectors import kmeans_clusters, quality_report
    from data_utils import DEMO_SOURCE

    artist_vectors.clusters = kmeans_clusters(artist_vectors, args.clusters, options.seed)
    logdir.write_metadata(run_dir, catalog, artist_vectors.clusters)
    if len(catalog) <= logdir.EXPORT_MAX:
        export(run_dir, artist_vectors)
    rows = _projector_rows(catalog, artist_vectors, run_dir)
    tensorboard_files.write_projector_config(run_dir, sampled=len(rows) < len(catalog))
    info = {
        "data": catalog.source if catalog.source == DEMO_SOURCE else os.path.abspath(catalog.source),
        "artists": len(catalog), "options": dataclasses.asdict(options),
        "include_pseudo_artists": catalog.include_pseudo_artists,
        "clusters": args.clusters, "stats": stats, "quality": quality_report(artist_vectors, seed=options.seed),
        "finished": stats["steps"] == options.steps,
    }
    logdir.write_run_info(run_dir, info)
    return artist_vectors, info


def export(run_dir, artist_vectors):
    logdir.write_tsv_vectors(run_dir, artist_vectors.vectors)
    logdir.write_word2vec(run_dir, artist_vectors.names, artist_vectors.vectors)


def _projector_rows(catalog, artist_vectors, run_dir):
    """The artists the projector shows: all, or (past plots.MAP_ARTISTS) the map's sample, whose vectors
    and metadata are written in projector/."""
    import plots

    rows = plots.map_rows(artist_vectors.review_counts)
    if len(rows) < len(catalog):
        folder = os.path.join(run_dir, logdir.PROJECTOR_SAMPLE_DIR)
        os.makedirs(folder, exist_ok=True)
        logdir.write_metadata(folder, catalog, artist_vectors.clusters, rows)
        logdir.write_tsv_vectors(folder, artist_vectors.vectors[rows])
        print(f"The projector shows the {len(rows):,} most-reviewed of the {len(catalog):,} artists "
              f"(t-SNE and the plots too); queries use every artist")
    return rows


def _plot(artist_vectors, run_dir, seed, step):
    """The t-SNE plots, and the same map as the projector's bookmarks and as images in TensorBoard."""
    import plots

    started = time.perf_counter()
    paths = plots.write_plots(artist_vectors, run_dir, seed)
    coordinates = plots.tsne_coordinates(artist_vectors, run_dir, seed)
    tensorboard_files.write_bookmarks(run_dir, coordinates, (len(coordinates), artist_vectors.vectors.shape[1]),
                                      sampled=len(coordinates) < len(artist_vectors))
    tensorboard_files.write_summaries(run_dir, step, [tensorboard_files.image_summary(f"plots/{name}", path)
                                                      for name, path in paths.items()])
    print(f"t-SNE plots written in {time.perf_counter() - started:.1f}s")
    return paths


def _say_summary(catalog, info, run_dir, plot_paths, logdir_root):
    stats, report = info["stats"], info["quality"]
    print()
    print(f"Artists:     {len(catalog):,}")
    print(f"Pairs seen:  {stats['pairs']:,} in {stats['steps']:,} steps "
          f"({stats['pairs'] / max(stats['seconds'], 1e-9):,.0f} pairs/s of training)")
    print(f"Final loss:  {stats['loss']:.3f}")
    print(f"Quality:     10 nearest neighbours share a genre {report['genre']['trained']:.1%} "
          f"(random vectors {report['genre']['random']:.1%}), the same rounded mean score "
          f"{report['score']['trained']:.1%} (random {report['score']['random']:.1%})")
    phases = info["phases"]
    print(f"Time:        {stats['seconds']:.1f}s training, {sum(phases.values()):.1f}s in all ("
          + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in phases.items())
          + f"); peak memory {info['peak_memory_mb']:,.0f} MB")
    print(f"Outputs in:  {run_dir}")
    exports = ("vectors.tsv, vectors.txt (word2vec format)" if len(catalog) <= logdir.EXPORT_MAX else
               f"no text exports past {logdir.EXPORT_MAX:,} artists: python run.py export writes them")
    print(f"             checkpoints/, events, metadata.tsv, projector_config.pbtxt, run.json, {exports}")
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
    info = logdir.read_run_info(run_dir)
    for path in _plot(vectors, run_dir, info["options"]["seed"], info["stats"]["steps"]).values():
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
    rows = [("neighbours sharing a genre", "genre", "{:.1%}", "no genres"),
            ("neighbours with the same rounded mean score", "score", "{:.1%}", ""),
            ("mean absolute score difference to neighbours", "score_difference", "{:.3f}", ""),
            ("neighbours sharing a record label", "label", "{:.1%}", "the data has no labels table"),
            ("mean release-year gap to neighbours", "year_gap", "{:.2f}", "the data has no years table"),
            ("NMI of k-means clusters with primary genre", "cluster_genre_nmi", "{:.3f}", "")]
    for label, key, form, missing in rows:
        trained, random = report[key]["trained"], report[key]["random"]
        if trained is None:
            print(f"  {label:<46} {'-':>8}   ({missing})")
        else:
            print(f"  {label:<46} {form.format(trained):>8}   random {form.format(random)}")
    print(f"  ({args.k} nearest neighbours by cosine similarity)")
    print("Clusters (size, top primary genres, mean score, most-reviewed artists):")
    for cluster, size, genres, mean_score, examples in cluster_summary(vectors):
        top = ", ".join(f"{genre} {count}" for genre, count in genres)
        print(f"  {cluster:>2}: {size:>5}  {top:<40} {mean_score:4.2f}  {', '.join(examples)}")
    return 0


def export_command(args):
    run_dir, vectors = load_run(args)
    export(run_dir, vectors)
    for name in (logdir.VECTORS_TSV, logdir.WORD2VEC_FILE):
        print(os.path.join(run_dir, name))
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from artist_vectors import QueryError, UnknownArtist
    from data_utils import DataError

    command = {"train": train_command, "similar": similar_command, "query": query_command,
               "plot": plot_command, "evaluate": evaluate_command, "export": export_command}[args.command]
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
