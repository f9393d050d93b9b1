"""The loader on both forms of the Pitchfork data, the demo catalog, the pair sampler, and bad data
(from the command line: test_hostile_inputs.py)."""
import csv
import os
import sqlite3
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import contexts
import demo_data
import errors
import data_utils
from errors import DataError
from pair_sampler import PairSampler


def test_sqlite_and_csv_give_the_same_catalog(full_data, full_data_csv):
    from_sqlite = data_utils.load_catalog(full_data)
    from_csv = data_utils.load_catalog(full_data_csv)
    assert from_csv.source == full_data_csv  # read from the CSVs, not from a database.sqlite
    # The artists table's 8,632 names less 'various artists' and 'soundtrack'.
    assert len(from_sqlite) == len(from_csv) == 8630
    assert (from_sqlite.tables == from_csv.tables
            == {"reviews", "artists", "genres", "labels", "years"})
    assert list(from_sqlite) == list(from_csv)


def test_a_folder_with_database_sqlite_reads_it(full_data, tmp_path):
    (tmp_path / "database.sqlite").symlink_to(full_data)
    assert data_utils.load_catalog(str(tmp_path)).source == str(tmp_path / "database.sqlite")


def test_coil_and_elder_ones_as_the_seed_describes_them(full_catalog):
    coil = full_catalog["coil"]
    assert coil.genres == ("electronic", "experimental", "rock")
    assert coil.mean_score == pytest.approx(7.9)
    assert coil.score_bucket == 8
    assert full_catalog["elder ones"].mean_score == pytest.approx(7.8)


def test_null_artist_skipped_duplicates_counted_once_genreless_kept(full_catalog):
    assert all(isinstance(name, str) for name in full_catalog.names)
    # 18,389 distinct reviews, two of them by the NULL artist, 688 by pseudo-artists (compilations).
    assert full_catalog.review_count == 18387 - 688
    xasthur = full_catalog["xasthur"]  # review 9460 is in the tables twice
    assert len(xasthur.review_ids) == len(set(xasthur.review_ids))
    assert xasthur.review_ids.count(9460) == 1
    genreless = [artist for artist in full_catalog if not artist.genres]
    assert len(genreless) == 1388
    assert all(artist.scores for artist in genreless)


def test_context_dictionaries(full_catalog):
    assert set(full_catalog.genre_dict) == set(contexts.GENRES)
    # 3,957 with the compilations of "various artists"
    assert len(full_catalog.genre_dict["rock"]) == 3956
    coil = full_catalog.index["coil"]
    assert all(coil in full_catalog.genre_dict[g] for g in ("electronic", "experimental", "rock"))
    assert coil in full_catalog.score_dict[8]
    assert sum(len(ids) for ids in full_catalog.score_dict.values()) == len(full_catalog)


def test_data_path_order(monkeypatch, tmp_path, full_data):
    monkeypatch.setattr(data_utils, "REPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(data_utils.DATA_ENV, raising=False)
    assert data_utils.resolve_data_path() == data_utils.DEMO_SOURCE
    (tmp_path / "data").mkdir()
    assert data_utils.resolve_data_path() == data_utils.DEMO_SOURCE  # an empty data/ is not data
    (tmp_path / "data" / "database.sqlite").write_bytes(b"")
    assert data_utils.resolve_data_path() == str(tmp_path / "data")
    monkeypatch.setenv(data_utils.DATA_ENV, full_data)
    assert data_utils.resolve_data_path() == full_data
    assert data_utils.resolve_data_path("elsewhere") == "elsewhere"
    monkeypatch.setenv(data_utils.DATA_ENV, "   ")
    with pytest.raises(DataError, match=r"^\$BANDS2VEC_DATA is blank: set it to the data's path"):
        data_utils.resolve_data_path()


def test_demo_catalog_is_deterministic_and_pitchfork_shaped(demo_catalog):
    again = data_utils.load_catalog(data_utils.DEMO_SOURCE)
    assert list(again) == list(demo_catalog)
    assert len(demo_catalog) == demo_data.DEMO_ARTISTS
    assert set(demo_catalog.genre_dict) == set(contexts.GENRES)
    n_genres = [len(artist.genres) for artist in demo_catalog]
    assert min(n_genres) == 0 and max(n_genres) >= 2
    means = np.array([artist.mean_score for artist in demo_catalog])
    assert 6.5 < means.mean() < 7.5 and means.std() > 0.8
    assert "lune, marée" in demo_catalog.index


def test_sampler_pairs_share_a_context_and_never_self(full_catalog):
    sampler = PairSampler(full_catalog, {"genre": 0.6, "score": 0.4}, seed=3)
    inputs, labels = sampler.pairs(200_000)
    assert inputs.dtype == labels.dtype == np.int32 and labels.shape == (200_000, 1)
    labels = labels[:, 0]
    assert not np.any(inputs == labels)
    genres = [set(artist.genres) for artist in full_catalog]
    buckets = np.array([artist.score_bucket for artist in full_catalog])
    share_genre = np.array([bool(genres[a] & genres[b])
                            for a, b in zip(inputs[:20000], labels[:20000])])
    same_score = buckets[inputs[:20000]] == buckets[labels[:20000]]
    assert np.all(share_genre | same_score)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.6, 1.0])
