"""The kinds of context: what makes two artists a (target, context) pair. Each kind is one entry of
CONTEXTS that says everything about itself: the data table it is read from, the groups pairs are
drawn within, the facts it gives each artist (and their metadata.tsv columns), what two artists
share through it, and the quality figure that measures it. The --contexts spec is parsed here too.

Only the functions that read tables import pandas: queries use the kinds with numpy alone.
"""
import dataclasses
import numbers
import re
from typing import Callable

import numpy as np

from errors import DataError, OptionError, shown
from ragged import Ragged

# Pitchfork's genres, and what an artist without one has as its primary genre.
GENRES = ("rock", "electronic", "experimental", "rap", "pop/r&b", "metal", "folk/country", "jazz",
          "global")
NO_GENRE = "none"
# Values of `labels.label` that are not a record label, so they make no label context.
NOT_A_LABEL = frozenset({"self-released", "self", "none", "unknown", "n/a", "no label", ""})
ERA_YEARS = 5  # release years are grouped in eras of this many years (2000-2004, 2005-2009, ...)
# Pitchfork's scores, and the release years taken as a year: others are skipped as data, and in a
# run's metadata.tsv are damage (1e308 would overflow every mean and gap taken of them).
SCORES = (0.0, 10.0)
YEARS = (1000, 3000)
# An artist's reviews: at least the one that made it an artist, and far fewer than a billion.
REVIEWS = (1, 10**9)
GENRE_SEPARATOR = ", "
LABEL_SEPARATOR = "; "  # label names have commas ("guided by voices, inc.")
ESCAPE = "\\"  # before a separator (or itself) inside a value in metadata.tsv


@dataclasses.dataclass(frozen=True)
class ContextKind:
    """One kind of context."""
    name: str  # as --contexts names it
    table: str  # the data table it comes from
    columns: tuple  # that table's columns
    weight: float  # its part of the pairs when --contexts gives it no share
    read: Callable  # (table frame, reviews frame, artists, source) -> Ragged by artist, or None
    groups: Callable  # Catalog -> (artist ids, group key columns), a row per membership
    facts: Callable  # Catalog -> {ArtistFacts field: values per artist}
    to_metadata: Callable  # (ArtistFacts, rows) -> {metadata.tsv column: text per row}
    from_metadata: Callable  # {column: texts} -> {ArtistFacts field: values}, minus fields it lacks
    common: Callable  # ArtistFacts -> values two artists can share: a tuple or one value per artist
    many: bool  # whether common() gives several values an artist (a tuple) or one (an array)
    shared_as: str  # the key of `shares` in a --json answer
    shown: str  # how an answer shows a shared value
    answer_rank: int  # where an answer lists what is shared through it: the most telling first
    quality_tag: str = None  # TensorBoard's scalar of the neighbours' agreement, if it is measured
    agreement: str = ""  # what that figure says, in evaluate's words
    absent: str = ""  # why evaluate has no figure for it
    within: str = None  # the kind whose values split its groups (a label's, by genre), if any


# ---------------------------------------------------------------------------------------------
# Per-artist rules, each once
# ---------------------------------------------------------------------------------------------

def score_buckets(mean_scores):
    """Mean scores rounded half up, as people do (numpy and Python send 6.5 to 6 but 7.5 to 8)."""
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
    names[known] = np.array([f"{start}-{start + ERA_YEARS - 1}" for start in starts.tolist()]
                            or [""], dtype=object)[where]
    return names


def _means(ragged):
    with np.errstate(invalid="ignore", divide="ignore"):
        return ragged.sums() / ragged.counts  # NaN where an artist has none


# ---------------------------------------------------------------------------------------------
# Reading a kind's table
# ---------------------------------------------------------------------------------------------

# Review ids stored as integers are read exactly (int64); others are read as float64 numbers,
# which hold every whole number only up to 2 ** 53.
LARGEST_REVIEW_ID = 2 ** 53


