"""The house: modules that import alone without cycles, run.json as a typed record that reads
older versions, a context kind that is one entry, a command that is one entry."""
import ast
import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bands2vec
import contexts
import data_utils
import metadata
import run
import run_record
from artist_vectors import ArtistVectors, shares_text
from helpers import REPO, quiet
from contexts import CONTEXTS, ContextKind, quality_tags
from demo_data import demo_tables

MODULES = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(REPO, "*.py")))


def _imports(module):
    """The project modules `module` imports at its top level (not inside functions)."""
    with open(os.path.join(REPO, f"{module}.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names & set(MODULES)


def _needs(module):
    """Every project module `module` imports at its top level, directly or through another."""
    found, todo = set(), [module]
    while todo:
        for imported in _imports(todo.pop()) - found:
            found.add(imported)
            todo.append(imported)
    return found


def test_no_module_imports_itself_back():
    cycles = [module for module in MODULES if module in _needs(module)]
    assert not cycles, f"import cycles through {cycles}"


def test_the_cluster_configuration_and_the_queries_need_no_tensorflow():
    for module in ("cluster_config", "artist_vectors", "quality", "run_record", "metadata",
                   "bands2vec", "options", "contexts", "data_utils"):
        assert not {"bands2vec_graph", "training"} & _needs(module), module


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_process(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_module_over_500_lines():
    for module in MODULES:
        with open(os.path.join(REPO, f"{module}.py"), encoding="utf-8") as f:
            assert len(f.readlines()) <= 500, module


def test_no_line_over_100_characters():
    """The style's bound, for every Python file and CI's script: the modules, benchmarks, tests."""
    paths = [*glob.glob(os.path.join(REPO, "*.py")), *glob.glob(os.path.join(REPO, "*", "*.py")),
             os.path.join(REPO, ".ci", "run")]
    long_lines = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            long_lines += [f"{os.path.relpath(path, REPO)}:{number}"
                           for number, line in enumerate(f, 1) if len(line.rstrip("\n")) > 100]
    assert not long_lines


# ---------------------------------------------------------------------------------------------
# run.json
# ---------------------------------------------------------------------------------------------

# Options as a trained run's are: those the catalog decides are filled in.
TRAINED = bands2vec.TrainOptions(steps=5, batch_size=8, num_sampled=4, learning_rate=1.0)


def test_run_json_round_trips(tmp_path):
    record = run_record.RunRecord(data="demo", artists=300, options=TRAINED,
                                  data_fingerprint="abc", kmeans_clusters=7)
    os.makedirs(tmp_path / "r")
    record.set_state(str(tmp_path / "r"), "incomplete", missing=["plots"])
    run_record.write(str(tmp_path / "r"), record)
    assert run_record.read(str(tmp_path / "r")) == record
    assert record.next == f"python run.py plot --logdir {tmp_path} --run r"
    assert json.loads((tmp_path / "r" / "run.json").read_text())["version"] == run_record.VERSION


def test_a_run_json_of_the_first_version_is_read_with_todays_names(tmp_path):
    old = {"data": "demo", "artists": 300, "catalog": "abc", "clusters": 12,
           "cluster": {"chief": ["a:1"], "ps": ["b:2"]}, "include_pseudo_artists": False,
           "options": {"steps": 60, "batch_size": 512, "num_sampled": 64, "learning_rate": 3.3,
                       "contexts": "genre,score"},
           "stats": {"steps": 60, "pairs": 100, "loss": 4.5, "seconds": 1.0}}
    (tmp_path / "run.json").write_text(json.dumps(old))
    record = run_record.read(str(tmp_path))
    assert ((record.data_fingerprint, record.kmeans_clusters, record.tf_cluster)
            == ("abc", 12, old["cluster"]))
    assert record.options.contexts == {"genre": 0.6, "score": 0.4} and record.stats.steps == 60
    # Before states, a run that trained all its steps.
    assert record.state == "finished" and record.version == run_record.VERSION


@pytest.mark.parametrize("text, reason", [
    ('{"version": 99, "data": "demo"}', "from a newer Bands2Vec"),
    ('{"data": "demo"}', "no 'artists'"),
    ("[1, 2", "not JSON"),
    (" " * run_record.MAX_BYTES + "{}", "over 1,000,000 bytes, which no run writes"),
])
def test_a_run_json_it_cannot_read_is_one_line(tmp_path, text, reason):
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(bands2vec.RunError, match=reason) as error:
        run_record.read(str(tmp_path))
    assert "\n" not in str(error.value) and "unreadable run.json" in str(error.value)


@pytest.mark.parametrize("field, value, reason", [
    ("stats", {"steps": 60, "loss": float("-inf")}, "'loss' is -inf, not a number or null"),
    ("stats", {"steps": 60, "seconds": float("inf")}, "'seconds' is inf, not seconds, 0 or more"),
    ("stats", {"steps": 60, "part_seconds": -1}, "'part_seconds' is -1, not seconds, 0 or more"),
    ("phases", {"train": -2.0}, "'phases' is {'train': -2.0}, not an object of seconds or null"),
    ("missing", ["teapot"], "'missing' is \\['teapot'\\], not a list of outputs \\(vectors, "),
    ("peak_memory_mb", -5, "'peak_memory_mb' is -5, not a number of 0 or more, or null"),
    # Probe 20: `OverflowError: int too large to convert to float`, on every command in its folder.
    ("stats", {"steps": 60, "seconds": 10**400}, "'seconds' is 1000000000.*, not seconds"),
    ("stats", {"steps": 10**400}, "'steps' is 1000000000.*, not a count"),
])
def test_a_run_json_with_figures_no_run_writes_is_refused(tmp_path, field, value, reason):
    """Probe 19: an infinite loss or seconds, negative phases and a missing `teapot` were read as a
    run's, and said as its figures."""
    fields = {"data": "demo", "artists": 300, "options": dataclasses.asdict(TRAINED),
              "stats": {"steps": 60}, "state": "finished", field: value}
    text = json.dumps(fields)
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(bands2vec.RunError, match=reason) as error:
        run_record.read(str(tmp_path))
    assert "\n" not in str(error.value) and "unreadable run.json" in str(error.value)


def test_the_next_command_read_is_made_for_where_the_run_is_now(tmp_path):
    """A run moved, or a run.json planted, gave its file's own `next`: an old folder, or
    anything."""
    record = run_record.RunRecord(data="demo", artists=300, options=TRAINED)
    record.set_state(str(tmp_path / "old"), "incomplete", missing=["plots"])
    record.next = "rm -rf ~"
    os.makedirs(tmp_path / "new run")
    run_record.write(str(tmp_path / "new run"), record)
    read = run_record.read(str(tmp_path / "new run"))
    assert read.next == f"python run.py plot --logdir {tmp_path} --run 'new run'"


def test_a_huge_run_json_beside_a_run_is_not_read_whole(tmp_path):
    """A sparse 2 GB run.json planted in a neighbouring folder was read whole by every new run
    (77 s and 4.9 GB) as it compared the log folder's runs."""
    with open(tmp_path / "run.json", "wb") as planted:
        planted.truncate(2 * 1024 ** 3)
    with pytest.raises(bands2vec.RunError, match="over 1,000,000 bytes"):  # its first megabyte read
        run_record.read(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# A new kind of context is one entry
# ---------------------------------------------------------------------------------------------

def _read_moods(frame, reviews, artists, source):
    return contexts.values_by_artist(reviews, frame.dropna().drop_duplicates(), "mood", artists)


MOOD = ContextKind(
    "mood", "moods", ("reviewid", "mood"), weight=0.3, read=_read_moods,
    groups=lambda catalog: (catalog.contexts["mood"].owners, [catalog.contexts["mood"].values]),
    facts=lambda catalog: {"moods": catalog.contexts["mood"].tuples()},
    to_metadata=lambda table, rows: {"moods": [" & ".join(table.more["moods"][i]) for i in rows]},
    from_metadata=lambda columns: {"moods": [tuple(filter(None, text.strip().split(" & ")))
                                             for text in columns["moods"]]},
    common=lambda table: table.more.get("moods"), many=True, shared_as="moods", shown="{} (mood)",
    answer_rank=1.5, quality_tag="quality/mood_at_10", agreement="neighbours sharing a mood",
    absent="the data has no moods table")


@pytest.fixture
def mood_catalog(monkeypatch):
    """The demo catalog with a made-up kind of context: a mood per review, two moods per genre."""
    monkeypatch.setitem(CONTEXTS, "mood", MOOD)
    tables = demo_tables()
    genres = tables["genres"].dropna().drop_duplicates("reviewid")
    moods = genres.assign(mood=genres["genre"] + np.where(genres["reviewid"] % 2, " calm", " loud"))
    tables["moods"] = moods[["reviewid", "mood"]]
    return data_utils.build_catalog(tables, source="demo with moods")


def test_a_made_up_context_kind_is_one_entry(mood_catalog, tmp_path):
    catalog = mood_catalog
    assert catalog.context_groups("mood") and catalog.facts.more["moods"][0]
    options = bands2vec.TrainOptions(steps=300,
                                     contexts=contexts.parse_contexts("genre,score,mood"))
    trained = bands2vec.train(catalog, options, logs=str(tmp_path), name="r", plots=False,
                              say=quiet)
    # It is trained, measured, written, read back and explained like the kinds the project ships.
    assert trained.options.contexts["mood"] == pytest.approx(0.3 / 1.3, abs=1e-6)
    assert 0.5 < trained.quality["mood"]["trained"] and trained.quality["mood"]["random"] < 0.5
    assert quality_tags()["mood"] == "quality/mood_at_10"
    assert "moods" in metadata.read_columns(trained.folder)
    vectors = ArtistVectors.load(trained.folder)
    assert vectors.artists.more["moods"] == catalog.facts.more["moods"]
    name = catalog.names[0]
    mood = catalog.facts.more["moods"][0][0]
    mate = next(other for i, other in enumerate(catalog.names[1:], 1)
                if mood in catalog.facts.more["moods"][i])
    shared = vectors.shared(name, [mate])
    assert mood in shared["moods"] and f"{mood} (mood)" in shares_text(shared)
    assert list(shared) == ["labels", "genres", "moods", "era", "score_bucket"]  # by answer_rank


# ---------------------------------------------------------------------------------------------
# A new command is one entry
# ---------------------------------------------------------------------------------------------

def test_a_new_command_is_one_entry(monkeypatch, capsys):
    def count(args):
        print(f"{len(args.names)} names")
        return 0

    def arguments(parser):
        parser.add_argument("names", nargs="+")

    monkeypatch.setitem(run.COMMANDS, "count", run.Command(count, "count names", arguments))
    assert run.main(["count", "a", "b", "c"]) == 0
    assert capsys.readouterr().out == "3 names\n"
    assert "count names" in run.build_parser().format_help()


def test_every_command_has_its_help_and_its_run_option():
    parser = run.build_parser()
    for name, command in run.COMMANDS.items():
        assert dataclasses.is_dataclass(command)
        args = run.parse_args([name] + (["x"] if name in ("similar", "query") else []))
        assert args.command == name and args.logdir == "logs"
    assert all(name in parser.format_help() for name in run.COMMANDS)
