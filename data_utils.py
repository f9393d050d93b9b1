"""Pitchfork data: the artist catalog, its context groups, and the (target, context) pair sampler.

The catalog is read from the Kaggle `database.sqlite` (tables `reviews` and `genres`, joined on
`reviewid`, and `labels` and `years` where present) or from the same tables as CSV files in a folder.
With no data at hand, a small fictional demo catalog is generated so that a fresh clone runs with no
download. The per-artist facts (mean score, score bucket, primary genre, era...) are derived once, by the
rules below, into the catalog's `ArtistTable`, which a run saves and queries read back.

pandas is imported by the functions that read and group tables, not here: a query on a saved run reads
its ArtistTable with numpy alone, and importing pandas would cost it more than the query.
"""
import collections
import copy
import ctypes
import functools
import hashlib
import os
import sqlite3
import dataclasses
from dataclasses import dataclass

import numpy as np

DATA_ENV = "BANDS2VEC_DATA"
REPO_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
KAGGLE_URL = "https://www.kaggle.com/datasets/nolanbconaway/pitchfork-data"
DEMO_SOURCE = "demo"
GENRES = ("rock", "electronic", "experimental", "rap", "pop/r&b", "metal", "folk/country", "jazz", "global")
NO_GENRE = "none"

REVIEW_COLUMNS = ("reviewid", "artist", "score")
GENRE_COLUMNS = ("reviewid", "genre")
LABEL_COLUMNS = ("reviewid", "label")
YEAR_COLUMNS = ("reviewid", "year")
# Each table: its columns, and whether every catalog needs it (labels and years only some contexts).
TABLES = {"reviews": (REVIEW_COLUMNS, True), "genres": (GENRE_COLUMNS, True),
          "labels": (LABEL_COLUMNS, False), "years": (YEAR_COLUMNS, False)}

# Names in the data that are not one artist (compilations): left out of the vocabulary by default.
NOT_AN_ARTIST = frozenset({"various artists", "soundtrack"})
# Values of `labels.label` that are not a record label, so they make no label context.
NOT_A_LABEL = frozenset({"self-released", "self", "none", "unknown", "n/a", "no label", ""})
# Release years are grouped in eras of this many years (2000-2004, 2005-2009, ...).
ERA_YEARS = 5


class DataError(Exception):
    """Input data that cannot be used; its message is one line for the user."""


# ---------------------------------------------------------------------------------------------
# Per-artist facts: each rule once, and the table they make
# ---------------------------------------------------------------------------------------------

def score_buckets(mean_scores):
    """Mean scores rounded half up, as people round (numpy and Python send 6.5 to 6 but 7.5 to 8)."""
    return np.floor(np.asarray(mean_scores) + 0.5).astype(np.int64)


def primary_genre(genres):
    """An artist's most-reviewed genre, or NO_GENRE."""
    return genres[0] if genres else NO_GENRE


def main_label(labels):
    """An artist's most-reviewed record label, or empty."""
    return labels[0] if labels else ""


def era_starts(years):
    """The first year of each year's era: 2005 for 2007 (and for 2009.5)."""
    years = np.floor(np.asarray(years)).astype(np.int64)
    return years - years % ERA_YEARS


def eras(mean_years):
    """The era of each mean release year, such as `2005-2009`; empty where none is known (NaN)."""
    mean_years = np.asarray(mean_years, dtype=np.float64)
    known = np.isfinite(mean_years)
    names = np.full(len(mean_years), "", dtype=object)
    starts, where = np.unique(era_starts(mean_years[known]), return_inverse=True)
    names[known] = np.array([f"{start}-{start + ERA_YEARS - 1}" for start in starts.tolist()] or [""],
                            dtype=object)[where]
    return names


@dataclass(frozen=True)
class ArtistTable:
    """What the data says of each artist, one row per artist in vocabulary order: derived once from a catalog
    (`Catalog.table`), saved with a run as its metadata.tsv, and read by queries, the quality report, the
    plots and the projector. `labels`, `main_labels`, `years` and `eras` are None where the data has no
    labels or years table."""
    names: list
    genres: list  # a tuple per artist, most reviewed first
    primary_genres: np.ndarray
    mean_scores: np.ndarray
    score_buckets: np.ndarray
    review_counts: np.ndarray
    labels: list = None  # a tuple per artist, most reviewed first
    main_labels: np.ndarray = None
    years: np.ndarray = None  # mean release year, NaN where none is known
    eras: np.ndarray = None

    def __len__(self):
        return len(self.names)


