"""metadata.tsv: the artists' facts, one row per artist in vocabulary order, for the projector to
label and colour by, and for queries to read back. Each context kind owns its columns."""
import os

import npy_files
import run_record
from atomic_files import open_regular, write_text
from catalog import MAX_TEXT_CHARACTERS, ArtistFacts, field_text
from contexts import CONTEXTS, metadata_numbers
from errors import RunError, shown
from options import MIN_ARTISTS

METADATA_FILE = "metadata.tsv"
# Characters a row may take: the full data's longest is 272, and an artist's names, genres and
# labels are at most MAX_TEXT_CHARACTERS each, so a longer one is no row a run wrote
# (a file followed by gigabytes of NULs is refused at its first megabyte of them, not read whole).
MAX_ROW_CHARACTERS = 2**20


def tsv_field(value):
    """A value that cannot break a TSV row: tabs and line breaks become spaces."""
    return field_text(str(value)) if value != "" else " "


def write_metadata(folder, facts, kmeans_clusters, rows=None):
    """metadata.tsv in `folder`: a row per artist of `facts` (an ArtistFacts), or per artist in
    `rows` (the projector's sample): its name, each kind's columns and its k-means cluster."""
    rows = range(len(facts)) if rows is None else rows
    columns = {"artist": [facts.names[i] for i in rows]}
    for kind in CONTEXTS.values():
        columns.update(kind.to_metadata(facts, rows))
    columns["cluster"] = [int(kmeans_clusters[i]) for i in rows]
    lines = ["\t".join(columns)]
    lines += ["\t".join(map(tsv_field, row)) for row in zip(*columns.values())]
    write_text(os.path.join(folder, METADATA_FILE), "\n".join(lines) + "\n")


def read_artists(folder):
    """The artists of a run's metadata.tsv as an ArtistFacts, and their k-means clusters; a
    RunError in one line naming the file where a column is missing or a value is not a number."""
    path = os.path.join(folder, METADATA_FILE)
    columns = read_columns(folder)
    if len(columns["artist"]) < MIN_ARTISTS:
        raise RunError(f"{path}: malformed metadata ({len(columns['artist'])} artists, where a "
                       f"run has at least {MIN_ARTISTS})")
    try:
        _check_names(columns["artist"])
        facts = {}
        for kind in CONTEXTS.values():
            facts.update(kind.from_metadata(columns))
        # From 0 to one fewer than the artists, or -1 for all where a folder has none (save()).
        kmeans_clusters = metadata_numbers(columns, "cluster", whole=True,
                                           within=(-1, len(columns["artist"]) - 1))
        if (kmeans_clusters < 0).any() and not (kmeans_clusters < 0).all():
            raise ValueError(f"line {(kmeans_clusters < 0).argmax() + 2}: cluster is -1, where "
                             f"other artists have one")
    except KeyError as error:
        raise RunError(f"{path}: malformed metadata (no column {error})") from None
    except ValueError as error:
        raise RunError(f"{path}: malformed metadata ({error})") from None
    return ArtistFacts.from_facts(columns["artist"], facts), kmeans_clusters


def _check_names(names):
    """A ValueError naming the first line whose artist is blank, longer than the data may have, or
    an earlier line's: no run writes such a name, and a name asks for one artist."""
    first = {}
    for line, name in enumerate(names, start=2):
        if not name.strip():
            raise ValueError(f"line {line}: artist is blank")
        if name != name.strip():  # the data's are stripped: ' x ' beside 'x' is a second 'x'
            raise ValueError(f"line {line}: artist {shown(name)} has spaces around it")
        if len(name) > MAX_TEXT_CHARACTERS:
            raise ValueError(f"line {line}: artist of {len(name):,} characters, where a name has "
                             f"at most {MAX_TEXT_CHARACTERS:,}")
        if first.setdefault(name, line) != line:
            raise ValueError(f"line {line}: artist {shown(name)} is line {first[name]}'s too")


def read_columns(folder):
    """{column: [text per artist]} of a run's metadata.tsv, read a row at a time: a row longer than
    MAX_ROW_CHARACTERS, of other columns than the header's, or past the artists the run counts
    is refused as soon as it is met (a file of gigabytes is not read whole); fewer rows than its
    run.json counts, at the end."""
    path, (most, counted, exactly) = os.path.join(folder, METADATA_FILE), _counted_rows(folder)
    try:
        with open_regular(path, "r", encoding="utf-8") as f:
            header, rows = _row(f, path), []
            while row := _row(f, path):
                if len(row) != len(header):
                    header = []  # refused below, before another row is read
                    break
                if len(rows) == most:
                    raise RunError(f"{path}: malformed metadata (more rows than {counted})")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable metadata "
                       f"({getattr(error, 'strerror', None) or error})") from None
    if "artist" not in header:
        raise RunError(f"{path}: malformed metadata (expected a header and a row per artist)")
    if exactly and len(rows) < most:
        raise RunError(f"{path}: malformed metadata ({len(rows):,} rows, where "
                       f"{run_record.RUN_FILE} counts {most:,} artists)")
    return {column: list(values)
            for column, values in zip(header, zip(*rows) if rows else [()] * len(header))}


def _row(f, path):
    """The next row of metadata.tsv, its fields; [] at its end; a RunError for a row that is longer
    than any a run writes."""
    line = f.readline(MAX_ROW_CHARACTERS + 1)
    if len(line) > MAX_ROW_CHARACTERS:
        raise RunError(f"{path}: malformed metadata (a row longer than {MAX_ROW_CHARACTERS:,} "
                       f"characters, where a run writes a few hundred)")
    return line.rstrip("\n").split("\t") if line else []


def _counted_rows(folder):
    """(the most rows, what counts them, whether exactly) of the metadata.tsv in `folder`: its
    run.json counts them; else (a folder ArtistVectors.save wrote, say) its vectors.npy's header
    bounds them, loosely: which of the two files is wrong, the vectors' own check says where they
    differ by a few. (None, None, False) where neither can be read."""
    try:
        artists = run_record.read(folder).artists
        return artists, f"the {artists:,} artists {run_record.RUN_FILE} counts", True
    except RunError:
        from vector_files import VECTORS_FILE  # imported here: vector_files imports this module
        rows = npy_files.declared_rows(os.path.join(folder, VECTORS_FILE))
        return ((None, None, False) if rows is None else
                (2 * rows, f"twice the {rows:,} vectors of {VECTORS_FILE}; one of the two is "
                 f"damaged", False))
