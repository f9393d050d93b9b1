"""Queries, expressions, the quality report and the plots, on the demo run and the full-data run."""
import io
import json
import os
import shutil
import struct
import zipfile

import numpy as np
import pytest

import contexts
import plots
from artist_vectors import ArtistVectors
from errors import QueryError, UnknownArtist
from expressions import parse_expression
from quality import map_quality, neighbour_agreement, quality_report, random_like
from helpers import answer_lines, run_cli


@pytest.fixture(scope="module")
def demo_vectors(demo_trained):
    return ArtistVectors.load(demo_trained)


@pytest.fixture(scope="module")
def full_vectors(full_run):
    return ArtistVectors.load(full_run)


@pytest.fixture(scope="module")
def full_names(full_catalog):
    """The full data's artists with random vectors: what parsing a question and naming artists
    need."""
    return random_like(ArtistVectors(np.zeros((len(full_catalog), 64), np.float32),
                                     full_catalog.facts))


def test_most_similar_excludes_the_query_and_is_sorted(demo_vectors):
    results = demo_vectors.most_similar("lune, marée", topn=10)
    names = [name for name, _ in results]
    assert len(results) == 10 and "lune, marée" not in names
    similarities = [s for _, s in results]
    assert similarities == sorted(similarities, reverse=True)
    # The nearest by brute force, to check the top-k selection.
    unit = demo_vectors.unit_vectors
    brute = np.argsort(-(unit @ unit[demo_vectors.index("lune, marée")]))
    assert names == [demo_vectors.names[i] for i in brute
                     if demo_vectors.names[i] != "lune, marée"][:10]


def test_arithmetic_excludes_its_artists(demo_vectors):
    results = demo_vectors.query("lune, marée - !?!", topn=20)
    names = {name for name, _ in results}
    assert not names & {"lune, marée", "!?!"}
    target = (demo_vectors.unit_vectors[demo_vectors.index("lune, marée")]
              - demo_vectors.unit_vectors[demo_vectors.index("!?!")])
    best = demo_vectors.similar_by_vector(target, topn=1,
                                          exclude=[demo_vectors.index("lune, marée"),
                                                   demo_vectors.index("!?!")])
    assert results[0][0] == best[0][0] and results[0][1] == pytest.approx(best[0][1])


def test_an_artist_minus_itself_is_refused(demo_vectors):
    with pytest.raises(QueryError, match="zero vector"):
        demo_vectors.query("!?! - !?!")


@pytest.mark.parametrize("expression, positive, negative", [
    ("coil - elder ones", ["coil"], ["elder ones"]),
    ("'kleenex, liliput' + !!!", ["kleenex, liliput", "!!!"], []),
    ("kleenex, liliput - !!!", ["kleenex, liliput"], ["!!!"]),
    ('"sunn o)))" - coil', ["sunn o)))"], ["coil"]),
    ("scott walker + sunn o))) - coil", ["scott walker + sunn o)))"], ["coil"]),
    ('"scott walker" + "sunn o)))"', ["scott walker", "sunn o)))"], []),
    ("'s. araw \"trio\" xi' + coil", ['s. araw "trio" xi', "coil"], []),
    ("'it''s' - coil", ["it's"], ["coil"]),
    ("jay-z - coil", ["jay-z"], ["coil"]),
])
def test_expressions_parse(full_names, expression, positive, negative):
    assert parse_expression(expression, full_names) == (positive, negative)


@pytest.mark.parametrize("expression, message", [
    ("coil -", "unknown artist"),
    ("'coil", "unclosed"),
    ("'coil' elder ones", "expected \\+ or -"),
    ("coil + ", "unknown artist"),
    ("", "expected an artist name, not ''"),
    ("'coil' -", "expected an artist name after '-' in"),
])
def test_malformed_expressions(full_names, expression, message):
    with pytest.raises((QueryError, UnknownArtist), match=message):
        full_names.query(expression)


