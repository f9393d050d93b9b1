"""The t-SNE map keeps the vectors' neighbourhoods, whichever t-SNE draws it (openTSNE, or
scikit-learn's as the fallback), and its quality measure tells a map from a shuffled one."""
import numpy as np
import pytest

import plots
from artist_vectors import ArtistVectors
from contexts import NO_GENRE
from quality import map_quality


def test_a_map_that_is_the_vectors_themselves_is_fully_trustworthy():
    rng = np.random.default_rng(0)
    angles = rng.uniform(0, 2 * np.pi, 500)
    unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    genres = np.where(angles < np.pi, "rock", "jazz").astype(object)
    genres[angles < 0.2] = NO_GENRE  # an arc without a genre: its points are not counted
    exact = map_quality(unit, unit, genres)
    assert exact["trustworthiness"] == pytest.approx(1.0)
    # Neighbours on a circle share the half-circle's genre but at the borders.
    assert exact["genre"] > 0.95
    shuffled = map_quality(unit, rng.permutation(unit), genres)
    assert shuffled["trustworthiness"] < 0.6 and shuffled["genre"] < 0.6


@pytest.mark.slow  # t-SNE twice
def test_both_tsnes_keep_the_demo_neighbourhoods_and_genres(demo_trained, monkeypatch):
    vectors = ArtistVectors.load(demo_trained)
    rows = plots.map_rows(vectors.artists.review_counts)
    unit, genres = vectors.unit_vectors[rows], vectors.artists.primary_genres[rows]
    assert plots.fast_tsne_installed()  # requirements.txt installs openTSNE
    fast = map_quality(unit, plots.compute_tsne(unit), genres)
    monkeypatch.setattr(plots, "fast_tsne_installed", lambda: False)
    coordinates = plots.compute_tsne(unit)
    fallback = map_quality(unit, coordinates, genres)
    shuffled = map_quality(unit, np.random.default_rng(0).permutation(coordinates), genres)
    for quality in (fast, fallback):
        assert quality["trustworthiness"] > 0.95 and quality["genre"] > 2 * shuffled["genre"]
    assert fast["trustworthiness"] == pytest.approx(fallback["trustworthiness"], abs=0.01)
    assert fast["genre"] == pytest.approx(fallback["genre"], abs=0.03)


@pytest.mark.parametrize("place", [0.0, 1e6])
def test_labels_of_points_all_at_one_place_are_stacked_not_looped_on(place):
    """Probe 19: a cached map with every point at 1e6 (within MAX_COORDINATE) kept `plot` stepping a
    label down by less than 1e6's precision, for ever."""
    points = np.full((300, 2), place)
    positions = np.array(plots._label_positions(points, ["a name"] * 300))
    assert len(np.unique(positions[:, 1])) == 300 and (positions[:, 0] == place).all()
