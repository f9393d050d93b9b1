"""Bands2Vec from the command line, over the library (bands2vec.py).

    python run.py                          train on the data found (see --data), write logs/<run>/
    python run.py similar coil -k 5        artists nearest to an artist (or several, or - for stdin)
    python run.py query "coil - elder ones"
    python run.py plot                     t-SNE plots of the latest run
    python run.py evaluate                 how good the latest run's vectors are
    python run.py export                   vectors.npy, vectors.tsv and vectors.txt of a run
"""
import os
import signal


def _stopped_while_starting(signum, frame):
    try:
        os.write(2, b"run.py: interrupted as it started; nothing was done\n")
    finally:  # a closed stderr too
        os._exit(130)


if __name__ == "__main__":
    # Ctrl-C, SIGTERM or SIGHUP while the modules load (a second) ends the run: none of it has
    # begun. main() hands them to the command once it reads its arguments.
    for _signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(_signum, _stopped_while_starting)

import argparse
import dataclasses
import difflib
import gc
import math
import sys
import warnings
from typing import Callable

# Python -P (or PYTHONSAFEPATH=1, or -I) leaves the script's folder off the path: these are its own.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bands2vec
import options as b
from atomic_files import os_error_line
from contexts import CONTEXTS, DEFAULT_CONTEXTS, format_contexts, parse_contexts
from errors import Bands2VecError, ClusterLost
from evaluate_report import evaluate_arguments, evaluate_command
from interrupts import HELD_STOPS, RUN_COMPLETE, STOPPING_SIGNALS
from output_streams import (STANDARD_OUTPUT, EscapedStream, one_line, output_error_line,
                            to_nowhere)
from questions import question_arguments, questions_command
from run_life import PHASES
from run_record import path_argument, run_command, shell_command
from vector_files import EXPORT_MAX