@dataclass(frozen=True)
class Artist:
    """One artist, as the tutorial's `Artist` class (name, reviews, genres and scores) with the facts the
    catalog's ArtistTable derives from them."""
    name: str
    review_ids: tuple
    genres: tuple  # distinct genres, most reviewed first
    scores: tuple  # one score per review
    labels: tuple  # distinct record labels (real ones only), most reviewed first
    years: tuple  # release years of the reviewed records, where known
    mean_score: float
    score_bucket: int
    primary_genre: str
    main_label: str
    mean_year: float  # None where no year is known
    era: str  # such as `2005-2009`; empty where no year is known


@dataclass(frozen=True)
class Ragged:
    """A list per artist in one flat array: artist i's are values[bounds[i]:bounds[i + 1]]. A million
    artists' reviews are a few arrays, not millions of tuples."""
    values: np.ndarray
    bounds: np.ndarray

    @classmethod
    def from_sorted(cls, owners, values, n_artists):
        """From two columns sorted by owner (artist id)."""
        return cls(np.asarray(values), np.searchsorted(np.asarray(owners), np.arange(n_artists + 1)))

    def __getitem__(self, i):
        return tuple(self.values[self.bounds[i]:self.bounds[i + 1]].tolist())

    def __len__(self):
        return len(self.bounds) - 1

    @property
    def counts(self):
        return np.diff(self.bounds)

    @property
    def owners(self):
        """The artist id of each value."""
        return np.repeat(np.arange(len(self), dtype=np.int32), self.counts)

    def sums(self):
        # Added in order from 0, as Python's sum() over the artist's tuple adds them.
        return np.bincount(self.owners, weights=self.values, minlength=len(self))

    def tuples(self):
        """Every artist's tuple; equal tuples are one object (most artists share their genres with others)."""
        shared = {}
        return [shared.setdefault(values, values) for values in map(self.__getitem__, range(len(self)))]


# ---------------------------------------------------------------------------------------------
# Contexts: for each kind, the groups an artist belongs to, as (artist ids, group key columns) with one
# row per membership. A pair of one kind is two members of one of its groups. A new kind is one more entry.
# ---------------------------------------------------------------------------------------------

Context = collections.namedtuple("Context", ["memberships", "table", "weight"])


def _label_within_genre(catalog):
    """Label within genre: a major's folk and rap artists are not one group (docs/contexts.md)."""
    import pandas as pd

    genreless = np.flatnonzero(catalog.genres.counts == 0).astype(np.int32)
    genres = pd.DataFrame({"artist": np.concatenate([catalog.genres.owners, genreless]),
                           "genre": np.concatenate([catalog.genres.values, np.full(len(genreless), NO_GENRE, object)])})
    labels = pd.DataFrame({"artist": catalog.labels.owners, "label": catalog.labels.values})
    both = labels.merge(genres, on="artist")
    return both["artist"].to_numpy(), [both["label"].to_numpy(), both["genre"].to_numpy()]


CONTEXTS = {
    "genre": Context(lambda catalog: (catalog.genres.owners, [catalog.genres.values]), "genres", 0.6),
    "score": Context(lambda catalog: (np.arange(len(catalog)), [catalog.table.score_buckets]), "reviews", 0.4),
    "label": Context(_label_within_genre, "labels", 0.6),
    "year": Context(lambda catalog: (catalog.years.owners, [era_starts(catalog.years.values)]), "years", 0.2),
}


DEFAULT_CONTEXTS = "genre,score"  # the tutorial's