def test_unknown_names_suggest_close_ones(full_names, demo_vectors):
    with pytest.raises(UnknownArtist) as error:
        full_names.most_similar("radiohed")
    assert "radiohead" in error.value.suggestions
    assert "did you mean 'radiohead'" in str(error.value)
    with pytest.raises(UnknownArtist) as error:
        demo_vectors.most_similar("lune, maree")
    assert error.value.suggestions[0] == "lune, marée"
    assert full_names.index("Coil") == full_names.index("coil")


@pytest.mark.slow
def test_evaluate_on_random_vectors_matches_the_random_baseline(full_vectors):
    # The metric can fail: random vectors score what chance gives (32% genre, 28% score on this
    # data).
    chance = neighbour_agreement(random_like(full_vectors, seed=5))
    assert chance["genre"] == pytest.approx(0.32, abs=0.02)
    assert chance["score"] == pytest.approx(0.285, abs=0.02)
    report = quality_report(full_vectors)
    assert report["genre"]["random"] == pytest.approx(chance["genre"], abs=0.02)
    assert report["genre"]["trained"] > report["genre"]["random"] + 0.5
    assert report["score_difference"]["trained"] < report["score_difference"]["random"] / 2
    assert report["cluster_genre_nmi"]["trained"] > 0.3 > report["cluster_genre_nmi"]["random"]


def test_catalog_indicator_vectors_reach_the_ceiling(full_catalog):
    genres = np.array([[g in a.genres for g in contexts.GENRES] for a in full_catalog], float)
    buckets = np.eye(11)[[a.score_bucket for a in full_catalog]]
    indicators = np.hstack([genres / np.maximum(1, np.linalg.norm(genres, axis=1, keepdims=True)),
                            buckets])
    vectors = ArtistVectors(indicators, full_catalog.facts)
    figures = neighbour_agreement(vectors)
    assert figures["genre"] > 0.99 and figures["score"] > 0.99


def _png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.slow  # t-SNE
def test_plots_written_with_the_expected_size(demo_run):
    for kind, name in plots.PLOTS.items():
        path = os.path.join(demo_run, name)
        width, height = plots.FIGURE_INCHES[kind]
        assert _png_size(path) == (width * plots.DPI, height * plots.DPI)
        assert os.path.getsize(path) > 20_000


def _npy_member(shape, descr, data_bytes):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return header.getvalue() + bytes(data_bytes)


def test_a_tsne_cache_that_does_not_fit_the_map_is_recomputed_not_read(demo_trained, tmp_path):
    """A tsne.npz whose key.npy inflated to 8 GB (or declared a terabyte) ran `plot` out of memory
    for ever; its members are now checked against the map's points before one is read."""
    folder = str(tmp_path)
    unit = plots.map_artists(ArtistVectors.load(demo_trained)).unit_vectors
    coordinates = np.random.default_rng(0).normal(size=(len(unit), 2))
    plots.cache_coordinates(folder, unit, coordinates)
    # a cache that fits is read
    assert np.array_equal(plots.cached_coordinates(folder, unit), coordinates)
    with zipfile.ZipFile(os.path.join(folder, plots.TSNE_CACHE)) as archive:
        # the members of a cache that fits
        key, good = archive.read("key.npy"), archive.read("coordinates.npy")
    plants = {
        "a terabyte declared": {"key.npy": _npy_member((10**12,), "<f8", 64),
                                "coordinates.npy": good},
        "100 MB past its data": {"key.npy": key + bytes(10**8), "coordinates.npy": good},
        "other points": {"key.npy": key,
                         "coordinates.npy": _npy_member((len(unit) + 1, 2), "<f8", 0)},
        "no coordinates": {"key.npy": key},
        "not a zip": None,
    }
    for case, members in plants.items():
        with zipfile.ZipFile(os.path.join(folder, plots.TSNE_CACHE), "w",
                             zipfile.ZIP_DEFLATED) as archive:
            for name, data in (members or {"key.npy": key}).items():
                archive.writestr(name, data)
        if members is None:  # a cache cut short
            os.truncate(os.path.join(folder, plots.TSNE_CACHE), 100)
        assert plots.cached_coordinates(folder, unit) is None, case
    # Of the right key and shape, but not numbers: they made bookmarks of NaN, which is not JSON; or
    # past any map's (probe 17): the plot's axes overflowed, `arange: cannot compute length`, and
    # float16's and float32's overflow warnings were notes.
    for planted in (np.full_like(coordinates, np.nan), np.full_like(coordinates, np.inf),
                    1e308 * np.linspace(-1, 1, coordinates.size).reshape(coordinates.shape),
                    np.full(coordinates.shape, 3e38, np.float32)):
        plots.cache_coordinates(folder, unit, planted)
        assert plots.cached_coordinates(folder, unit) is None, planted
    plots.cache_coordinates(folder, unit, np.full(coordinates.shape, 65504, np.float16))
    # float16's overflowed in the plots
    assert plots.cached_coordinates(folder, unit).dtype == np.float64


