"""Shared fixtures: the full Pitchfork data in ../shared, a demo run and a full-data run, trained once."""
import os
import signal
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # synthetic_catalog: Kaggle-schema test data

# The processes the tests interrupt hear Ctrl-C even when the tests were started in the background, where the
# shell ignores SIGINT and every child would inherit that.
signal.signal(signal.SIGINT, signal.default_int_handler)

# metadata.tsv's header: the artist, each context kind's columns, the k-means cluster.
METADATA_HEADER = ["artist", "genres", "primary_genre", "mean_score", "score_bucket", "reviews", "labels", "main_label", "year", "era", "cluster"]

FULL_DATA = os.environ.get("BANDS2VEC_DATA") or os.path.join(REPO, "..", "shared", "data", "pitchfork")


@pytest.fixture(scope="session")
def full_data():
    if not os.path.isdir(FULL_DATA):
        pytest.skip(f"the full Pitchfork data is not at {FULL_DATA}")
    return FULL_DATA


@pytest.fixture(scope="session")
def full_catalog(full_data):
    import data_utils
    return data_utils.load_catalog(full_data)


@pytest.fixture(scope="session")
def demo_catalog():
    import data_utils
    return data_utils.load_catalog(data_utils.DEMO_SOURCE)


def quiet(*lines):
    """A `say` that keeps the library's progress out of the test output."""


def train_run(logs, data="demo", plots=False, **options):
    """Train a run named `trained` with the library; returns its folder."""
    import bands2vec
    return bands2vec.train(data, bands2vec.TrainOptions(**options), logs=str(logs), name="trained", plots=plots,
                           say=quiet).folder


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A complete run on the demo catalog, plots included."""
    return train_run(tmp_path_factory.mktemp("demo-logs"), "demo", plots=True, steps=300)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, full_data):
    """A run on the full data with the default options, as `python run.py` trains (plots made by a test)."""
    return train_run(tmp_path_factory.mktemp("full-logs"), full_data)