def parse_contexts(spec, genre_share=None):
    """{kind: share} from `genre,score,label=0.3` and, given, --genre-share's share of genre: shares not
    given are filled in by the kinds' weights. Options hold the result; nothing parses a spec again.

    A ValueError in one line for an unknown kind, a share outside 0-1, or shares that add up to over 1.
    """
    given = _given_shares(spec)
    if genre_share is not None:
        given["genre"] = _genre_share(given, genre_share)
    fixed = sum(share for share in given.values() if share is not None)
    if fixed > 1 + 1e-5:  # canonical specs keep six digits
        raise ValueError(f"--contexts: the shares add up to {fixed:g}, over 1")
    free = [kind for kind, share in given.items() if share is None]
    if not free and abs(fixed - 1) > 1e-5:
        raise ValueError(f"--contexts: the shares add up to {fixed:g}; they must add up to 1 "
                         f"(or leave one kind without a share to take the rest)")
    weights = sum(CONTEXTS[kind].weight for kind in free)
    # Six digits, as format_contexts prints them: the shares a run is trained with are the ones it shows.
    return {kind: float(f"{share if share is not None else (1 - fixed) * CONTEXTS[kind].weight / weights:.6g}")
            for kind, share in given.items()}


def _given_shares(spec):
    """{kind: share, or None where the spec gives none}, in the spec's order."""
    given = {}
    for item in spec.split(","):
        kind, _, share = (part.strip() for part in item.partition("="))
        if kind not in CONTEXTS:
            raise ValueError(f"--contexts: unknown context {kind!r}; choose from {', '.join(CONTEXTS)}")
        if kind in given:
            raise ValueError(f"--contexts: {kind} is given twice")
        given[kind] = _share(kind, share) if share else None
    return given


def _share(kind, text):
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"--contexts: the share of {kind} must be from 0 to 1, not {text.strip()!r}")
    return share


def _genre_share(given, genre_share):
    """--genre-share, which a share of genre in --contexts may not contradict."""
    if "genre" not in given:
        raise ValueError("--genre-share needs the genre context in --contexts")
    if given["genre"] is not None:
        raise ValueError("give the genre share once: in --contexts (genre=X) or as --genre-share")
    if not 0.0 <= genre_share <= 1.0:
        raise ValueError(f"--genre-share must be from 0 to 1, not {genre_share}")
    return genre_share


def format_contexts(shares):
    """The canonical spec of {kind: share}, for people and TensorBoard: `genre=0.6,score=0.4`."""
    return ",".join(f"{kind}={share:.6g}" for kind, share in shares.items())


