"""The data's entry point: where the Pitchfork data is found, and reading it into a Catalog.

The catalog is read from the Kaggle `database.sqlite` (tables `reviews` and `genres`, joined on
`reviewid`; `artists`, which credits each review to each of its artists, and the tables of the
other context kinds, such as `labels` and `years`, where present) or from the same tables as CSV
files in a folder. With no data at hand, the demo catalog (demo_data.py) is used, so that a fresh
clone runs with no download.
"""
import ctypes
import os
import sqlite3
import urllib.parse
import warnings

import numpy as np

from catalog import MAX_TEXT_CHARACTERS, Catalog, field_text
from contexts import CONTEXTS, REQUIRED_TABLES, SCORES, review_ids
from demo_data import demo_tables
from errors import DataError, shown
from ragged import Ragged

DATA_ENV = "BANDS2VEC_DATA"
REPO_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
KAGGLE_URL = "https://www.kaggle.com/datasets/nolanbconaway/pitchfork-data"
DEMO_SOURCE = "demo"
# The table that credits a review to each of its artists: a joint release is a row per artist.
ARTISTS_TABLE = "artists"
# Each table read: its columns (the reviews' own first, then the artists', then the context kinds').
TABLES = {"reviews": CONTEXTS["score"].columns, ARTISTS_TABLE: ("reviewid", "artist"),
          **{kind.table: kind.columns for kind in CONTEXTS.values()}}
# Columns of names: a SQLite BLOB in them is text in UTF-8, or the data is refused.
TEXT_COLUMNS = frozenset({"artist", "genre", "label"})
# Names in the data that are not one artist (compilations), in any case: left out by default.
NOT_AN_ARTIST = frozenset({"various artists", "soundtrack"})


# ---------------------------------------------------------------------------------------------
# Reading the data
# ---------------------------------------------------------------------------------------------

def resolve_data_path(path=None):
    """The data's path: --data, then $BANDS2VEC_DATA, then the repository's data/, else the demo."""
    if path is not None and not str(path).strip():
        raise DataError("--data is empty: give the data's path, or leave --data out for the data "
                        "found (see docs/data.md)")
    if path:
        return path
    if os.environ.get(DATA_ENV):
        if not os.environ[DATA_ENV].strip():
            raise DataError(f"${DATA_ENV} is blank: set it to the data's path, or unset it for "
                            f"the data found (see docs/data.md)")
        return os.environ[DATA_ENV]
    if os.path.isdir(REPO_DATA_DIR) and _folder_source(REPO_DATA_DIR):
        return REPO_DATA_DIR
    return DEMO_SOURCE


def load_catalog(path=None, include_pseudo_artists=False):
    """The catalog at `path` (a SQLite file, a folder of CSVs or of database.sqlite) or the demo."""
    path = resolve_data_path(path)
    if path == DEMO_SOURCE:
        tables = demo_tables()
    elif os.path.isdir(path):
        source = _folder_source(path)
        if source is None:
            raise DataError(f"{path}: no database.sqlite, and no reviews.csv and genres.csv "
                            f"in this folder")
        tables = read_sqlite(source) if source.endswith(".sqlite") else read_csv_folder(path)
        path = source
    elif os.path.isfile(path):
        tables = read_sqlite(path)
    elif os.path.exists(path):  # a FIFO (which a read would wait on), a device such as /dev/null
        raise DataError(f"{path}: not a regular file or a folder; --data takes a SQLite file, or "
                        f"a folder of one or of CSVs")
    else:
        raise DataError(f"{path}: no such file or folder")
    catalog = build_catalog(tables, source=path, include_pseudo_artists=include_pseudo_artists)
    del tables
    _return_freed_memory()
    return catalog


