"""Pitchfork data: the artist catalog, its two context dictionaries, and the (target, context) pair sampler.

The catalog is read from the Kaggle `database.sqlite` (tables `reviews` and `genres`, joined on
`reviewid`) or from the same tables as CSV files in a folder. With no data at hand, a small fictional
demo catalog is generated so that a fresh clone runs with no download.
"""
import collections
import math
import os
import sqlite3
from dataclasses import dataclass

import numpy as np
import pandas as pd

DATA_ENV = "BANDS2VEC_DATA"
REPO_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
KAGGLE_URL = "https://www.kaggle.com/datasets/nolanbconaway/pitchfork-data"
DEMO_SOURCE = "demo"
GENRES = ("rock", "electronic", "experimental", "rap", "pop/r&b", "metal", "folk/country", "jazz", "global")
NO_GENRE = "none"

REVIEW_COLUMNS = ("reviewid", "artist", "score")
GENRE_COLUMNS = ("reviewid", "genre")


class DataError(Exception):
    """Input data that cannot be used; its message is one line for the user."""


@dataclass(frozen=True)
class Artist:
    """One artist, as the tutorial's `Artist` class: name, reviews, genres and scores."""
    name: str
    review_ids: tuple
    genres: tuple  # distinct genres, most reviewed first
    scores: tuple  # one score per review

    @property
    def mean_score(self):
        return sum(self.scores) / len(self.scores)

    @property
    def score_bucket(self):
        # Half up, as people round (Python's round() would send 7.5 to 8 but 6.5 to 6).
        return int(math.floor(self.mean_score + 0.5))

    @property
    def primary_genre(self):
        return self.genres[0] if self.genres else NO_GENRE


class Catalog:
    """The artists, indexed 0..V-1, with the tutorial's two context dictionaries."""

    def __init__(self, artists, source, dropped_scores=0):
        self.artists = list(artists)
        self.source = source
        self.dropped_scores = dropped_scores  # reviews skipped for a missing or out-of-range score
        self.index = {artist.name: i for i, artist in enumerate(self.artists)}
        self.genre_dict = _group_ids(self.artists, lambda artist: artist.genres)
        self.score_dict = _group_ids(self.artists, lambda artist: (artist.score_bucket,))

    def __len__(self):
        return len(self.artists)

    def __getitem__(self, name):
        return self.artists[self.index[name]]

    @property
    def names(self):
        return [artist.name for artist in self.artists]

    @property
    def review_count(self):
        return sum(len(artist.review_ids) for artist in self.artists)


def _group_ids(artists, keys_of):
    groups = collections.defaultdict(list)
    for i, artist in enumerate(artists):
        for key in keys_of(artist):
            groups[key].append(i)
    return {key: np.array(ids, dtype=np.int32) for key, ids in sorted(groups.items())}


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


def load_catalog(path=None):
    """The catalog at `path` (a SQLite file, a folder of CSVs or one holding database.sqlite) or the demo."""
    path = resolve_data_path(path)
    if path == DEMO_SOURCE:
        reviews, genres = demo_tables()
    elif os.path.isdir(path):
        source = _folder_source(path)
        if source is None:
            raise DataError(f"{path}: no database.sqlite, and no reviews.csv and genres.csv in this folder")
        reviews, genres = read_sqlite(source) if source.endswith(".sqlite") else read_csv_folder(path)
        path = source
    elif os.path.isfile(path):
        reviews, genres = read_sqlite(path)
    else:
        raise DataError(f"{path}: no such file or folder")
    return build_catalog(reviews, genres, source=path)


def _folder_source(folder):
    sqlite_path = os.path.join(folder, "database.sqlite")
    if os.path.isfile(sqlite_path):
        return sqlite_path
    if all(os.path.isfile(os.path.join(folder, name)) for name in ("reviews.csv", "genres.csv")):
        return folder
    return None


def read_sqlite(path):
    """The `reviews` and `genres` tables of a Kaggle-schema SQLite file."""
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise DataError(f"{path}: not a SQLite database")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = [table for table in ("reviews", "genres") if table not in tables]
            if missing:
                raise DataError(f"{path}: no {' or '.join(missing)} table (expected the Kaggle Pitchfork schema)")
            reviews = _read_table(connection, path, "reviews", REVIEW_COLUMNS)
            genres = _read_table(connection, path, "genres", GENRE_COLUMNS)
    except sqlite3.DatabaseError as error:
        raise DataError(f"{path}: unreadable SQLite database ({error})") from None
    return reviews, genres


def _read_table(connection, path, table, columns):
    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
    _require_columns(f"{path}: table {table}", present, columns)
    return pd.read_sql_query(f"SELECT {', '.join(columns)} FROM {table}", connection)


def read_csv_folder(folder):
    """`reviews.csv` and `genres.csv` from a folder, as the Kaggle tables with a header row."""
    return tuple(_read_csv(os.path.join(folder, name), columns)
                 for name, columns in (("reviews.csv", REVIEW_COLUMNS), ("genres.csv", GENRE_COLUMNS)))


def _read_csv(path, columns):
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
    ids = pd.to_numeric(column, errors="coerce")
    return ids.where(np.isfinite(ids) & (ids == np.round(ids)))