def test_sampler_genre_share_as_configured(full_catalog, share):
    sampler = PairSampler(full_catalog, {"genre": share, "score": 1 - share}, seed=1)
    inputs, labels, kind = sampler.pairs_with_kind(100_000)
    is_genre = kind == sampler.kinds.index("genre")
    assert abs(is_genre.mean() - share) < 0.01
    genres = [set(artist.genres) for artist in full_catalog]
    buckets = np.array([artist.score_bucket for artist in full_catalog])
    for a, b in zip(inputs[is_genre][:5000], labels[is_genre][:5000, 0]):
        assert genres[a] & genres[b]
    assert np.all(buckets[inputs[~is_genre]] == buckets[labels[~is_genre, 0]])


def test_sampler_same_seed_same_batches(demo_catalog):
    first = PairSampler(demo_catalog, seed=7).batches(64, 10)
    second = PairSampler(demo_catalog, seed=7).batches(64, 10)
    other = PairSampler(demo_catalog, seed=8).batches(64, 10)
    assert first[0].shape == (10, 64) and first[1].shape == (10, 64, 1)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_sampler_gives_every_artist_with_a_partner_pairs(demo_catalog):
    inputs, _ = PairSampler(demo_catalog, seed=0).pairs(50_000)
    assert len(np.unique(inputs)) == len(demo_catalog)


def test_context_distribution_matches_the_draws(full_catalog):
    sampler = PairSampler(full_catalog, seed=2)
    _, labels = sampler.pairs(2_000_000)
    drawn = np.bincount(labels[:, 0], minlength=len(full_catalog)) / 2_000_000
    expected = sampler.context_distribution()
    assert expected.sum() == pytest.approx(1.0)
    # Sampling noise alone leaves about 0.05 of total variation; a uniform guess is far worse.
    assert np.corrcoef(drawn, expected)[0, 1] > 0.95
    assert np.corrcoef(drawn, np.full_like(drawn, 1 / len(drawn)) + expected[::-1])[0, 1] < 0.5


def _sqlite(path, statements):
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    return str(path)


def _text(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp / "nowhere.sqlite"), "no such file or folder"),
    (lambda tmp: _sqlite(tmp / "x.sqlite", ["CREATE TABLE other (a)"]),
     "no reviews or genres table"),
    (lambda tmp: _sqlite(tmp / "x.sqlite", ["CREATE TABLE reviews (reviewid, artist, score)"]),
     "no genres table"),
    (lambda tmp: _sqlite(tmp / "x.sqlite", ["CREATE TABLE reviews (reviewid, artist)",
                                            "CREATE TABLE genres (reviewid, genre)"]),
     "missing column score"),
    (lambda tmp: _sqlite(tmp / "x.sqlite", ["CREATE TABLE reviews (reviewid, artist, score)",
                                            "CREATE TABLE genres (reviewid, genre)"]),
     "no reviews with an artist"),
    (lambda tmp: _text(tmp / "x.sqlite", "not a database"), "not a SQLite database"),
    (lambda tmp: str(tmp), "no database.sqlite, and no reviews.csv and genres.csv"),
])
def test_bad_data_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        data_utils.load_catalog(make(tmp_path))


def test_csv_folder_missing_a_file_or_a_column(tmp_path, full_data):
    (tmp_path / "reviews.csv").write_text("reviewid,artist\n1,a\n")
    (tmp_path / "genres.csv").write_text("reviewid,genre\n1,rock\n")
    with pytest.raises(DataError, match=r"reviews.csv: missing column score"):
        data_utils.load_catalog(str(tmp_path))
    with pytest.raises(DataError, match="reviews.csv: no such file"):
        data_utils.read_csv_folder(str(tmp_path / "nowhere"))