class Catalog:
    """The artists, indexed 0..V-1, as columns (a name each, and Ragged lists of reviews, scores, genres,
    labels and years), with their context groups (the tutorial's genre and score dictionaries).
    `catalog.artist(i)`, `catalog[name]` and iteration give `Artist` records."""

    def __init__(self, names, *, review_ids, scores, genres, source, labels=None, years=None, dropped_scores=0,
                 tables=("reviews", "genres"), left_out=None, include_pseudo_artists=False):
        self.names = list(names)
        none = Ragged(np.empty(0, dtype=object), np.zeros(len(self.names) + 1, dtype=np.int64))
        self.review_ids, self.scores, self.genres = review_ids, scores, genres
        self.labels = none if labels is None else labels
        self.years = none if years is None else years
        self.source = source
        self.dropped_scores = dropped_scores  # reviews skipped for a missing or out-of-range score
        self.tables = frozenset(tables)  # the tables the data had
        self.left_out = dict(left_out or {})  # pseudo-artist -> its reviews, left out of the vocabulary
        self.include_pseudo_artists = include_pseudo_artists
        self._groups = {}

    def replace(self, **columns):
        """This catalog with some of its Ragged columns replaced (such as labels=...), the same artists."""
        catalog = copy.copy(self)
        vars(catalog).update(columns, _groups={})
        vars(catalog).pop("table", None)  # derived from the columns replaced
        return catalog

    @functools.cached_property
    def table(self):
        """The ArtistTable: every per-artist fact, derived here once by the rules above."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_scores = self.scores.sums() / self.scores.counts
            mean_years = self.years.sums() / self.years.counts  # NaN where no year is known
        genres = self.genres.tuples()
        table = ArtistTable(names=self.names, genres=genres,
                            primary_genres=np.array([primary_genre(g) for g in genres], dtype=object),
                            mean_scores=mean_scores, score_buckets=score_buckets(mean_scores),
                            review_counts=self.review_ids.counts)
        if "labels" in self.tables:
            labels = self.labels.tuples()
            table = dataclasses.replace(table, labels=labels,
                                        main_labels=np.array([main_label(l) for l in labels], dtype=object))
        if "years" in self.tables:
            table = dataclasses.replace(table, years=mean_years, eras=eras(mean_years))
        return table

    def context_groups(self, kind):
        """{group: artist ids} of one context kind; a DataError if the data lacks the kind's table."""
        if kind not in self._groups:
            context = CONTEXTS[kind]
            if context.table not in self.tables:
                raise DataError(f"{self.source}: no {context.table} table, which the {kind} context needs")
            self._groups[kind] = _group_ids(*context.memberships(self))
        return self._groups[kind]

    @property
    def genre_dict(self):
        return self.context_groups("genre")

    @property
    def score_dict(self):
        return self.context_groups("score")

    def __len__(self):
        return len(self.names)

    def artist(self, i):
        table = self.table
        labels, years = self.labels[i], self.years[i]
        return Artist(self.names[i], self.review_ids[i], table.genres[i], self.scores[i], labels, years,
                      mean_score=float(table.mean_scores[i]), score_bucket=int(table.score_buckets[i]),
                      primary_genre=table.primary_genres[i],
                      main_label=table.main_labels[i] if table.main_labels is not None else "",
                      mean_year=float(table.years[i]) if years else None,
                      era=table.eras[i] if years else "")

    def __iter__(self):
        return map(self.artist, range(len(self)))

    def __getitem__(self, name):
        return self.artist(self.index[name])

    @functools.cached_property
    def index(self):
        return {name: i for i, name in enumerate(self.names)}

    @functools.cached_property
    def fingerprint(self):
        """A hash of all training reads of the catalog: a run and its resumption, or the tasks of a cluster,
        that agree on it train on the same data."""
        digest = hashlib.sha1("\x1f".join(self.names).encode("utf-8", "surrogatepass"))
        for column in (self.review_ids, self.scores, self.genres, self.labels, self.years):
            values = column.values
            digest.update(column.bounds.tobytes())
            digest.update("\x1f".join(map(str, values)).encode("utf-8", "surrogatepass") if values.dtype == object
                          else values.tobytes())
        return digest.hexdigest()

    @property
    def review_count(self):
        return len(self.review_ids.values)


def _group_ids(artist_ids, keys):
    """{key: artist ids}, keys sorted, from one row per membership (artist id, key columns)."""
    import pandas as pd

    columns = list(range(len(keys)))
    frame = pd.DataFrame(dict(enumerate(keys))).assign(artist=artist_ids).drop_duplicates()
    frame = frame.sort_values(columns + ["artist"], kind="stable")
    groups = frame.groupby(columns if len(columns) > 1 else columns[0], sort=True)["artist"]
    return {key: ids.to_numpy(dtype=np.int32) for key, ids in groups}


# ---------------------------------------------------------------------------------------------
# Reading the data
# ---------------------------------------------------------------------------------------------

def resolve_data_path(path=None):
    """Where the data comes from: --data, then $BANDS2VEC_DATA, then data/ in the repository, else the demo."""
    if path:
        return path
    if os.environ.get(DATA_ENV):
        return os.environ[DATA_ENV]
    if os.path.isdir(REPO_DATA_DIR) and _folder_source(REPO_DATA_DIR):
        return REPO_DATA_DIR
    return DEMO_SOURCE


def load_catalog(path=None, include_pseudo_artists=False):
    """The catalog at `path` (a SQLite file, a folder of CSVs or one holding database.sqlite) or the demo."""
    path = resolve_data_path(path)
    if path == DEMO_SOURCE:
        tables = demo_tables()
    elif os.path.isdir(path):
        source = _folder_source(path)
        if source is None:
            raise DataError(f"{path}: no database.sqlite, and no reviews.csv and genres.csv in this folder")
        tables = read_sqlite(source) if source.endswith(".sqlite") else read_csv_folder(path)
        path = source
    elif os.path.isfile(path):
        tables = read_sqlite(path)
    else:
        raise DataError(f"{path}: no such file or folder")
    catalog = build_catalog(tables, source=path, include_pseudo_artists=include_pseudo_artists)
    del tables
    _return_freed_memory()
    return catalog