def _return_freed_memory():
    """Hand the memory that the tables and pandas freed back to the system. glibc keeps it
    otherwise, and at a million artists that is about 0.5 GB of a run's peak."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _folder_source(folder):
    sqlite_path = os.path.join(folder, "database.sqlite")
    if os.path.isfile(sqlite_path):
        return sqlite_path
    if all(os.path.isfile(os.path.join(folder, name)) for name in ("reviews.csv", "genres.csv")):
        return folder
    return None


def read_sqlite(path):
    """{table: frame} of a Kaggle-schema SQLite file; `artists`, `labels`, `years` only if there."""
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error})") from None
    if header != b"SQLite format 3\x00":
        raise DataError(f"{path}: not a SQLite database")
    try:
        # Its path quoted in the URI: a `?`, `#` or `%` in it would name another file.
        uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
        with sqlite3.connect(uri, uri=True) as connection:
            present = {row[0] for row in
                       connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = [table for table in REQUIRED_TABLES if table not in present]
            if missing:
                raise DataError(f"{path}: no {' or '.join(missing)} table "
                                f"(expected the Kaggle Pitchfork schema)")
            return {table: _read_table(connection, path, table, columns)
                    for table, columns in TABLES.items() if table in present}
    except sqlite3.DatabaseError as error:
        raise DataError(f"{path}: unreadable SQLite database ({error})") from None


def _read_table(connection, path, table, columns):
    import pandas as pd

    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    _require_columns(f"{path}: table {table}", present, columns)
    frame = pd.read_sql_query(f"SELECT {', '.join(map(_selected, columns))} FROM {table}",
                              connection)
    for column in TEXT_COLUMNS.intersection(columns):
        if connection.execute(f"SELECT 1 FROM {table} WHERE typeof({column}) = 'blob' "
                              f"LIMIT 1").fetchone():
            frame[column] = _blobs_as_text(frame[column], f"{path}: table {table}, column {column}")
    return frame


def _selected(column):
    """The column as the query selects it: a name, genre or label that SQLite holds as a number is
    its text there (311 is '311'; in pandas, a column of numbers and NULLs would be 311.0)."""
    if column not in TEXT_COLUMNS:
        return column
    return (f"CASE WHEN typeof({column}) IN ('integer', 'real') THEN CAST({column} AS TEXT) "
            f"ELSE {column} END AS {column}")


def _blobs_as_text(column, where):
    """A column with the bytes (SQLite BLOBs) in it decoded as UTF-8 text; a DataError naming
    `where` if one is not UTF-8."""
    def text(value):
        if not isinstance(value, bytes):
            return value
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{where}: a value that is not UTF-8 text ({shown(value)}); "
                            f"store the names as text") from None
    return column.map(text)


def read_csv_folder(folder):
    """{table: frame} of a folder's `<table>.csv` files; `artists`, `labels`, `years` if there."""
    return {table: _read_csv(os.path.join(folder, f"{table}.csv"), columns)
            for table, columns in TABLES.items()
            if table in REQUIRED_TABLES or os.path.isfile(os.path.join(folder, f"{table}.csv"))}


def _read_csv(path, columns):
    import pandas as pd

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        # Text first, numbers checked later. NULL is a bare NA, as R and the Kaggle export write it.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", "NA"],
                            encoding="utf-8")
    except (ValueError, OSError) as error:  # parser errors and UnicodeDecodeError are ValueErrors
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: malformed CSV ({reason})") from None
    _require_columns(path, set(frame.columns), columns)
    return frame[list(columns)]


def _require_columns(where, present, columns):
    missing = [column for column in columns if column not in present]
    if missing:
        raise DataError(f"{where}: missing column {', '.join(missing)}")