# The training options the command line sets, as TrainOptions names them.
TRAIN_OPTIONS = ("steps", "batch_size", "embedding_size", "num_sampled", "learning_rate", "seed",
                 "concurrent_steps", "ensemble")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad option reported in one line, and --help or --version that cannot be
    written said to be (argparse drops the write's error, and exits 0)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _print_message(self, message, file=None):
        if message:
            (file or sys.stderr).write(message)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

def train_arguments(train):
    """Training's options. None, their default here, means the default or a resumed run's own."""
    defaults = b.TrainOptions()
    train.add_argument("--data", help="Kaggle database.sqlite, or a folder with it or with "
                                      "reviews.csv and genres.csv (default: $BANDS2VEC_DATA, "
                                      "then data/, then the demo catalog)")
    train.add_argument("--steps", type=int,
                       help=f"training steps (default: {b.MOVE_PER_MEMBERSHIP:g} x context "
                            f"memberships / learning rate, x{1 + b.MOVE_GROWTH:g} for every "
                            f"tenfold of artists past {b.MOVE_GROWTH_ABOVE:,}, "
                            f"at least {b.MIN_STEPS:,}; x{b.ENSEMBLE_STEP_SHARE:g} for each member "
                            f"of an ensemble)")
    train.add_argument("--batch-size", type=int,
                       help=f"pairs per step (default: {b.PAIRS_PER_ARTIST} x artists / steps, "
                            f"a power of two from {b.BATCH_SIZES[0]:,} to {b.BATCH_SIZES[1]:,}, "
                            f"{b.LABEL_BATCH_GROWTH} times that with label among the --contexts, "
                            f"at most the catalog's)")
    train.add_argument("--embedding-size", type=int,
                       help=f"dimensions (default: {defaults.embedding_size})")
    train.add_argument("--num-sampled", type=int,
                       help=f"negative artists sampled per step by NCE (default: "
                            f"{b.NUM_SAMPLED}, or one fewer than the artists of a smaller catalog)")
    train.add_argument("--learning-rate", type=number,
                       help=f"gradient-descent rate at the start, decayed linearly over the run "
                            f"(default: artists / {b.ARTISTS_PER_RATE}, at most {b.MAX_RATE})")
    weights = ", ".join(f"{kind} {context.weight:g}" for kind, context in CONTEXTS.items())
    train.add_argument("--contexts",
                       help=f"kinds of context ({', '.join(CONTEXTS)}), each optionally with its "
                            f"share of the pairs, such as genre,score,label=0.3; a kind without a "
                            f"share takes its weight's part of the rest ({weights}) (default: "
                            f"{DEFAULT_CONTEXTS}, that is {format_contexts(defaults.contexts)})")
    train.add_argument("--genre-share", type=number,
                       help=f"share of same-genre pairs, as genre=X in --contexts "
                            f"(default: {defaults.contexts['genre']:g})")
    train.add_argument("--include-pseudo-artists", action="store_true",
                       help="keep 'various artists' and the other compilation names in the "
                            "vocabulary")
    train.add_argument("--seed", type=int, help=f"random seed (default: {defaults.seed})")
    train.add_argument("--ensemble", type=int,
                       help=f"train N models that differ only in their seeds, as one run whose "
                            f"similarities are the mean of theirs, each answer saying how far "
                            f"they agree (default: {b.LABEL_ENSEMBLE} with label among the "
                            f"--contexts, fewer past {b.ENSEMBLE_ROWS // b.LABEL_ENSEMBLE:,} "
                            f"artists; else 1, the tutorial's one model)")
    train.add_argument("--concurrent-steps", type=int,
                       help=f"threads stepping the session at once (default: 1 up to "
                            f"{b.XLA_MAX_ARTISTS:,} artists, whose tables XLA holds, "
                            f"else the cores, at most {b.MAX_CONCURRENT_STEPS}); "
                            f"more than one gives other vectors for the same seed")
    train.add_argument("--clusters", type=int,
                       help=f"k-means clusters (default: {b.KMEANS_CLUSTERS})")
    train.add_argument("--run",
                       help="name of the run's folder under --logdir (default: run-<date>-<time>)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the --run folder if it exists")
    train.add_argument("--no-plots", action="store_true", help="skip the t-SNE plots")
    train.add_argument("--resume", action="store_true",
                       help="continue the latest run (or --run) from its last checkpoint, "
                            "with its own options")


def number(text):
    """The float `text` writes; one past what a float holds is refused as written, where float()
    would read 1e-400 as 0.0 and 1e400 as inf."""
    value = float(text)
    digits = text.strip().lower().partition("e")[0].strip("+-")
    if value == 0 and digits.strip("0."):
        raise argparse.ArgumentTypeError(f"{text} is too near 0 for a float, which reads it as 0")
    if math.isinf(value) and "inf" not in text.lower():
        raise argparse.ArgumentTypeError(f"{text} is too large for a float")
    return value


def train_command(args):
    given = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.contexts is not None or args.genre_share is not None:
        spec = DEFAULT_CONTEXTS if args.contexts is None else args.contexts  # "" is refused
        given["contexts"] = parse_contexts(spec, args.genre_share)
    held = len(HELD_STOPS)
    if args.resume:
        _check_resumable(args, given)
        run = bands2vec.resume(args.logdir, args.run, given.get("steps"), args.data,
                               plots=not args.no_plots,
                               concurrent_steps=given.get("concurrent_steps"), say=_say)
    else:
        run = bands2vec.train(args.data, b.TrainOptions(**given), logs=args.logdir, name=args.run,
                              overwrite=args.overwrite,
                              clusters=(b.KMEANS_CLUSTERS if args.clusters is None
                                        else args.clusters),
                              plots=not args.no_plots,
                              include_pseudo_artists=args.include_pseudo_artists, say=_say)
    if run:  # workers and ps tasks have said what they did; the chief has a run to sum up
        _say_summary(run, args.logdir)
        if len(HELD_STOPS) > held:
            print(f"run.py: note: {one_line(run.folder)}: a stop came as the run ended, with "
                  f"nothing left to stop; it is complete", file=sys.stderr)
    return 0


def _check_resumable(args, given):
    """--resume goes on with the run as it is, its options and its k-means clusters (as a seed, a
    new k would give another run): `plot --clusters K` re-clusters its plots."""
    if args.overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: give one of them")
    changed = [f"--{name.replace('_', '-')}" for name in given
               if name not in ("steps", "concurrent_steps")]
    changed += [option for option, value in (("--clusters", args.clusters is not None),
                                             ("--include-pseudo-artists",
                                              args.include_pseudo_artists)) if value]
    if changed:
        raise ValueError(f"--resume continues with the run's own options, not {', '.join(changed)}"
                         f"; only --steps (and --concurrent-steps) may be changed")


def _say_summary(run, logs):
    record = run.record
    stats, report, phases = record.stats, record.quality, record.phases
    print()
    print(f"Artists:     {record.artists:,}")
    # A run whose record lost its seconds (its checkpoint was ahead of run.json) has no rate.
    rate = f" ({stats.pairs / stats.seconds:,.0f} pairs/s of training)" if stats.seconds else ""
    print(f"Pairs seen:  {stats.pairs:,} in {stats.steps:,} steps{rate}")
    if 0 < stats.part_from < stats.steps:  # a resumed run: the part this process trained
        part = stats.steps - stats.part_from
        pairs = part * record.options.batch_size * record.options.ensemble
        print(f"             of which {pairs:,} in the {part:,} steps "
              f"from step {stats.part_from:,} just trained, in {stats.part_seconds:.1f}s")
    print(f"Final loss:  {stats.loss:.3f}" if math.isfinite(stats.loss) else
          "Final loss:  not recorded")
    print(f"Quality:     10 nearest neighbours share a genre {_share(report['genre'], 'vectors ')}"
          f", the same rounded mean score {_share(report['score'])}")
    if report["member_agreement"]["trained"] is not None:
        print(f"Stability:   {record.options.ensemble} members of other seeds agree on the 10 "
              f"nearest neighbours at mean Jaccard {report['member_agreement']['trained']:.3f}; "
              f"answers are their mean and say how far they agree")
    print(f"Time:        {stats.part_seconds:.1f}s training, {sum(phases.values()):.1f}s in all ("
          + ", ".join(f"{name} {phases[name]:.1f}s" for name in PHASES if name in phases)
          + f"); peak memory {record.peak_memory_mb:,.0f} MB")
    print(f"Outputs in:  {run.folder}")
    exports = ("vectors.tsv, vectors.txt (word2vec format)" if record.artists <= EXPORT_MAX else
               f"no text exports past {EXPORT_MAX:,} artists: "
               f"{run_command('export', run.folder)} writes them")
    print(f"             checkpoints/, events, metadata.tsv, projector_config.pbtxt, run.json, "
          f"vectors.npy, {exports}")
    for path in run.plots.values():
        print(f"             {path}")
    print(f"Next:        {shell_command(['tensorboard', '--logdir', path_argument(logs)])}")


def _share(figures, random=""):
    """`61.3% (random 20.1%)` of a quality figure; `-` where the data has none (a catalog whose
    genres join none of its reviews)."""
    if figures["trained"] is None:
        return "- (no such facts in the data)"
    return f"{figures['trained']:.1%} (random {random}{figures['random']:.1%})"


# ---------------------------------------------------------------------------------------------
# plot, export (evaluate is evaluate_report.py's; similar and query, questions.py's)
# ---------------------------------------------------------------------------------------------

def plot_arguments(plot):
    plot.add_argument("--clusters", type=int,
                      help="re-cluster with k-means into this many clusters")


def plot_command(args):
    for path in bands2vec.open_run(args.logdir, args.run).plot(args.clusters, say=_say).values():
        print(path)
    return 0


def export_command(args):
    for path in bands2vec.open_run(args.logdir, args.run).export():
        print(path)
    return 0


# ---------------------------------------------------------------------------------------------
# The commands, and main
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Command:
    run: Callable  # args -> exit status
    help: str
    arguments: Callable = lambda parser: None  # adds the command's own arguments
    interrupted: str = "interrupted"  # what Ctrl-C or SIGTERM leaves, unless the library says more


COMMANDS = {
    "train": Command(train_command, "train (the default command)", train_arguments,
                     "interrupted before a run folder was made: nothing was written"),
    "similar": Command(questions_command, "artists nearest to an artist",
                       question_arguments("name", "an artist's name")),
    "query": Command(questions_command,
                     'nearest artists to an expression, e.g. "coil - elder ones"',
                     question_arguments("expression", "artists joined by ' + ' and ' - '")),
    "plot": Command(plot_command, "t-SNE plots of a trained run", plot_arguments,
                    "interrupted: some plots may be the old ones (each file is whole); "
                    "run the same plot command again"),
    "evaluate": Command(evaluate_command, "quality of a trained run's vectors", evaluate_arguments),
    "export": Command(export_command,
                      "write vectors.npy, vectors.tsv and vectors.txt (word2vec format)",
                      interrupted="interrupted: some exports may be missing or the old ones; "
                                  "run the same export command again"),
}


def build_parser():
    """The command line; every number its help names comes from the library's constants."""
    parser = ArgumentParser(prog="run.py",
                            description="Bands2Vec: artist embeddings from Pitchfork reviews.")
    parser.add_argument("--version", action="version", version=f"Bands2Vec {bands2vec.__version__}")
    commands = parser.add_subparsers(dest="command")
    for name, command in COMMANDS.items():
        # Training's word is optional: its usage and errors say so, not a word the user left out.
        subparser = commands.add_parser(name, help=command.help,
                                        **({"prog": "run.py [train]"} if name == "train" else {}))
        command.arguments(subparser)
        subparser.add_argument("--logdir", default="logs",
                               help="log directory (default: %(default)s)")
        if name != "train":  # training names the run it writes
            subparser.add_argument("--run", help="run folder under --logdir (default: the latest)")
    return parser


def parse_args(argv):
    # Training is the default command: `python run.py --steps 100` trains. Training takes no word
    # of its own, so a first word that is no command is a command mistyped, not training's.
    argv = list(argv)
    parser = build_parser()
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        parser.error(_unknown_command(argv[0]))
    if not argv or argv[0] not in tuple(COMMANDS) + ("-h", "--help", "--version"):
        argv = ["train"] + argv
    return parser.parse_args(argv)


def _unknown_command(word):
    close = difflib.get_close_matches(word.casefold(), COMMANDS, n=1)
    return f"unknown command {word!r}; " + (f"did you mean {close[0]!r}?" if close else
                                            f"the commands are {', '.join(COMMANDS)}")


def main(argv=None):
    if sys.stdout is None:  # started with its output closed: print() would drop every answer
        if sys.stderr:
            print("run.py: error: standard output is closed; nothing could be printed",
                  file=sys.stderr)
        return 2
    streams = sys.stdout, sys.stderr
    # Closed, its lines go nowhere: print(file=None) would put them in the answers on stdout.
    errors = sys.stderr or open(os.devnull, "w")
    sys.stdout = EscapedStream(sys.stdout, errors)
    sys.stderr = EscapedStream(errors, errors, lossy=True)
    try:
        return _written(_command(argv))
    finally:
        sys.stdout, sys.stderr = streams


def _command(argv):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # argparse's --help or --version printed, or its usage error said
        return done.code
    except OSError as error:  # its --help or --version could not be written
        return _unwritten(error)
    sys.stdout.outlives_reader = args.command == "train"
    # Ctrl-C, SIGTERM, and SIGHUP (its terminal closed) stop a run alike: training checkpoints
    # where it stands.
    RUN_COMPLETE.clear()  # of a run the library completed before this command
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGINT, *STOPPING_SIGNALS)}
    hook, sys.unraisablehook = sys.unraisablehook, _swallowed
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _note  # the library's warnings, as one line each
            return COMMANDS[args.command].run(args)
    except ClusterLost as error:
        # TensorFlow hangs closing a session whose parameter server has gone: end without it.
        _refuse(error, str(error))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)
    except (Bands2VecError, ValueError) as error:
        return _refuse(error, str(error))
    except OSError as error:
        return (_unwritten(error) if error.filename == STANDARD_OUTPUT
                else _refuse(error, os_error_line(error)))
    except MemoryError as error:  # the advice is training's; another command only reads a run
        return _refuse(error, "out of memory; try a smaller --batch-size or --embedding-size"
                       if args.command == "train" else "out of memory reading the run")
    except bands2vec.RunInterrupted as stop:
        print(f"run.py: {one_line(str(stop))}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        said = ("interrupted before the run went on: it is as it was" if args.command == "train"
                and args.resume else COMMANDS[args.command].interrupted)
        print(f"run.py: {said}", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            # As the command line, the process ends now: a second SIGTERM close behind the first
            # asks for what is done; dying of it would make the exit status a lie.
            signal.signal(signum, signal.SIG_IGN if argv is None else handler)
        sys.unraisablehook = hook
        _PENDING.clear()
        RUN_COMPLETE.clear()


def _written(status):
    """`status` once what stdout holds is written out; else why it cannot be, status 2 (Python,
    flushing it at exit, would print its own two lines and exit 120)."""
    try:
        sys.stdout.flush()
    except OSError as error:
        return _unwritten(error)
    return status


def _unwritten(error):
    """The exit status for standard output's write `error`: 1 where its reader has gone, else 2,
    said. What is left goes to /dev/null, as the exit's flush would fail again."""
    to_nowhere(sys.stdout)
    return 1 if isinstance(error, BrokenPipeError) else _refuse(error, output_error_line(error))


def _refuse(error, line):
    """The error in one line, and the library's note on what is left of the run, if it added one."""
    print(f"run.py: error: {one_line(line)}", file=sys.stderr)
    for note in getattr(error, "__notes__", []):
        print(f"run.py: {one_line(note)}", file=sys.stderr)
    return 2


def _note(message, category, filename, lineno, file=None, line=None):
    print(f"run.py: note: {one_line(str(message))}", file=sys.stderr)


def _interrupt(signum, frame):
    if RUN_COMPLETE:  # nothing is left to stop: the stop is held, and said
        HELD_STOPS.append(True)
        return
    raise KeyboardInterrupt


# Ctrl-C or SIGTERM that Python swallowed, still to raise.
_PENDING = []


def _swallowed(unraisable, told=sys.unraisablehook):
    """Ctrl-C or SIGTERM raised where Python ignores errors (in a callback of its import lock, say)
    is not lost: it is raised at the next line the run says."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _PENDING.append(unraisable.exc_type)
    else:
        told(unraisable)


def _say(*line):
    if _PENDING:
        raise _PENDING.pop()
    print(*line)


if __name__ == "__main__":
    status = main()
    # Python's last garbage collection would walk every object of TensorFlow and the plots'
    # libraries (1-2 s) to free memory the exit frees anyway; the run's files are closed.
    gc.freeze()
    sys.exit(status)