def review_ids(column):
    """Review ids as whole numbers (pandas' Int64); anything else (text, fractions, infinities,
    ids past int64, floats too big to tell apart) becomes missing."""
    import pandas as pd

    ids = pd.to_numeric(column, errors="coerce")
    if pd.api.types.is_signed_integer_dtype(ids.dtype):
        return ids.astype("Int64")
    ids = ids.astype(float)
    return ids.where(np.isfinite(ids) & (ids == np.round(ids))
                     & (ids.abs() <= LARGEST_REVIEW_ID)).astype("Int64")


def values_by_artist(reviews, frame, column, artists):
    """For each artist, the distinct values of `column` over its reviews, most reviewed first."""
    counts = (frame.merge(reviews[["reviewid", "artist"]], on="reviewid")
              .groupby(["artist", column]).size())
    counts = counts.reset_index(name="n").sort_values(["artist", "n", column],
                                                      ascending=[True, False, True])
    return Ragged.from_sorted(counts["artist"], counts[column].to_numpy(object), artists)


def _read_genres(frame, reviews, artists, source):
    frame = frame.assign(reviewid=review_ids(frame["reviewid"])).dropna()
    # A genre is a name: one stored as a number (an untyped SQLite column) is its text.
    frame = frame.assign(genre=frame["genre"].astype(str)).drop_duplicates()
    if frame.empty:
        raise DataError(f"{source}: no genres (every genre is NULL), "
                        f"so there is no genre context to learn from")
    return values_by_artist(reviews, frame, "genre", artists)


def _read_labels(frame, reviews, artists, source):
    frame = frame.assign(reviewid=review_ids(frame["reviewid"])).dropna()
    # A label stored as a number is read as text, as a genre is.
    frame = frame.assign(label=frame["label"].astype(str))
    label = frame["label"].astype("category")  # so checks below run once per label
    real = ~label.cat.categories.str.strip().str.casefold().isin(NOT_A_LABEL)
    frame = frame[real[label.cat.codes.to_numpy()]]
    return values_by_artist(reviews, frame.drop_duplicates(), "label", artists)


def _read_years(frame, reviews, artists, source):
    """Each artist's release years, one per review where known."""
    import pandas as pd

    years = frame.assign(reviewid=review_ids(frame["reviewid"]),
                         year=pd.to_numeric(frame["year"], errors="coerce"))
    years = years[years["year"].between(*YEARS) & (years["year"] == np.round(years["year"]))]
    years = years.dropna().drop_duplicates().merge(reviews[["reviewid", "artist"]], on="reviewid")
    years = years.sort_values(["artist", "reviewid", "year"])
    return Ragged.from_sorted(years["artist"], years["year"].to_numpy(np.int64), artists)


def _label_within_genre(catalog):
    """Label within genre: a major's folk and rap artists are not one group (docs/contexts.md)."""
    import pandas as pd

    genres, labels = catalog.contexts["genre"], catalog.contexts["label"]
    genreless = np.flatnonzero(genres.counts == 0).astype(np.int32)
    by_genre = pd.DataFrame({"artist": np.concatenate([genres.owners, genreless]),
                             "genre": np.concatenate([genres.values,
                                                      np.full(len(genreless), NO_GENRE, object)])})
    both = (pd.DataFrame({"artist": labels.owners, "label": labels.values})
            .merge(by_genre, on="artist"))
    return both["artist"].to_numpy(), [both["label"].to_numpy(), both["genre"].to_numpy()]


# ---------------------------------------------------------------------------------------------
# The facts they give each artist, and their metadata.tsv columns
# ---------------------------------------------------------------------------------------------

def _genre_facts(catalog):
    genres = catalog.contexts["genre"].tuples()
    return {"genres": genres,
            "primary_genres": np.array([primary_genre(g) for g in genres], dtype=object)}


def _score_facts(catalog):
    mean_scores = _means(catalog.scores)
    return {"mean_scores": mean_scores, "score_buckets": score_buckets(mean_scores),
            "review_counts": catalog.review_ids.counts}


