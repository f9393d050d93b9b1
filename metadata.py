"""metadata.tsv: the artists' facts, one row per artist in vocabulary order, for the projector to
label and colour by, and for queries to read back. Each context kind owns its columns."""
import os

from atomic_files import open_regular, write_text
from catalog import ArtistFacts
from contexts import CONTEXTS, metadata_numbers
from errors import RunError
from options import MIN_ARTISTS

METADATA_FILE = "metadata.tsv"


def tsv_field(value):
    """A value that cannot break a TSV row: tabs and line breaks become spaces."""
    return " ".join(str(value).replace("\t", " ").splitlines()) if value != "" else " "


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
        facts = {}
        for kind in CONTEXTS.values():
            facts.update(kind.from_metadata(columns))
        kmeans_clusters = metadata_numbers(columns, "cluster", whole=True)
    except KeyError as error:
        raise RunError(f"{path}: malformed metadata (no column {error})") from None
    except ValueError as error:
        raise RunError(f"{path}: malformed metadata ({error})") from None
    return ArtistFacts.from_facts(columns["artist"], facts), kmeans_clusters


def read_columns(folder):
    """{column: [text per artist]} of a run's metadata.tsv."""
    path = os.path.join(folder, METADATA_FILE)
    try:
        with open_regular(path, "r", encoding="utf-8") as f:
            header, *rows = [line.rstrip("\n").split("\t") for line in f] or [[]]
    except (OSError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: unreadable metadata "
                       f"({getattr(error, 'strerror', None) or error})") from None
    if "artist" not in header or any(len(row) != len(header) for row in rows):
        raise RunError(f"{path}: malformed metadata (expected a header and a row per artist)")
    return {column: list(values)
            for column, values in zip(header, zip(*rows) if rows else [()] * len(header))}
