"""The demo catalog: fictional Kaggle-schema tables shaped like Pitchfork's, so that a fresh clone
runs with no download. It has 300 artists; benchmarks/synthetic_catalog.py makes larger ones alike.
"""
import numpy as np

from contexts import GENRES
_DEMO_FIRST = ("velvet", "paper", "silver", "hollow", "neon", "quiet", "broken", "golden",
               "static", "wild", "crystal", "midnight", "electric", "lunar", "rusted", "tender",
               "savage", "glass", "northern", "burning", "sleepy", "cosmic", "lost", "bright")
_DEMO_SECOND = ("foxes", "lanterns", "harbors", "machines", "orchards", "saints", "rivers",
                "ghosts", "engines", "tigers", "mirrors", "choirs", "canyons", "pilots", "wolves",
                "gardens", "signals", "comets")
# A few names with the characters real artist names have (commas, '&', '+', quotes, accents).
_DEMO_ODD = ("kit & the keys", "lune, marée", "orbit + halo", 'dj "static" ray', "björk-ish",
             "!?!")
# Pitchfork's genre frequencies (artists per genre in the full data), so the demo looks real.
_DEMO_GENRE_WEIGHTS = (3946, 1857, 819, 727, 835, 440, 355, 270, 129)
DEMO_ARTISTS = 300


_DEMO_LABEL_KINDS = ("records", "tapes", "sound", "recordings", "music")


def demo_tables(n_artists=DEMO_ARTISTS, seed=2016):
    """Fictional Kaggle tables (reviews, artists, genres, labels, years) for `n_artists` artists,
    shaped like Pitchfork's, the same for the same seed. The demo has 300; benchmarks make larger
    ones. Each review is of one artist, so `artists` credits it to its `reviews.artist`."""
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
    rank = (np.arange(len(genre_review))
            - np.repeat(np.cumsum(rows_per_review) - rows_per_review, rows_per_review))
    genre_names = np.array(GENRES + (None,), dtype=object)
    genre_index = genre_order[review_artist[genre_review], rank]
    genre_index[n_genres[review_artist[genre_review]] == 0] = len(GENRES)

    # Labels: about one for every 2.4 artists, each of one genre; an artist mostly releases on one
    # label of its primary genre (popular labels more often), sometimes elsewhere or by itself.
    n_labels = max(len(GENRES), n_artists * 5 // 12)
    label_genre = np.sort(np.append(np.arange(len(GENRES)),  # at least one a genre
                                    rng.choice(len(GENRES), size=n_labels - len(GENRES),
                                               p=weights)))
    label_first = np.searchsorted(label_genre, np.arange(len(GENRES)))
    label_count = np.diff(np.append(label_first, n_labels))
    home_genre = np.where(n_genres > 0, genre_order[:, 0],
                          rng.choice(len(GENRES), size=n_artists, p=weights))
    home_label = (label_first[home_genre]
                  + (rng.random(n_artists) ** 2 * label_count[home_genre]).astype(np.int64))
    draw = rng.random(len(review_artist))
    review_label = np.where(draw < 0.8, home_label[review_artist],
                            rng.integers(n_labels, size=len(review_artist)))
    label_names = np.array(_demo_label_names(n_labels), dtype=object)
    review_label_name = np.where(draw > 0.92, "self-released", label_names[review_label])

    # Release years: careers start in 1995-2015 (a few decades earlier), a record every year or two.
    start = np.where(rng.random(n_artists) < 0.05, rng.integers(1960, 1995, size=n_artists),
                     rng.integers(1995, 2016, size=n_artists))
    years = np.minimum(start[review_artist] + rng.poisson(2.0, size=len(review_artist)), 2016)

    names = np.array(names, dtype=object)
    return {
        "reviews": pd.DataFrame({"reviewid": review_ids, "artist": names[review_artist],
                                 "score": scores}),
        "artists": pd.DataFrame({"reviewid": review_ids, "artist": names[review_artist]}),
        "genres": pd.DataFrame({"reviewid": review_ids[genre_review],
                                "genre": genre_names[genre_index]}),
        "labels": pd.DataFrame({"reviewid": review_ids, "label": review_label_name}),
        "years": pd.DataFrame({"reviewid": review_ids, "year": years}),
    }


def _demo_names(n, rng):
    """`n` distinct fictional artist names: two words (numbered once the word pairs run out) and a
    few with the characters real names have."""
    odd = list(_DEMO_ODD[:n])
    pairs = [f"the {a} {b}" if i % 3 == 0 else f"{a} {b}"
             for i, (a, b) in enumerate((a, b) for a in _DEMO_FIRST for b in _DEMO_SECOND)]
    rounds = -(-(n - len(odd)) // len(pairs))
    pool = [name if r == 0 else f"{name} {r + 1}" for r in range(rounds) for name in pairs]
    return [pool[i] for i in rng.permutation(len(pool))[:n - len(odd)]] + odd


def _demo_label_names(n):
    base = [f"{word} {kind}" for kind in _DEMO_LABEL_KINDS for word in _DEMO_FIRST]
    return [base[i % len(base)] + ("" if i < len(base) else f" {i // len(base) + 1}")
            for i in range(n)]