def _label_facts(catalog):
    labels = catalog.contexts["label"].tuples()
    return {"labels": labels,
            "main_labels": np.array([main_label(l) for l in labels], dtype=object)}


def _year_facts(catalog):
    mean_years = _means(catalog.contexts["year"])
    return {"years": mean_years, "eras": eras(mean_years)}

# ---------------------------------------------------------------------------------------------

def _joined(tuples, rows, separator):
    """Each row's values in one metadata.tsv field; a backslash or the separator inside a value
    (a label `a; b`) is escaped with a backslash, so that _split gives the value back whole."""
    return [separator.join(value if ESCAPE not in value and separator not in value else
                           value.replace(ESCAPE, ESCAPE * 2).replace(separator, ESCAPE + separator)
                           for value in tuples[i]) for i in rows]


def _split(texts, separator):
    """The values of each field _joined wrote. Only two backslashes, and one before the separator,
    are escapes: a backslash otherwise, as runs before the escapes wrote it, stays as it is."""
    return [tuple(filter(None, _unescaped(text.strip(), separator) if ESCAPE in text else
                         text.strip().split(separator))) for text in texts]


def _unescaped(text, separator):
    escapes = re.compile("|".join(map(re.escape, (ESCAPE * 2, ESCAPE + separator, separator))))
    values, value, at = [], "", 0
    for found in escapes.finditer(text):
        value += text[at:found.start()]
        if found[0] == separator:
            values, value = values + [value], ""
        else:
            value += found[0][len(ESCAPE):]
        at = found.end()
    return values + [value + text[at:]]


def _stripped(texts):
    return np.array([text.strip() for text in texts], dtype=object)


def metadata_numbers(columns, column, whole=False, blanks=False, within=None):
    """metadata.tsv's `column` as numbers: whole ones (int64), or finite ones (float64, NaN where
    blank if `blanks` allows), each `within` (low, high) where given; else a ValueError naming the
    line and the value that is not."""
    texts = [text.strip() or ("nan" if blanks else "") for text in columns[column]]
    dtype = np.int64 if whole else np.float64
    try:
        values = np.array(texts, dtype=dtype)
        wrong = ~np.isfinite(values) & (np.array(texts, dtype=object) != "nan" if blanks else True)
    except (ValueError, OverflowError):  # numpy names neither the value nor where it is
        wrong = [not _converts(text, dtype) for text in texts]
    outside = np.zeros(len(texts), bool)
    if not np.any(wrong) and within is not None:
        wrong = outside = (values < within[0]) | (values > within[1])
    if not np.any(wrong):
        return values
    line = int(np.argmax(wrong))
    text = texts[line]
    reason = (f"outside {within[0]:g} to {within[1]:g}" if outside[line] else
              "too big" if whole and text.lstrip("+-").isdigit() else
              "not a whole number" if whole else "not a finite number")
    raise ValueError(f"line {line + 2}: {column} is {text[:40]!r}, {reason}")


def _converts(text, dtype):
    try:
        return bool(np.isfinite(np.array(text, dtype=dtype)))
    except (ValueError, OverflowError):
        return False


def _known(texts):
    return any(text.strip() for text in texts)


def _label_metadata(facts, rows):
    if facts.labels is None:
        return {"labels": [""] * len(rows), "main_label": [""] * len(rows)}
    return {"labels": _joined(facts.labels, rows, LABEL_SEPARATOR),
            "main_label": facts.main_labels[rows]}


def _year_metadata(facts, rows):
    if facts.years is None:
        return {"year": [""] * len(rows), "era": [""] * len(rows)}
    return {"year": [f"{year:.1f}" if np.isfinite(year) else "" for year in facts.years[rows]],
            "era": facts.eras[rows]}


# ---------------------------------------------------------------------------------------------
# The kinds
# ---------------------------------------------------------------------------------------------

