"""The second process that computes k-means and the t-SNE map while a run writes its other files:
the same answers as this process gives, what it says relayed here, its errors and warnings raised
here, the work done here when it has died, and no process left behind."""
import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

import checks
import plots
import quality
import side_process
from artist_vectors import ArtistVectors
from errors import OptionError
from helpers import REPO


@pytest.fixture(scope="module")
def side():
    with side_process.SideProcess() as started:
        yield started
    assert started._process.poll() is not None  # closed, it leaves no process behind


@pytest.mark.slow  # t-SNE twice
def test_k_means_and_the_map_come_back_as_this_process_makes_them(side, demo_trained, tmp_path):
    vectors = ArtistVectors.load(demo_trained)
    clusters = quality.kmeans_clusters(vectors, 10, seed=3, side=side)
    assert np.array_equal(clusters, quality.kmeans_clusters(vectors, 10, seed=3))
    said = []
    plots.submit_map(side, plots.map_artists(vectors), str(tmp_path), seed=0)  # no cache: t-SNE
    assert side.pending
    coordinates = side.answer(said.append)
    shown = plots.map_artists(vectors)
    assert np.array_equal(coordinates, plots.map_coordinates(shown.unit_vectors, seed=0))
    assert coordinates.shape == (len(vectors), 2)
    assert said[-1].startswith(f"  t-SNE iteration {plots.tsne_iterations()} of ")  # relayed
    side.submit(plots.pictures, shown, coordinates)
    pictures = side.answer(say=None)
    assert pictures == plots.pictures(shown, coordinates) and list(pictures) == list(plots.PLOTS)
    assert all(picture.startswith(b"\x89PNG\r\n\x1a\n") for picture in pictures.values())
    assert not side.pending


def test_its_errors_and_warnings_are_raised_here_as_they_were_there(side):
    side.submit(checks.whole, "--clusters", "ten", 1)
    with pytest.raises(OptionError) as raised:
        side.answer(say=None)
    with pytest.raises(OptionError) as here:
        checks.whole("--clusters", "ten", 1)
    assert str(raised.value) == str(here.value)
    side.submit(warnings.warn, "a note from over there")
    with pytest.warns(UserWarning, match="a note from over there"):
        assert side.answer(say=None) is None


def test_ctrl_c_at_the_terminal_reaches_the_run_not_it(side):
    # The terminal signals its foreground process group: the run's, not the side process's own.
    assert os.getpgid(side._process.pid) == side._process.pid != os.getpgid(0)
    side.submit(quality.normalized_mutual_information, [0, 0, 1], [1, 1, 0])
    assert side.answer(say=None) == pytest.approx(1.0)


def test_when_it_has_died_the_work_is_done_here(demo_trained):
    vectors = ArtistVectors.load(demo_trained)
    with side_process.SideProcess() as side:
        os.kill(side._process.pid, signal.SIGKILL)
        side._process.wait()
        clusters = quality.kmeans_clusters(vectors, 5, seed=0, side=side)
    assert np.array_equal(clusters, quality.kmeans_clusters(vectors, 5, seed=0))


@pytest.mark.parametrize("seed", range(5))
def test_normalized_mutual_information_is_scikit_learns(seed):
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(seed)
    genres = rng.choice(["rock", "jazz", "rap", "folk"], size=500)
    clusters = np.where(rng.random(500) < 0.6, np.unique(genres, return_inverse=True)[1],
                        rng.integers(0, 10, 500))
    cases = [(genres, clusters), (genres, rng.permutation(clusters)), (genres, genres),
             (genres, np.zeros(500, int)), (["a"] * 4, [7] * 4), ([], [])]
    for labels, others in cases:
        assert quality.normalized_mutual_information(labels, others) == pytest.approx(
            normalized_mutual_info_score(labels, others), abs=1e-12)


def test_a_module_planted_in_the_current_folder_is_not_run(tmp_path, monkeypatch, demo_trained):
    marker = tmp_path / "ran"
    (tmp_path / "sklearn.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    vectors = ArtistVectors.load(demo_trained)
    with side_process.SideProcess() as side:
        clusters = quality.kmeans_clusters(vectors, 5, seed=0, side=side)
    assert len(clusters) == len(vectors) and not marker.exists()


def test_a_side_process_stopped_or_interrupted_does_not_hold_the_run(demo_trained):
    vectors = ArtistVectors.load(demo_trained)
    with side_process.SideProcess() as side:
        # sent to it alone: it ends, the work is done here
        os.kill(side._process.pid, signal.SIGINT)
        assert np.array_equal(quality.kmeans_clusters(vectors, 5, seed=0, side=side),
                              quality.kmeans_clusters(vectors, 5, seed=0))
    with side_process.SideProcess() as side:
        os.kill(side._process.pid, signal.SIGSTOP)
    # killed after CLOSE_SECONDS, not waited on for ever
    assert side._process.returncode is not None


def test_a_caller_without_stdin_and_stdout_still_has_the_work_done_there():
    """The pipes then take the numbers 0 and 1: the side process's stdin and stdout (/dev/null)
    must not take their place, or its answers go nowhere and the work is done twice."""
    script = ("import os, side_process\n"
              "with side_process.SideProcess() as side:\n"
              "    side.submit(os.getpid)\n"
              "    os.write(2, b'%d %d' % (side.answer(None), os.getpid()))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE,
                            preexec_fn=lambda: (os.close(0), os.close(1)), timeout=120)
    there, here = map(int, result.stderr.split())
    assert result.returncode == 0 and there != here