def _return_freed_memory():
    """Hand the memory that the tables and pandas freed back to the system. glibc keeps it otherwise, and
    at a million artists that is about 0.5 GB of a run's peak."""
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
    """{table: frame} of a Kaggle-schema SQLite file: `reviews` and `genres`, `labels` and `years` if there."""
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as error:
        raise DataError(f"{path}: cannot read it ({error.strerror or error})") from None
    if header != b"SQLite format 3\x00":
        raise DataError(f"{path}: not a SQLite database")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = [table for table, (_, required) in TABLES.items() if required and table not in present]
            if missing:
                raise DataError(f"{path}: no {' or '.join(missing)} table (expected the Kaggle Pitchfork schema)")
            return {table: _read_table(connection, path, table, columns)
                    for table, (columns, _) in TABLES.items() if table in present}
    except sqlite3.DatabaseError as error:
        raise DataError(f"{path}: unreadable SQLite database ({error})") from None


def _read_table(connection, path, table, columns):
    import pandas as pd

    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    _require_columns(f"{path}: table {table}", present, columns)
    return pd.read_sql_query(f"SELECT {', '.join(columns)} FROM {table}", connection)


def read_csv_folder(folder):
    """{table: frame} of `reviews.csv` and `genres.csv` in a folder, and `labels.csv`, `years.csv` if there."""
    return {table: _read_csv(os.path.join(folder, f"{table}.csv"), columns)
            for table, (columns, required) in TABLES.items()
            if required or os.path.isfile(os.path.join(folder, f"{table}.csv"))}


def _read_csv(path, columns):
    import pandas as pd

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        # Text first, numbers checked when building. NULL is a bare NA, as R and the Kaggle export write it.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", "NA"], encoding="utf-8")
    except (ValueError, OSError) as error:  # pandas' parser errors and UnicodeDecodeError are ValueErrors
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: malformed CSV ({reason})") from None
    _require_columns(path, set(frame.columns), columns)
    return frame[list(columns)]


def _require_columns(where, present, columns):
    missing = [column for column in columns if column not in present]
    if missing:
        raise DataError(f"{where}: missing column {', '.join(missing)}")


def _review_ids(column):
    """Review ids as whole numbers; anything else (text, fractions, infinities) becomes missing."""
    import pandas as pd

    ids = pd.to_numeric(column, errors="coerce")
    return ids.where(np.isfinite(ids) & (ids == np.round(ids)))