CONTEXTS = {kind.name: kind for kind in (
    ContextKind(
        "genre", "genres", ("reviewid", "genre"), weight=0.6, read=_read_genres,
        groups=lambda catalog: (catalog.contexts["genre"].owners,
                                [catalog.contexts["genre"].values]),
        facts=_genre_facts,
        to_metadata=lambda facts, rows: {"genres": _joined(facts.genres, rows, GENRE_SEPARATOR),
                                         "primary_genre": facts.primary_genres[rows]},
        from_metadata=lambda columns: {"genres": _split(columns["genres"], GENRE_SEPARATOR),
                                       "primary_genres": _stripped(columns["primary_genre"])},
        common=lambda facts: facts.genres, many=True, shared_as="genres", shown="{}", answer_rank=1,
        quality_tag="quality/genre_at_10", agreement="neighbours sharing a genre",
        absent="no genres"),
    ContextKind(
        # Score buckets come with the reviews themselves; four decimals of the mean score keep the
        # bucket of every mean that scores to a tenth can give.
        "score", "reviews", ("reviewid", "artist", "score"), weight=0.4, read=lambda *_: None,
        groups=lambda catalog: (np.arange(len(catalog)), [catalog.facts.score_buckets]),
        facts=_score_facts,
        to_metadata=lambda facts, rows: {
            "mean_score": [f"{m:.4f}" for m in facts.mean_scores[rows]],
            "score_bucket": facts.score_buckets[rows],
            "reviews": facts.review_counts[rows]},
        from_metadata=lambda columns: {
            "mean_scores": metadata_numbers(columns, "mean_score", within=SCORES),
            "score_buckets": metadata_numbers(columns, "score_bucket", whole=True, within=SCORES),
            "review_counts": metadata_numbers(columns, "reviews", whole=True, within=REVIEWS)},
        common=lambda facts: facts.score_buckets, many=False, shared_as="score_bucket",
        shown="score {}", answer_rank=3, quality_tag="quality/score_at_10",
        agreement="neighbours with the same rounded mean score"),
    ContextKind(
        "label", "labels", ("reviewid", "label"), weight=0.6, read=_read_labels,
        groups=_label_within_genre, within="genre",
        facts=_label_facts,
        to_metadata=_label_metadata,
        from_metadata=lambda columns: {"labels": _split(columns["labels"], LABEL_SEPARATOR),
                                       "main_labels": _stripped(columns["main_label"])}
        if _known(columns.get("labels", ())) else {},
        common=lambda facts: facts.labels, many=True, shared_as="labels", shown="{} (label)",
        answer_rank=0, quality_tag="quality/label_at_10",
        agreement="neighbours sharing a record label", absent="the data has no labels table"),
    ContextKind(
        "year", "years", ("reviewid", "year"), weight=0.2, read=_read_years,
        groups=lambda catalog: (catalog.contexts["year"].owners,
                                [era_starts(catalog.contexts["year"].values)]),
        facts=_year_facts,
        to_metadata=_year_metadata,
        from_metadata=lambda columns: {
            "years": metadata_numbers(columns, "year", blanks=True, within=YEARS),
            "eras": _stripped(columns["era"])} if _known(columns.get("year", ())) else {},
        common=lambda facts: facts.eras, many=False, shared_as="era", shown="{}", answer_rank=2),
)}

DEFAULT_CONTEXTS = "genre,score"  # the tutorial's
# How far from 1 the shares may add up: canonical specs keep six digits.
SHARES_SLACK = 1e-5
# What every catalog is read from; the other kinds' tables are optional.
REQUIRED_TABLES = ("reviews", "genres")


def quality_tags():
    """{kind: TensorBoard tag} of the kinds whose agreement is measured."""
    return {name: kind.quality_tag for name, kind in CONTEXTS.items() if kind.quality_tag}


# ---------------------------------------------------------------------------------------------
# The --contexts spec
# ---------------------------------------------------------------------------------------------