_cells = st.one_of(st.text(max_size=12), st.integers(-5, 30).map(str),
                   st.floats(allow_nan=True).map(str),
                   st.sampled_from(["NA", "", '"', '""', ",", "\n", "rock", "7.5", "1e400", "-0"]))
_columns = st.lists(st.sampled_from(["reviewid", "artist", "score", "genre", "other", ""]),
                    min_size=0, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(review_columns=_columns, review_rows=st.lists(st.lists(_cells, max_size=6), max_size=8),
       genre_columns=_columns, genre_rows=st.lists(st.lists(_cells, max_size=4), max_size=8),
       garbage=st.binary(max_size=40))
def test_fuzzed_csv_loads_or_is_refused_cleanly(review_columns, review_rows, genre_columns,
                                                genre_rows, garbage):
    with tempfile.TemporaryDirectory() as folder:
        for name, columns, rows in (("reviews.csv", review_columns, review_rows),
                                    ("genres.csv", genre_columns, genre_rows)):
            with open(os.path.join(folder, name), "w", newline="", encoding="utf-8",
                      errors="surrogatepass") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(rows)
        with open(os.path.join(folder, "reviews.csv"), "ab") as f:
            f.write(garbage)
        try:
            catalog = data_utils.load_catalog(folder)
        except errors.DataError as error:
            assert "\n" not in str(error) and str(error)
        else:
            assert len(catalog) >= 1
            assert all(0 <= artist.mean_score <= 10 for artist in catalog)
            assert all(isinstance(artist.name, str) for artist in catalog)


def test_joint_releases_count_for_each_of_their_artists(full_data, full_catalog):
    with sqlite3.connect(full_data) as connection:
        joint = {name for (name,) in connection.execute(
            "SELECT DISTINCT r.artist FROM reviews r JOIN artists a USING (reviewid) "
            "GROUP BY r.reviewid HAVING COUNT(DISTINCT a.artist) > 1")}
        credited = {name for (name,) in connection.execute(
            "SELECT DISTINCT artist FROM artists WHERE artist IS NOT NULL")}
        (metallica,) = connection.execute(
            "SELECT AVG(score) FROM (SELECT DISTINCT reviewid, score FROM reviews JOIN artists "
            "USING (reviewid) WHERE artists.artist = 'metallica')").fetchone()
    # 369 joint names: the 387 names with a comma less 18 single artists such as
    # `tyler, the creator`.
    assert len(joint) == 369 and "lou reed, metallica" in joint and "jay z, kanye west" in joint
    assert "tyler, the creator" in full_catalog.index
    # Every artist is one the artists table credits; no joint name is an artist of its own.
    assert set(full_catalog.names) == credited - data_utils.NOT_AN_ARTIST
    assert not joint & set(full_catalog.names)
    assert (15996 in full_catalog["lou reed"].review_ids
            and 15996 in full_catalog["metallica"].review_ids)
    assert full_catalog["metallica"].mean_score == pytest.approx(metallica)
    assert "metal" in full_catalog["lou reed"].genres  # Lulu, the joint release, is metal
    # A joint release is one review: the load line counts it once.
    assert full_catalog.review_count == len(np.unique(full_catalog.review_ids.values)) == 17699


def test_a_review_without_artists_rows_keeps_its_own_artist(tmp_path):
    from synthetic_catalog import write_tables
    tables = {"reviews": pd.DataFrame({"reviewid": [1, 2, 3], "artist": ["a, b", "c", "a"],
                                       "score": [8.0, 6.0, 7.0]}),
              "artists": pd.DataFrame({"reviewid": [1, 1, 3], "artist": ["a", "b", "a"]}),
              "genres": pd.DataFrame({"reviewid": [1, 2, 3], "genre": ["rock", "jazz", "rock"]})}
    for form in ("sqlite", "csv"):
        catalog = data_utils.load_catalog(write_tables(tables, str(tmp_path / form),
                                                       csv=form == "csv"))
        assert catalog.names == ["a", "b", "c"] and catalog.tables == set(tables)
        assert [catalog[name].scores for name in catalog.names] == [(8.0, 7.0), (8.0,), (6.0,)]
        assert catalog.review_count == 3
    # Without the artists table, each reviews.artist name is an artist, joint ones too.
    del tables["artists"]
    assert data_utils.build_catalog(tables, source="x").names == ["a", "a, b", "c"]


@pytest.mark.parametrize("table, column", [("genres", "genre"), ("labels", "label"),
                                           ("reviews", "artist"), ("artists", "artist")])
def test_blobs_in_a_name_column_are_utf8_text_or_named(tmp_path, table, column):
    """A BLOB genre that is not UTF-8 was `'utf-8' codec can't decode byte 0xff`, naming nothing."""
    from synthetic_catalog import write_tables
    path = write_tables(demo_data.demo_tables(60, seed=3), str(tmp_path / "d"))
    # an untyped copy of the table keeps what is stored in it
    with sqlite3.connect(path) as connection:
        connection.executescript(f"CREATE TABLE t AS SELECT * FROM {table}; DROP TABLE {table}; "
                                 f"ALTER TABLE t RENAME TO {table};")
        connection.execute(f"UPDATE {table} SET {column} = CAST(? AS BLOB) WHERE rowid = 1",
                           ["björk".encode()])
        if table == "reviews":  # reviews.artist is read where the artists table credits no artist
            connection.execute("DROP TABLE artists")
    catalog = data_utils.load_catalog(path)
    values = {value for artist in catalog for value in
              ((artist.name,) if column == "artist" else getattr(artist, f"{column}s"))}
    assert "björk" in values and not any(isinstance(value, bytes) or value.startswith("b'")
                                         for value in values)
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE {table} SET {column} = X'FF41' WHERE rowid = 2")
    with pytest.raises(DataError) as refused:
        data_utils.load_catalog(path)
    assert str(refused.value) == (f"{path}: table {table}, column {column}: a value that is not "
                                  f"UTF-8 text (b'\\xffA'); store the names as text")


def test_review_ids_past_two_to_the_53_are_kept_where_stored_as_integers(tmp_path):
    """A catalog with half its ids past 2 ** 53 lost those reviews without a word: ids stored as
    integers are now read exactly, and ids that cannot be (floats past 2 ** 53) are counted in a
    warning."""
    from synthetic_catalog import write_tables
    path = write_tables(demo_data.demo_tables(60, seed=3), str(tmp_path / "d"))
    before = data_utils.load_catalog(path)
    with sqlite3.connect(path) as connection:
        for table in ("reviews", "genres", "labels", "years", "artists"):
            connection.execute(f"UPDATE {table} SET reviewid = reviewid + ? "
                               f"WHERE reviewid % 2 = 0", [2 ** 53 + 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = data_utils.load_catalog(path)
    assert (exact.names == before.names
            and [a.genres for a in exact] == [a.genres for a in before])
    assert len(exact.review_ids.values) == len(before.review_ids.values)
    assert (exact.review_ids.values > 2 ** 53).sum() == (before.review_ids.values % 2 == 0).sum()
    # the same ids as floats: past 2 ** 53 they are not told apart
    with sqlite3.connect(path) as connection:
        connection.executescript("CREATE TABLE r AS SELECT CAST(reviewid AS REAL) AS reviewid, "
                                 "artist, score FROM reviews; DROP TABLE reviews; "
                                 "ALTER TABLE r RENAME TO reviews;")
    big = int((before.review_ids.values % 2 == 0).sum())
    with pytest.warns(UserWarning) as said:
        data_utils.load_catalog(path)
    assert [str(w.message) for w in said] == [
        f"{path}: skipped {big:,} of {len(before.review_ids.values):,} reviews whose reviewid is "
        f"missing or no whole number (as a float or text, up to 2 ** 53)"]


def test_names_that_differ_by_a_tab_or_a_line_break_are_one_artist_as_metadata_holds_them():
    """Probe 17: `tab\tname` and `tab name` were two artists, one name in metadata.tsv: the first
    could not be asked for, and the second's answers named the first as itself."""
    names = ["tab\tname", "tab name", "line\u2028break", "line break", "cr\r\nlf", "other"]
    tables = {"reviews": pd.DataFrame({"reviewid": range(1, 7), "artist": names,
                                       "score": [8.0] * 6}),
              "genres": pd.DataFrame({"reviewid": range(1, 7), "genre": ["rock"] * 6})}
    catalog = data_utils.build_catalog(tables, source="x")
    assert catalog.names == ["cr lf", "line break", "other", "tab name"]
    assert [catalog[name].review_ids for name in catalog.names] == [(5,), (3, 4), (6,), (1, 2)]


def test_names_genres_and_labels_are_text_and_blank_ones_none():
    """Probe 18: a SQLite artist stored as a number (the band 311) was
    `'int' object has no attribute 'replace'`; artists '' and ' ' were two rows of one name in
    metadata.tsv, and no question could read the run; a genre '' was a genre, written `rock, ` and
    read back as `rock,`."""
    tables = {"reviews": pd.DataFrame({"reviewid": range(1, 7),
                                       "artist": [311, "311", "", " ", None, "coil"],
                                       "score": [8.0] * 6}),
              "genres": pd.DataFrame({"reviewid": [1, 1, 6, 6],
                                      "genre": ["rock", "", "rock", " \t"]})}
    catalog = data_utils.build_catalog(tables, source="x")
    assert catalog.names == ["311", "coil"]
    assert catalog["311"].review_ids == (1, 2) and catalog["coil"].genres == ("rock",)


def test_spaces_around_a_name_genre_or_label_are_not_part_of_it():
    """Probe 19: `metal` and `metal ` were two genres in training and one in metadata.tsv, whose
    reader strips the spaces, so ties were miscounted; ` abc` and `abc` were two artists, and the
    command line (which strips a question) could ask for one of them only."""
    tables = {"reviews": pd.DataFrame({"reviewid": range(1, 5),
                                       "artist": ["abc", " abc", "abc\u00a0", "x"],
                                       "score": [8.0] * 4}),
              "genres": pd.DataFrame({"reviewid": range(1, 5),
                                      "genre": ["metal", "metal ", " metal", "rock"]}),
              "labels": pd.DataFrame({"reviewid": range(1, 5),
                                      "label": ["hyper", " hyper", "hyper", "warp"]})}
    catalog = data_utils.build_catalog(tables, source="x")
    assert catalog.names == ["abc", "x"] and catalog["abc"].review_ids == (1, 2, 3)
    assert catalog["abc"].genres == ("metal",) and catalog["abc"].labels == ("hyper",)
    # Probe 20's smaller fault: `various artists` was left out, `VARIOUS ARTISTS` kept.
    tables["reviews"]["artist"] = ["abc", "Various Artists", "VARIOUS ARTISTS ", "x"]
    catalog = data_utils.build_catalog(tables, source="x")
    assert catalog.names == ["abc", "x"]
    assert catalog.left_out == {"Various Artists": 1, "VARIOUS ARTISTS": 1}


def test_a_sqlite_file_is_read_by_its_own_path_and_its_numbers_as_text(tmp_path):
    """Probe 19: a path with `?` or `#` was cut there as a URI (the file `pf` was read, or made
    empty), and `%41` read as `A`; the band 311 in a column with a NULL was `311.0`."""
    path = _sqlite(tmp_path / "pf?x#y%41.sqlite", [
        "CREATE TABLE reviews (reviewid INTEGER, artist NUMERIC, score REAL)",
        "CREATE TABLE genres (reviewid INTEGER, genre NUMERIC)",
        "INSERT INTO reviews VALUES (1, 311, 8.0), (2, NULL, 7.0), (3, 'coil', 6.0)",
        "INSERT INTO genres VALUES (1, 4), (2, NULL), (3, 'rock')"])
    catalog = data_utils.load_catalog(path)
    assert catalog.names == ["311", "coil"] and catalog["311"].genres == ("4",)
    assert os.listdir(tmp_path) == ["pf?x#y%41.sqlite"]


def test_a_name_too_long_for_a_row_of_metadata_is_refused_as_data():
    """Probe 18: a name of 70,000 characters trained to `finished`, then every question refused the
    row the run itself had written."""
    tables = {"reviews": pd.DataFrame({"reviewid": [1, 2], "artist": ["x" * 1_001, "coil"],
                                       "score": [8.0] * 2}),
              "genres": pd.DataFrame({"reviewid": [1, 2], "genre": ["rock", "rock"]})}
    with pytest.raises(DataError, match=r"^x: table reviews, column artist: "
                                        r"a value of 1,001 characters \('xxx.*"
                                        r"where a name, genre or label takes at most 1,000$"):
        data_utils.build_catalog(tables, source="x")


def test_a_review_twice_counts_by_its_copy_with_a_score():
    """Probe 18's smaller fault: a review listed first with a NULL score, then with a valid one, was
    skipped."""
    tables = {"reviews": pd.DataFrame({"reviewid": [1, 1, 2, 3], "artist": ["a", "a", "b", "c"],
                                       "score": [None, 8.0, 11.0, 6.0]}),
              "genres": pd.DataFrame({"reviewid": [1, 2, 3], "genre": ["rock"] * 3})}
    catalog = data_utils.build_catalog(tables, source="x")
    assert (catalog.names == ["a", "c"] and catalog["a"].scores == (8.0,)
            and catalog.dropped_scores == 1)
