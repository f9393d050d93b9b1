"""similar and query on the command line: many questions, one start-up; each answer in text or as
an object of one --json list, with what ties (twins) and an ensemble's certainty say of it."""
import math
import os
import sys

import bands2vec
import checks
import run_folder
from artist_vectors import NEIGHBOURS
from data_utils import DEMO_SOURCE
from ensemble import certainty_text
from errors import Bands2VecError, QueryError, UnknownArtist
from expressions import parse_expression
from output_streams import json_text, one_line

# A line of stdin is one question: far longer than any expression of MAX_TERMS names, it is not
# one (an endless line, from /dev/zero, say, would be read into memory without end).
MAX_LINE_BYTES = 2**20


def question_arguments(metavar, what):
    def add(command):
        command.add_argument("questions", nargs="+", metavar=metavar,
                             help=f"{what}; several ask several questions, "
                                  f"- reads one a line from stdin")
        command.add_argument("-k", type=int, default=NEIGHBOURS,
                             help="how many artists (default: %(default)s)")
        command.add_argument("--json", action="store_true",
                             help="print one JSON list, an object for each question "
                                  "(question, and results or error)")
    return add


def questions_command(args):
    """Answer each question (an artist for `similar`, an expression for `query`) in turn; a
    question that cannot be answered is an error line, and the others are still answered."""
    checks.whole("-k", args.k, 1)
    questions = _questions(args.questions)
    run = bands2vec.open_run(args.logdir, args.run)
    if args.run is None:
        _say_which_run(args.logdir, run)
    if not questions and not args.json:
        print("run.py: nothing was asked: every question given is empty", file=sys.stderr)
    answers, failed = [], 0
    for number, (question, asked, results, certainty) in enumerate(
            _answers(run.vectors, args.command, questions, args.k)):
        if isinstance(results, Bands2VecError):
            print(f"run.py: error: {results}", file=sys.stderr)
            failed += 1
            answers.append({"question": question, "error": str(results)})
            continue
        if args.json:
            rows = [{**_json_row(run.vectors, name, similarity, asked), **sure}
                    for (name, similarity), sure in zip(results, certainty)]
            answers.append({"question": question,
                            **_json_twins(run.vectors, args.command, question),
                            "results": _tied_rows(run.vectors, rows)})
            continue
        if len(questions) > 1:
            print(f"{'' if number == 0 else chr(10)}Nearest to {one_line(question)}:")
        if not results:  # it asks about every artist
            print(f"run.py: note: {one_line(question)}: no artist is left to answer, as it names "
                  f"every one", file=sys.stderr)
        for line in _tie_lines(run.vectors, args.command, question, results):
            print(line)
        for (name, similarity), sure in zip(results, certainty):
            print(run.vectors.describe(name, similarity, shared_with=asked)
                  + certainty_text(sure, args.k))
    if args.json:
        print(_json_list(answers))
    return 2 if failed else 0


def _questions(given):
    """The questions given, `-` replaced by stdin's lines, empty ones left out. Bytes that are not
    UTF-8, in an argument or on stdin, become U+FFFD, so that no answer carries them on."""
    questions = []
    for question in given:
        if question != "-":
            lines = [os.fsencode(question)]
        elif sys.stdin is None:
            raise QueryError("- reads the questions from stdin, which is closed")
        else:
            lines = _stdin_lines()
        questions += [line.decode("utf-8", "replace").strip() for line in lines]
    return [question for question in questions if question]


def _stdin_lines():
    while line := _stdin_line():
        if len(line.rstrip(b"\n")) > MAX_LINE_BYTES:
            raise QueryError(f"a line of stdin is longer than {MAX_LINE_BYTES:,} bytes; "
                             f"each line is one question")
        yield line


def _stdin_line():
    try:
        return sys.stdin.buffer.readline(MAX_LINE_BYTES + 1)
    except OSError as error:  # opened for writing only (0>file), say: it names no file
        raise QueryError(f"- reads the questions from stdin, which cannot be read "
                         f"({error.strerror or 'not open for reading'})") from None


def _answers(artist_vectors, command, questions, k):
    """(question, the artists it asks about, [(name, similarity)] or the error, and the
    ensemble's certainty in each answer) for each."""
    for question in questions:
        asked = [question]
        try:
            if command == "query":
                asked, negative = parse_expression(question, artist_vectors)
            else:
                negative = []
            results = artist_vectors.most_similar(asked, negative, topn=k)
            if not all(math.isfinite(similarity) for _, similarity in results):
                raise QueryError(f"{question}: the run's vectors give similarities that are not "
                                 f"numbers; its vectors.npy is damaged")
            certainty = artist_vectors.certainty(asked, negative, [name for name, _ in results],
                                                 topn=k)
        except (UnknownArtist, QueryError) as error:
            results, certainty = error, None
        yield question, asked, results, certainty


def _tie_lines(artist_vectors, command, question, results):
    """What an answer says of ties before its lines: the asked artist's twins for `similar`, the
    answers that are twins of each other for `query`."""
    if command == "similar":
        note = artist_vectors.tie_note(question)
        return [note] if note else []
    return artist_vectors.tied_answers_notes([name for name, _ in results])


def _json_twins(artist_vectors, command, question):
    """A --json answer's fields on the asked artist's twins, for `similar`: how many (`twins`) and
    what they share (`twins_share`)."""
    if command != "similar":
        return {}
    return {"twins": artist_vectors.twins(question),
            "twins_share": artist_vectors.memberships(question)}


def _tied_rows(artist_vectors, rows):
    """The --json rows, each with the other answers it is a twin of (`tied_with`)."""
    tied = {name: group for group, _ in artist_vectors.tied_answers([row["artist"] for row in rows])
            for name in group}
    return [{**row, "tied_with": [name for name in tied.get(row["artist"], ())
                                  if name != row["artist"]]} for row in rows]


def _json_row(artist_vectors, name, similarity, asked):
    i = artist_vectors.index(name)
    return {"artist": name, "similarity": round(similarity, 6),
            "mean_score": round(float(artist_vectors.artists.mean_scores[i]), 4),
            "genres": list(artist_vectors.artists.genres[i]),
            "shares": artist_vectors.shared(name, asked)}


def _json_list(items):
    """A JSON list with an item a line."""
    return "[" + ",\n ".join(json_text(item) for item in items) + "]"


def _say_which_run(logs, run):
    """Which run answers, on stderr, where the log folder holds several: the latest run there
    may not be the one the user means (a demo trained since, say)."""
    names = run_folder.run_names(logs)
    if len(names) > 1:
        data = "the demo catalog" if run.record.data == DEMO_SOURCE else run.record.data
        # One line, whatever run.json's `data` holds: a file in a shared log folder.
        print(one_line(f"run.py: note: answering from {run.folder}, the latest of {len(names)} "
                       f"runs in {logs} ({run.record.artists:,} artists from {data}); --run NAME "
                       f"asks another"), file=sys.stderr)