def parse_contexts(spec, genre_share=None):
    """{kind: share} from `genre,score,label=0.3` and, given, --genre-share's share of genre: shares
    not given are filled in by the kinds' weights. Options hold the result; a spec is parsed once.

    An OptionError in one line for an unknown kind, a share outside 0-1, or shares over 1 in all.
    """
    given = _given_shares(spec)
    if genre_share is not None:
        given["genre"] = _genre_share(given, genre_share)
    fixed = sum(share for share in given.values() if share is not None)
    if fixed > 1 + SHARES_SLACK:
        raise OptionError(f"--contexts: the shares add up to {fixed:g}, over 1")
    free = [kind for kind, share in given.items() if share is None]
    if not free and abs(fixed - 1) > SHARES_SLACK:
        raise OptionError(f"--contexts: the shares add up to {fixed:g}; they must add up to 1 "
                          f"(or leave one kind without a share to take the rest)")
    weights = sum(CONTEXTS[kind].weight for kind in free)
    # Six digits, as format_contexts prints them: a run trains with the shares it shows.
    return {kind: float(
        f"{share if share is not None else (1 - fixed) * CONTEXTS[kind].weight / weights:.6g}")
            for kind, share in given.items()}


def checked_shares(contexts):
    """{kind: share} from TrainOptions' `contexts`: a spec, parsed, or a dict whose kinds are known,
    whose shares are from 0 to 1 and add up to 1; else an OptionError in one line."""
    if isinstance(contexts, str):
        return parse_contexts(contexts)
    if not isinstance(contexts, dict):
        raise OptionError(f"--contexts must be a spec such as 'genre,score,label=0.3' or a "
                          f"{{kind: share}} dict, not {shown(contexts)}")
    if not contexts:
        raise OptionError(f"--contexts is empty: name at least one of {', '.join(CONTEXTS)}")
    for kind, share in contexts.items():
        _check_kind(kind)
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0 <= share <= 1:
            raise OptionError(f"--contexts: the share of {kind} must be from 0 to 1, "
                              f"not {shown(share)}")
    total = sum(map(float, contexts.values()))  # a Fraction's sum would not format as a float
    if abs(total - 1) > SHARES_SLACK:
        raise OptionError(f"--contexts: the shares add up to {total:g}; they must add up to 1")
    return {kind: float(share) for kind, share in contexts.items()}


def trained_kinds(contexts):
    """The kinds a run trains on, from its {kind: share} or a --contexts spec: those with pairs."""
    return tuple(kind for kind, share in checked_shares(contexts).items() if share > 0)


def _check_kind(kind):
    if kind not in CONTEXTS:
        raise OptionError(f"--contexts: unknown context {shown(kind)}; "
                          f"choose from {', '.join(CONTEXTS)}")


def _given_shares(spec):
    """{kind: share, or None where the spec gives none}, in the spec's order."""
    if not spec.strip():
        raise OptionError(f"--contexts is empty: name at least one of {', '.join(CONTEXTS)}")
    given = {}
    for item in spec.split(","):
        kind, equals, share = (part.strip() for part in item.partition("="))
        _check_kind(kind)
        if kind in given:
            raise OptionError(f"--contexts: {kind} is given twice")
        given[kind] = _share(kind, share) if equals else None
    return given


def _share(kind, text):
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0.0 <= share <= 1.0:
        raise OptionError(f"--contexts: the share of {kind} must be from 0 to 1, "
                          f"not {shown(text.strip())}")
    return share


def _genre_share(given, genre_share):
    """--genre-share, which a share of genre in --contexts may not contradict."""
    if "genre" not in given:
        raise OptionError("--genre-share needs the genre context in --contexts")
    if given["genre"] is not None:
        raise OptionError("give the genre share once: in --contexts (genre=X) or as --genre-share")
    if not 0.0 <= genre_share <= 1.0:
        raise OptionError(f"--genre-share must be from 0 to 1, not {shown(genre_share)}")
    return genre_share


def format_contexts(shares):
    """The canonical spec of {kind: share}, for people and TensorBoard: `genre=0.6,score=0.4`."""
    return ",".join(f"{kind}={share:.6g}" for kind, share in shares.items())