def build_catalog(reviews, genres, source):
    """One `Artist` per named artist; a duplicated review counts once; artists without a genre are kept."""
    reviews = reviews.assign(
        reviewid=_review_ids(reviews["reviewid"]),
        score=pd.to_numeric(reviews["score"], errors="coerce"),
    ).dropna(subset=["reviewid", "artist"]).drop_duplicates(subset=["reviewid", "artist"])
    # A missing, non-numeric or out-of-range score is skipped and counted, not guessed at.
    valid = reviews["score"].between(0.0, 10.0)
    reviews, dropped = reviews[valid], int((~valid).sum())
    if reviews.empty:
        raise DataError(f"{source}: no reviews with an artist and a score from 0 to 10")

    genres = genres.assign(reviewid=_review_ids(genres["reviewid"])).dropna()
    genres = genres.drop_duplicates()
    if genres.empty:
        raise DataError(f"{source}: no genres (every genre is NULL), so there is no genre context to learn from")

    review_genres = genres.merge(reviews[["reviewid", "artist"]], on="reviewid")
    genre_counts = review_genres.groupby(["artist", "genre"]).size().reset_index(name="n")
    genre_counts = genre_counts.sort_values(["artist", "n", "genre"], ascending=[True, False, True])
    genres_of = genre_counts.groupby("artist")["genre"].agg(tuple).to_dict()

    artists = [
        Artist(name=str(name), review_ids=tuple(int(i) for i in group["reviewid"]),
               genres=genres_of.get(name, ()), scores=tuple(float(s) for s in group["score"]))
        for name, group in reviews.sort_values("reviewid").groupby("artist", sort=True)
    ]
    return Catalog(artists, source=source, dropped_scores=dropped)


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


def demo_tables(n_artists=DEMO_ARTISTS, seed=2016):
    """Fictional `reviews` and `genres` tables: the same every time, shaped like Pitchfork's."""
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in _DEMO_FIRST for b in _DEMO_SECOND]
    chosen = rng.choice(len(pairs), size=n_artists - len(_DEMO_ODD), replace=False)
    names = [f"the {pairs[i][0]} {pairs[i][1]}" if i % 3 == 0 else f"{pairs[i][0]} {pairs[i][1]}" for i in chosen]
    names += list(_DEMO_ODD)

    weights = np.array(_DEMO_GENRE_WEIGHTS, dtype=float) / sum(_DEMO_GENRE_WEIGHTS)
    review_rows, genre_rows, review_id = [], [], 1000
    for name in names:
        # An artist has a home genre, sometimes a second one, and about one in six has none at all.
        n_genres = rng.choice([0, 1, 2, 3], p=[0.16, 0.63, 0.18, 0.03])
        artist_genres = [GENRES[g] for g in rng.choice(len(GENRES), size=n_genres, replace=False, p=weights)]
        quality = np.clip(rng.normal(7.0, 1.2), 1.0, 9.8)
        for _ in range(1 + rng.poisson(1.2)):
            review_id += 1
            review_rows.append((review_id, name, float(np.clip(np.round(rng.normal(quality, 0.5), 1), 0.0, 10.0))))
            genre_rows.extend((review_id, genre) for genre in artist_genres or [None])
    reviews = pd.DataFrame(review_rows, columns=list(REVIEW_COLUMNS))
    genres = pd.DataFrame(genre_rows, columns=list(GENRE_COLUMNS))
    return reviews, genres


# ---------------------------------------------------------------------------------------------
# (target, context) pairs
# ---------------------------------------------------------------------------------------------

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
    """Batches of (target, context) artist ids: a `genre_share` of same-genre pairs, the rest same-score."""

    def __init__(self, catalog, genre_share=0.6, seed=0):
        if not 0.0 <= genre_share <= 1.0:
            raise ValueError(f"genre share must be from 0 to 1, not {genre_share}")
        self.by_genre = _ContextGroups(catalog.genre_dict)
        self.by_score = _ContextGroups(catalog.score_dict)
        if not len(self.by_score.members) and not len(self.by_genre.members):
            raise DataError(f"{catalog.source}: no two artists share a genre or a score, so there are no pairs")
        if not len(self.by_genre.members):
            genre_share = 0.0
        elif not len(self.by_score.members):
            genre_share = 1.0
        self.genre_share = genre_share
        self.vocabulary_size = len(catalog)
        self.rng = np.random.default_rng(seed)

    def context_distribution(self):
        """The probability of each artist being drawn as a context, for NCE's negative sampler.

        Every membership of a group is equally likely as a partner, so an artist's chance is its number
        of memberships over the total, mixed by the genre share; a little of the uniform distribution is
        mixed in so that every artist can be drawn as a negative.
        """
        def share_of(groups):
            if not len(groups.members):
                return np.zeros(self.vocabulary_size)
            return np.bincount(groups.members, minlength=self.vocabulary_size) / len(groups.members)
        drawn = self.genre_share * share_of(self.by_genre) + (1 - self.genre_share) * share_of(self.by_score)
        return 0.999 * drawn + 0.001 / self.vocabulary_size

    def pairs(self, n):
        """`n` pairs as (inputs[n], labels[n, 1]) int32 arrays, as the graph's placeholders take them."""
        inputs, labels, _ = self.pairs_with_kind(n)
        return inputs, labels

    def pairs_with_kind(self, n):
        """`pairs(n)` and, for each pair, whether it was drawn as a same-genre pair."""
        is_genre = self.rng.random(n) < self.genre_share
        inputs = np.empty(n, dtype=np.int32)
        labels = np.empty(n, dtype=np.int32)
        for mask, groups in ((is_genre, self.by_genre), (~is_genre, self.by_score)):
            inputs[mask], labels[mask] = groups.draw(int(mask.sum()), self.rng)
        return inputs, labels[:, None], is_genre

    def batches(self, batch_size, n_batches):
        """`n_batches` batches drawn in one numpy call: (inputs[n, B], labels[n, B, 1])."""
        inputs, labels = self.pairs(batch_size * n_batches)
        return inputs.reshape(n_batches, batch_size), labels.reshape(n_batches, batch_size, 1)
