"""Shared fixtures: the full Pitchfork data in ../shared, a demo run and a full-data run, trained
once."""
import os
import shutil
import signal
import sys

import pytest

# tests/ is on the path: pytest puts a conftest's folder there
from helpers import REPO, csv_copy, train_run

sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # synthetic_catalog: Kaggle-schema test data

# The processes the tests interrupt hear Ctrl-C even when the tests were started in the background,
# where the shell ignores SIGINT and every child would inherit that.
signal.signal(signal.SIGINT, signal.default_int_handler)

# The full data: $BANDS2VEC_DATA (the database.sqlite file or its folder, as docs/data.md allows),
# else data/ as the README places it, else ../shared/data/pitchfork as CI has it.
FULL_DATA = os.environ.get("BANDS2VEC_DATA") or next(
    (place for place in (os.path.join(REPO, "data"),
                         os.path.join(REPO, "..", "shared", "data", "pitchfork"))
     if os.path.isfile(os.path.join(place, "database.sqlite"))), os.path.join(REPO, "data"))


@pytest.fixture(scope="session")
def full_data():
    """The full data's database.sqlite: all the full-data tests need (the CSV tests make their CSVs
    from it)."""
    database = (FULL_DATA if os.path.isfile(FULL_DATA)
                else os.path.join(FULL_DATA, "database.sqlite"))
    if not os.path.isfile(database):
        pytest.skip(f"the full Pitchfork data is not at {FULL_DATA} (no database.sqlite)")
    return os.path.abspath(database)  # CI names it relative to the repository; tests link to it


@pytest.fixture(scope="session")
def full_data_csv(tmp_path_factory, full_data):
    """A folder of the full data's tables as CSV files, made from its database.sqlite."""
    return csv_copy(full_data, str(tmp_path_factory.mktemp("full-csv")))


@pytest.fixture(scope="session")
def full_catalog(full_data):
    import data_utils
    return data_utils.load_catalog(full_data)


@pytest.fixture(scope="session")
def demo_catalog():
    import data_utils
    return data_utils.load_catalog(data_utils.DEMO_SOURCE)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A complete run on the demo catalog, plots included (t-SNE makes it the end-to-end tier's)."""
    return train_run(tmp_path_factory.mktemp("demo-logs"), "demo", plots=True, steps=300)


@pytest.fixture(scope="session")
def demo_trained(tmp_path_factory):
    """The same run without its plots: all that questions and the files before the plots need."""
    return train_run(tmp_path_factory.mktemp("demo-trained"), "demo", plots=False, steps=300)


@pytest.fixture(scope="session")
def demo_ensemble(tmp_path_factory):
    """The demo trained as an ensemble of 3 seeds, without plots, as demo_trained is one model."""
    return train_run(tmp_path_factory.mktemp("demo-ensemble"), "demo", plots=False, steps=300,
                     ensemble=3)


@pytest.fixture
def demo_copy(tmp_path, demo_trained):
    """A copy of the demo run without plots, logs/r, to damage or write into."""
    copy = tmp_path / "logs" / "r"
    shutil.copytree(demo_trained, copy)
    return copy


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, full_data):
    """A run on the full data with the default options, as `python run.py` trains (plots made by a
    test)."""
    return train_run(tmp_path_factory.mktemp("full-logs"), full_data)