def build_catalog(tables, source, include_pseudo_artists=False):
    """The catalog of {table: frame}: one artist per name, each review credited to each of its
    artists (credited_reviews), a duplicated review counted once, artists with no genre kept,
    compilations' pseudo-artists (NOT_AN_ARTIST) left out by default."""
    import pandas as pd

    tables = {table: _with_text_values(frame, f"{source}: table {table}")
              for table, frame in tables.items()}
    reviews = tables["reviews"]
    reviews = reviews.assign(
        reviewid=review_ids(reviews["reviewid"]),
        score=pd.to_numeric(reviews["score"], errors="coerce"),
    )
    reviews = credited_reviews(reviews, tables.get(ARTISTS_TABLE)).dropna(
        subset=["reviewid", "artist"])
    # Artists as integer codes in name order: every later sort, merge and group is on integers.
    codes, names = pd.factorize(reviews["artist"], sort=True)
    reviews = reviews.assign(artist=codes)
    valid = reviews["score"].between(*SCORES)
    if not valid.all():  # a review in the tables twice counts once, by a copy of a valid score
        keys = [reviews["reviewid"], reviews["artist"]]
        reviews = reviews[valid | ~valid.groupby(keys).transform("any")]
    reviews = reviews.drop_duplicates(subset=["reviewid", "artist"])
    # A missing, non-numeric or out-of-range score is skipped and counted, not guessed at.
    valid = reviews["score"].between(*SCORES)
    reviews, dropped = reviews[valid], int((~valid).sum())
    pseudo = (np.isin([name.casefold() for name in names], list(NOT_AN_ARTIST))
              & (not include_pseudo_artists))
    left_out = {names[code]: n for code, n in
                reviews["artist"][pseudo[reviews["artist"]]].value_counts().items()}
    reviews = reviews[~pseudo[reviews["artist"]]]
    if reviews.empty:
        raise DataError(f"{source}: no reviews with an artist, a score from 0 to 10 and a reviewid "
                        f"that is a whole number up to 2 ** 53")
    _say_unusable_ids(tables["reviews"], source)
    # Codes again, 0..V-1 over the artists left (an artist whose every score was invalid has gone).
    kept, codes = np.unique(reviews["artist"].to_numpy(), return_inverse=True)
    names = names[kept]
    reviews = reviews.assign(artist=codes)
    contexts = {name: kind.read(tables[kind.table], reviews, len(names), source)
                for name, kind in CONTEXTS.items()
                if kind.table in tables and kind.table != "reviews"}
    # Each artist's reviews in id order: one sort, and each artist's slice of it.
    reviews = reviews.sort_values(["artist", "reviewid"])
    by_artist = reviews["artist"]
    return Catalog([str(name) for name in names.tolist()], source=source, tables=tables,
                   dropped_scores=dropped, left_out=left_out,
                   include_pseudo_artists=include_pseudo_artists, contexts=contexts,
                   review_ids=Ragged.from_sorted(by_artist, reviews["reviewid"].to_numpy(np.int64),
                                                 len(names)),
                   scores=Ragged.from_sorted(by_artist, reviews["score"].to_numpy(np.float64),
                                             len(names)))


def _say_unusable_ids(reviews, source):
    """A warning of how many reviews were skipped for their reviewid, where some were: a catalog
    of half its ids past 2 ** 53 (as floats or text) lost half its reviews without a word."""
    unusable = int(review_ids(reviews["reviewid"]).isna().sum())
    if unusable:
        warnings.warn(f"{source}: skipped {unusable:,} of {len(reviews):,} reviews whose reviewid "
                      f"is missing or no whole number (as a float or text, up to 2 ** 53)",
                      stacklevel=4)


def _with_text_values(frame, where):
    """`frame` with its names, genres and labels as _text_values makes them."""
    return frame.assign(**{column: _text_values(frame[column], f"{where}, column {column}")
                           for column in TEXT_COLUMNS.intersection(frame.columns)})


def _text_values(column, where):
    """A column of names, genres or labels, each as metadata.tsv holds it (catalog.field_text:
    `a\tb` there is `a b`, so here they are one; its reader strips the spaces around a value,
    so `metal ` is `metal`) and as text; None where blank, as where NULL. A DataError naming
    `where` for a value too long to be one."""
    values = {value: field_text(str(value)).strip() or None for value in column.dropna().unique()}
    longest = max(values.values(), key=lambda text: len(text or ""), default=None)
    if longest and len(longest) > MAX_TEXT_CHARACTERS:
        raise DataError(f"{where}: a value of {len(longest):,} characters ({shown(longest)}), "
                        f"where a name, genre or label takes at most {MAX_TEXT_CHARACTERS:,}")
    return column.map(values)


def credited_reviews(reviews, artists):
    """The reviews frame with a row per review and artist it credits: a review's rows in the
    `artists` table where it has some (`lou reed, metallica` is `lou reed` and `metallica`), else
    its own `reviews.artist`, as with no artists table at all."""
    import pandas as pd

    if artists is None:
        return reviews
    artists = artists.assign(reviewid=review_ids(artists["reviewid"])).dropna().drop_duplicates()
    listed = reviews["reviewid"].isin(artists["reviewid"]).to_numpy()
    joint = reviews.loc[listed, ["reviewid", "score"]].merge(artists, on="reviewid")
    return pd.concat([reviews[~listed], joint[list(reviews.columns)]], ignore_index=True)
