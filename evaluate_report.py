"""evaluate on the command line: how good a run's vectors are beside random ones, and how stable
their neighbours are across seeds (its members', or --against another run's), in text or JSON."""
import os

import bands2vec
import checks
import run_folder
from artist_vectors import NEIGHBOURS
from contexts import CONTEXTS, quality_tags
from output_streams import json_text
from run_record import RUN_FILE


def evaluate_arguments(evaluate):
    evaluate.add_argument("-k", type=int, default=NEIGHBOURS,
                          help="neighbours per artist (default: %(default)s)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.add_argument("--against", metavar="RUN",
                          help="also compare the neighbours with another run's (a run folder, or "
                               "its name under --logdir): how stable they are across seeds")


def evaluate_command(args):
    checks.whole("-k", args.k, 1)
    run = bands2vec.open_run(args.logdir, args.run)
    evaluation = run.evaluate(k=args.k)
    report = evaluation.report
    if args.against is not None:
        report["against"] = run.against(_against_run(args.logdir, args.against), args.k)
    if args.json:
        print(json_text(evaluation.as_dict(), indent=2))
        return 0
    print(f"Run {run.folder}: {report['artists']:,} artists; "
          f"each figure beside the same for random vectors")
    rows = [(CONTEXTS[kind].agreement, kind, "{:.1%}", CONTEXTS[kind].absent)
            for kind in quality_tags()]
    rows += [("mean absolute score difference to neighbours", "score_difference", "{:.3f}", ""),
             ("mean release-year gap to neighbours", "year_gap", "{:.2f}",
              "the data has no years table"),
             ("NMI of k-means clusters with primary genre", "cluster_genre_nmi", "{:.3f}",
              "its metadata.tsv holds no k-means clusters")]
    for label, key, form, missing in rows:
        trained, random = report.get(key, {}).get("trained"), report.get(key, {}).get("random")
        if trained is None:
            print(f"  {label:<46} {'-':>8}   ({missing})")
        else:
            print(f"  {label:<46} {form.format(trained):>8}   random {form.format(random)}")
    print(f"  ({report['k']} nearest neighbours by cosine similarity)")
    _say_stability(report, run.options.ensemble)
    print("Clusters (size, top primary genres, mean score, most-reviewed artists):"
          if evaluation.clusters else "Clusters: none (its metadata.tsv holds no k-means clusters)")
    for cluster in evaluation.clusters:
        top = ", ".join(f"{genre} {count}" for genre, count in cluster.genres.items())
        print(f"  {cluster.cluster:>2}: {cluster.size:>5}  {top:<40} {cluster.mean_score:4.2f}  "
              f"{', '.join(cluster.examples)}")
    return 0


def _against_run(logs, against):
    """The run --against names: a run's folder, or its name under --logdir."""
    if against.strip() and os.path.isfile(os.path.join(against, RUN_FILE)):
        return bands2vec.Run(run_folder.find_run(against, usable=True))
    if os.sep in against:  # a path, not a name: say what it is not
        what = (f"no {RUN_FILE} in it" if os.path.isdir(against) else "not a folder"
                if os.path.lexists(against) else "no such folder")
        raise bands2vec.RunError(f"--against {against}: not a run's folder ({what}); "
                                 f"give a run's folder, or the name of a run in --logdir")
    return bands2vec.Run(run_folder.find_run(logs, against, usable=True, option="--against"))


def _say_stability(report, members):
    """How stable the neighbours are across seeds, as far as the run (and --against) can tell."""
    agreement, against = report["member_agreement"]["trained"], report.get("against")
    if agreement is not None:
        print(f"  its {members} members, models of other seeds, agree on their {report['k']} "
              f"nearest neighbours: mean Jaccard {agreement:.3f} (random vectors "
              f"{report['member_agreement']['random']:.3f}); the ensemble's mean is steadier")
    elif against is None:
        print("  stability across seeds: unknown for one model; compare a run of another --seed "
              "(evaluate --against RUN), or train an ensemble (--ensemble N)")
    if against is not None:
        print(f"  against {against['run']} (seed {against['seed']}, ensemble "
              f"{against['ensemble']}): the {against['k']} nearest neighbours of "
              f"{against['artists']:,} artists have mean Jaccard {against['jaccard']:.3f}; "
              f"{against['kept']:.1f} of {against['k']} kept on average")