@pytest.mark.slow  # draws the plots
def test_cached_coordinates_are_reused(demo_run, tmp_path, monkeypatch):
    folder = shutil.copytree(demo_run, tmp_path / "r")
    vectors = ArtistVectors.load(folder)
    cached = plots.cached_coordinates(folder, plots.map_artists(vectors).unit_vectors)
    assert cached.shape == (len(vectors), 2)  # the run's map
    monkeypatch.setattr(plots, "compute_tsne", lambda *a, **k: pytest.fail("t-SNE ran again"))
    said = []
    assert np.array_equal(plots.write_plots(vectors, folder, say=said.append)[1], cached)
    # What is said is what was done: the map read, not a t-SNE of so many iterations.
    assert said == [f"The t-SNE map of {len(vectors)} artists from tsne.npz, made from these "
                    f"vectors, then the plots"]
    # Other vectors do not take the cache's coordinates.
    other = random_like(vectors).unit_vectors[plots.map_rows(vectors.artists.review_counts)]
    assert plots.cached_coordinates(folder, other) is None


@pytest.mark.slow
def test_command_line_queries(full_run):
    logs = ["--logdir", os.path.dirname(full_run)]
    result = run_cli("query", "coil - elder ones", "-k", "3", *logs)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert answer_lines(result.stdout) == lines[-3:]
    assert all(", Mean Score: " in line and ", Genres: [" in line and ", Similarity: " in line
               for line in lines[-3:])
    # Before them, a line for each group of answers that the vectors cannot order.
    assert all(" of these answers have exactly the same contexts (" in line for line in lines[:-3])

    result = run_cli("similar", "tyler, the creator", "-k", "4", "--json", *logs)
    (answer,) = json.loads(result.stdout)
    rows = answer["results"]
    assert len(rows) == 4 and {"artist", "similarity", "mean_score", "genres"} <= set(rows[0])

    result = run_cli("similar", "radiohed", *logs)
    assert result.returncode == 2 and "did you mean 'radiohead'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # An artist minus itself: test_hostile_runs.py.


@pytest.mark.slow
def test_evaluate_and_plot_commands_on_the_full_data(full_run):
    logs = ["--logdir", os.path.dirname(full_run)]
    result = run_cli("evaluate", "--json", *logs)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["artists"] == 8630 and report["k"] == 10
    assert sum(cluster["size"] for cluster in report["clusters"]) == 8630
    result = run_cli("evaluate", *logs)
    assert "neighbours sharing a genre" in result.stdout and "random" in result.stdout
    result = run_cli("plot", *logs)
    assert result.returncode == 0, result.stderr
    for name in plots.PLOTS.values():
        assert os.path.getsize(os.path.join(full_run, name)) > 50_000
    # The map keeps its neighbourhoods and genres: scikit-learn's 500 iterations gave 0.990 and
    # 97.4% on the 8,712-artist catalog; openTSNE gives 0.991 and 96.2% on today's 8,630 artists.
    vectors = ArtistVectors.load(full_run)
    rows = plots.map_rows(vectors.artists.review_counts)
    coordinates = plots.cached_coordinates(full_run, vectors.unit_vectors[rows])  # the plot's
    quality = map_quality(vectors.unit_vectors[rows], coordinates,
                          vectors.artists.primary_genres[rows])
    assert quality["trustworthiness"] > 0.985 and quality["genre"] > 0.955, quality