def build_catalog(tables, source, include_pseudo_artists=False):
    """One `Artist` per named artist; a duplicated review counts once; artists without a genre are kept;
    compilations' pseudo-artists (NOT_AN_ARTIST) are left out unless asked for."""
    import pandas as pd

    reviews = tables["reviews"]
    reviews = reviews.assign(
        reviewid=_review_ids(reviews["reviewid"]),
        score=pd.to_numeric(reviews["score"], errors="coerce"),
    ).dropna(subset=["reviewid", "artist"])
    # Artists as integer codes in name order: every later sort, merge and group is on integers, not names.
    codes, names = pd.factorize(reviews["artist"], sort=True)
    reviews = reviews.assign(artist=codes).drop_duplicates(subset=["reviewid", "artist"])
    # A missing, non-numeric or out-of-range score is skipped and counted, not guessed at.
    valid = reviews["score"].between(0.0, 10.0)
    reviews, dropped = reviews[valid], int((~valid).sum())
    pseudo = np.isin(names, list(NOT_AN_ARTIST)) & (not include_pseudo_artists)
    left_out = {names[code]: n for code, n in reviews["artist"][pseudo[reviews["artist"]]].value_counts().items()}
    reviews = reviews[~pseudo[reviews["artist"]]]
    if reviews.empty:
        raise DataError(f"{source}: no reviews with an artist and a score from 0 to 10")
    # Codes again, 0..V-1 over the artists left (an artist whose every score was invalid has gone).
    kept, codes = np.unique(reviews["artist"].to_numpy(), return_inverse=True)
    names = names[kept]
    reviews = reviews.assign(artist=codes)

    genres = tables["genres"]
    genres = genres.assign(reviewid=_review_ids(genres["reviewid"])).dropna().drop_duplicates()
    if genres.empty:
        raise DataError(f"{source}: no genres (every genre is NULL), so there is no genre context to learn from")
    n_artists = len(names)
    columns = {"genres": _values_by_artist(reviews, genres, "genre", n_artists)}
    if "labels" in tables:
        labels = tables["labels"].assign(reviewid=_review_ids(tables["labels"]["reviewid"])).dropna()
        label = labels["label"].astype(str).astype("category")  # the checks below once per distinct label
        real = ~label.cat.categories.str.strip().str.casefold().isin(NOT_A_LABEL)
        labels = labels[real[label.cat.codes.to_numpy()]]
        columns["labels"] = _values_by_artist(reviews, labels.drop_duplicates(), "label", n_artists)
    if "years" in tables:
        years = tables["years"].assign(reviewid=_review_ids(tables["years"]["reviewid"]),
                                       year=pd.to_numeric(tables["years"]["year"], errors="coerce"))
        years = years[years["year"].between(1000, 3000) & (years["year"] == np.round(years["year"]))]
        years = years.dropna().drop_duplicates().merge(reviews[["reviewid", "artist"]], on="reviewid")
        years = years.sort_values(["artist", "reviewid", "year"])
        columns["years"] = Ragged.from_sorted(years["artist"], years["year"].to_numpy(np.int64), n_artists)

    # Each artist's reviews in id order: one sort, and each artist's slice of it.
    reviews = reviews.sort_values(["artist", "reviewid"])
    columns["review_ids"] = Ragged.from_sorted(reviews["artist"], reviews["reviewid"].to_numpy(np.int64), n_artists)
    columns["scores"] = Ragged.from_sorted(reviews["artist"], reviews["score"].to_numpy(np.float64), n_artists)
    return Catalog([str(name) for name in names.tolist()], source=source, dropped_scores=dropped,
                   tables=tables, left_out=left_out, include_pseudo_artists=include_pseudo_artists, **columns)


def _values_by_artist(reviews, table, column, n_artists):
    """For each artist, the distinct values of `column` over its reviews, the most reviewed first."""
    counts = table.merge(reviews[["reviewid", "artist"]], on="reviewid").groupby(["artist", column]).size()
    counts = counts.reset_index(name="n").sort_values(["artist", "n", column], ascending=[True, False, True])
    return Ragged.from_sorted(counts["artist"], counts[column].to_numpy(object), n_artists)


# ---------------------------------------------------------------------------------------------
# The demo catalog
# ---------------------------------------------------------------------------------------------

_DEMO_FIRST = ("velvet", "paper", "silver", "hollow", "neon", "quiet", "broken", "golden", "static", "wild",
               "crystal", "midnight", "electric", "lunar", "rusted", "tender", "savage", "glass", "northern",
               "burning", "sleepy", "cosmic", "lost", "bright")
_DEMO_SECOND = ("foxes", "lanterns", "harbors", "machines", "orchards", "saints", "rivers", "ghosts", "engines",
                "tigers", "mirrors", "choirs", "canyons", "pilots", "wolves", "gardens", "signals", "comets")
# A few names with the characters real artist names have (commas, '&', '+', quotes, accents).
_DEMO_ODD = ("kit & the keys", "lune, marée", "orbit + halo", 'dj "static" ray', "björk-ish", "!?!")
# Pitchfork's genre frequencies (artists per genre in the full data), so the demo looks like the real thing.
_DEMO_GENRE_WEIGHTS = (3946, 1857, 819, 727, 835, 440, 355, 270, 129)
DEMO_ARTISTS = 300


_DEMO_LABEL_KINDS = ("records", "tapes", "sound", "recordings", "music")


def demo_tables(n_artists=DEMO_ARTISTS, seed=2016):
    """Fictional Kaggle tables (reviews, genres, labels, years) for `n_artists` artists: the same for the
    same seed, shaped like Pitchfork's. The demo is 300 of them; benchmarks make larger ones."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = _demo_names(n_artists, rng)
    weights = np.array(_DEMO_GENRE_WEIGHTS, dtype=float) / sum(_DEMO_GENRE_WEIGHTS)

    # An artist has a home genre, sometimes a second one, and about one in six has none at all:
    # the first n_genres of its genres in a weighted random order (Gumbel top-k).
    n_genres = rng.choice(4, size=n_artists, p=[0.16, 0.63, 0.18, 0.03])
    genre_order = np.argsort(-(np.log(weights) + rng.gumbel(size=(n_artists, len(GENRES)))), axis=1)
    quality = np.clip(rng.normal(7.0, 1.2, size=n_artists), 1.0, 9.8)

    # Reviews: 1 + Poisson(1.2) an artist, scored around the artist's quality.
    reviews_per_artist = 1 + rng.poisson(1.2, size=n_artists)
    review_artist = np.repeat(np.arange(n_artists), reviews_per_artist)
    review_ids = 1001 + np.arange(len(review_artist))
    scores = np.clip(np.round(rng.normal(quality[review_artist], 0.5), 1), 0.0, 10.0)

    # Each review carries its artist's genres (NULL for an artist without one).
    rows_per_review = np.maximum(n_genres[review_artist], 1)
    genre_review = np.repeat(np.arange(len(review_artist)), rows_per_review)
    rank = np.arange(len(genre_review)) - np.repeat(np.cumsum(rows_per_review) - rows_per_review, rows_per_review)
    genre_names = np.array(GENRES + (None,), dtype=object)
    genre_index = genre_order[review_artist[genre_review], rank]
    genre_index[n_genres[review_artist[genre_review]] == 0] = len(GENRES)

    # Labels: about one for every 2.4 artists, each of one genre; an artist mostly releases on one label
    # of its primary genre (popular labels more often), sometimes elsewhere or by itself.
    n_labels = max(len(GENRES), n_artists * 5 // 12)
    label_genre = np.sort(np.append(np.arange(len(GENRES)),  # at least one a genre
                                    rng.choice(len(GENRES), size=n_labels - len(GENRES), p=weights)))
    label_first = np.searchsorted(label_genre, np.arange(len(GENRES)))
    label_count = np.diff(np.append(label_first, n_labels))
    home_genre = np.where(n_genres > 0, genre_order[:, 0], rng.choice(len(GENRES), size=n_artists, p=weights))
    home_label = label_first[home_genre] + (rng.random(n_artists) ** 2 * label_count[home_genre]).astype(np.int64)
    draw = rng.random(len(review_artist))
    review_label = np.where(draw < 0.8, home_label[review_artist], rng.integers(n_labels, size=len(review_artist)))
    label_names = np.array(_demo_label_names(n_labels), dtype=object)
    review_label_name = np.where(draw > 0.92, "self-released", label_names[review_label])

    # Release years: a career that starts between 1995 and 2015 (a few decades earlier), a record every
    # year or two.
    start = np.where(rng.random(n_artists) < 0.05, rng.integers(1960, 1995, size=n_artists),
                     rng.integers(1995, 2016, size=n_artists))
    years = np.minimum(start[review_artist] + rng.poisson(2.0, size=len(review_artist)), 2016)

    names = np.array(names, dtype=object)
    return {
        "reviews": pd.DataFrame({"reviewid": review_ids, "artist": names[review_artist], "score": scores}),
        "genres": pd.DataFrame({"reviewid": review_ids[genre_review], "genre": genre_names[genre_index]}),
        "labels": pd.DataFrame({"reviewid": review_ids, "label": review_label_name}),
        "years": pd.DataFrame({"reviewid": review_ids, "year": years}),
    }


def _demo_names(n, rng):
    """`n` distinct fictional artist names: two words (numbered once the word pairs run out) and a few
    with the characters real names have."""
    odd = list(_DEMO_ODD[:n])
    pairs = [f"the {a} {b}" if i % 3 == 0 else f"{a} {b}"
             for i, (a, b) in enumerate((a, b) for a in _DEMO_FIRST for b in _DEMO_SECOND)]
    rounds = -(-(n - len(odd)) // len(pairs))
    pool = [name if r == 0 else f"{name} {r + 1}" for r in range(rounds) for name in pairs]
    return [pool[i] for i in rng.permutation(len(pool))[:n - len(odd)]] + odd


def _demo_label_names(n):
    base = [f"{word} {kind}" for kind in _DEMO_LABEL_KINDS for word in _DEMO_FIRST]
    return [base[i % len(base)] + ("" if i < len(base) else f" {i // len(base) + 1}") for i in range(n)]


# ---------------------------------------------------------------------------------------------
# (target, context) pairs
# ---------------------------------------------------------------------------------------------

def no_pairs(catalog, kinds):
    """The error of a catalog in which no context of the `kinds` has two artists to make a pair."""
    return DataError(f"{catalog.source}: no two artists share a {' or a '.join(kinds)}, so there are no pairs")


def context_memberships(catalog, kind):
    """How many (artist, group) memberships of one kind can make a pair (the sampler's, groups of two or more)."""
    return len(_ContextGroups(catalog.context_groups(kind)).members)


class _ContextGroups:
    """Flattened groups of artist ids, to draw (artist, other member of one of its groups) pairs in bulk.

    Drawing a membership uniformly gives every artist the same weight per group it belongs to,
    however large the group; the partner is another member of the same group, never the artist itself.
    """

    def __init__(self, groups):
        groups = [ids for ids in groups.values() if len(ids) >= 2]
        self.members = np.concatenate(groups) if groups else np.empty(0, dtype=np.int32)
        sizes = np.array([len(ids) for ids in groups], dtype=np.int64)
        self.start = np.repeat(np.cumsum(sizes) - sizes, sizes)
        self.size = np.repeat(sizes, sizes)
        self.offset = np.arange(len(self.members)) - self.start

    def draw(self, n, rng):
        m = rng.integers(len(self.members), size=n)
        shift = 1 + (rng.random(n) * (self.size[m] - 1)).astype(np.int64)  # 1..size-1: never itself
        partner = self.start[m] + (self.offset[m] + shift) % self.size[m]
        return self.members[m], self.members[partner]


class PairSampler:
    """Batches of (target, context) artist ids, each kind of context drawn at its share of the pairs."""

    def __init__(self, catalog, shares=None, seed=0):
        shares = parse_contexts(DEFAULT_CONTEXTS) if shares is None else shares
        self.kinds = list(shares)
        self.groups = [_ContextGroups(catalog.context_groups(kind)) for kind in self.kinds]
        # A kind whose groups all have one artist gives no pairs: its share goes to the others.
        live = np.array([shares[kind] if len(groups.members) else 0.0
                         for kind, groups in zip(self.kinds, self.groups)])
        if not live.sum():
            raise no_pairs(catalog, self.kinds)
        self.shares = live / live.sum()
        self.vocabulary_size = len(catalog)
        self.rng = np.random.default_rng(seed)

    def context_distribution(self):
        """The probability of each artist being drawn as a context, for NCE's negative sampler.

        Every membership of a group is equally likely as a partner, so an artist's chance is its number
        of memberships over the total, mixed by the shares; a little of the uniform distribution is
        mixed in so that every artist can be drawn as a negative.
        """
        drawn = np.zeros(self.vocabulary_size)
        for share, groups in zip(self.shares, self.groups):
            if share:
                drawn += share * np.bincount(groups.members, minlength=self.vocabulary_size) / len(groups.members)
        return 0.999 * drawn + 0.001 / self.vocabulary_size

    def pairs(self, n):
        """`n` pairs as (inputs[n], labels[n, 1]) int32 arrays, as the graph's placeholders take them."""
        inputs, labels, _ = self.pairs_with_kind(n)
        return inputs, labels

    def pairs_with_kind(self, n):
        """`pairs(n)` and, for each pair, the index in `kinds` of the context it was drawn from."""
        kind = np.minimum(np.searchsorted(np.cumsum(self.shares), self.rng.random(n), side="right"),
                          len(self.kinds) - 1)
        inputs = np.empty(n, dtype=np.int32)
        labels = np.empty(n, dtype=np.int32)
        for k, groups in enumerate(self.groups):
            mask = kind == k
            if mask.any():
                inputs[mask], labels[mask] = groups.draw(int(mask.sum()), self.rng)
        return inputs, labels[:, None], kind

    def batches(self, batch_size, n_batches):
        """`n_batches` batches drawn in one numpy call: (inputs[n, B], labels[n, B, 1])."""
        inputs, labels = self.pairs(batch_size * n_batches)
        return inputs.reshape(n_batches, batch_size), labels.reshape(n_batches, batch_size, 1)
