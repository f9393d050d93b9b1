"""The log dir in the real TensorBoard server, through its HTTP API, and the projector in a real
browser."""
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import contexts
import metadata
import run_record
import tensorboard_files
from helpers import free_ports, quiet, train_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN = "trained"
TENSOR = tensorboard_files.PROJECTOR_TENSOR
# TensorBoard takes a few seconds to start on an idle machine, minutes on one shared by eight
# people.
START_SECONDS = 600
STEPS = 600  # report steps 250 and 500 write sampled quality, the last step the full figures
SCREENSHOT = os.path.join(os.environ.get("BANDS2VEC_SCREENSHOT_DIR", tempfile.gettempdir()),
                          "projector-bookmark.png")


def _get(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return response.read()


def _post(base, path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def _serving(logs):
    """The installed TensorBoard serving `logs` on 127.0.0.1 (its base URL); stopped whatever
    happens."""
    (port,) = free_ports(1)
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logs),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_SECONDS
        while True:
            try:
                _get(base, "/data/plugins_listing")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.time() > deadline:
                    server.kill()  # first: its stderr ends only when it does
                    pytest.fail(f"TensorBoard did not start: "
                                f"{server.communicate()[1].decode()[-2000:]}")
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory, demo_catalog):
    """A demo run, plots included, served by the installed TensorBoard."""
    logs = tmp_path_factory.mktemp("tb-logs")
    run_dir = train_run(logs, "demo", plots=True, steps=STEPS)
    with _serving(logs) as base:
        yield base, len(demo_catalog), run_dir


def _wait_for(fetch, ready, seconds=60):
    """TensorBoard loads runs in the background: ask until the answer is ready."""
    deadline = time.time() + seconds
    while True:
        value = fetch()
        if ready(value) or time.time() > deadline:
            return value
        time.sleep(1)


@pytest.mark.slow
def test_projector_shows_one_tensor_and_the_bookmarks(tensorboard):
    base, vocabulary, _ = tensorboard
    runs = _wait_for(lambda: json.loads(_get(base, "/data/plugin/projector/runs")),
                     lambda r: RUN in r)
    assert RUN in runs
    # The plugin reads the tensor file's shape in the background: ask until it has.
    info = _wait_for(lambda: json.loads(_get(base, f"/data/plugin/projector/info?run={RUN}")),
                     lambda i: all(e.get("tensorShape") for e in i["embeddings"]))
    # the artists only: no NCE weights, no other checkpoint variable
    (embedding,) = info["embeddings"]
    assert embedding["tensorName"] == TENSOR and embedding["tensorShape"] == [vocabulary, 64]
    assert embedding["metadataPath"] == "metadata.tsv"
    tensor = np.frombuffer(_get(base, f"/data/plugin/projector/tensor?run={RUN}&name={TENSOR}"),
                           dtype=np.float32)
    assert tensor.size == vocabulary * 64 and np.all(np.isfinite(tensor))
    metadata = _get(base,
                    f"/data/plugin/projector/metadata?run={RUN}&name={TENSOR}").decode("utf-8")
    header, *rows = metadata.rstrip("\n").split("\n")
    assert len(rows) == vocabulary and header.split("\t")[:2] == ["artist", "genres"]
    states = json.loads(_get(base, f"/data/plugin/projector/bookmarks?run={RUN}&name={TENSOR}"))
    assert [state["selectedColorOptionName"] for state in states] == ["primary_genre", "cluster",
                                                                      "score_bucket"]
    for state in states:
        assert (len(state["projections"]) == vocabulary
                and state["dataSetDimensions"] == [vocabulary, 64])
        assert state["selectedColorOptionName"] in header.split("\t")


@pytest.mark.slow
def test_scalars_text_images_and_hparams(tensorboard):
    base, _, _ = tensorboard
    tags = _wait_for(lambda: json.loads(_get(base, "/data/plugin/scalars/tags")),
                     lambda t: RUN in t)[RUN]
    assert {"loss/nce", "quality/genre_at_10", "quality/score_at_10",
            "quality/label_at_10"} <= set(tags)
    points = json.loads(_get(base, f"/data/plugin/scalars/scalars?run={RUN}&tag=loss/nce"))
    assert len(points) >= 20 and points[-1][1] == STEPS  # [wall time, step, value], every 25 steps
    quality = json.loads(_get(base,
                              f"/data/plugin/scalars/scalars?run={RUN}&tag=quality/genre_at_10"))
    assert ([step for _, step, _ in quality] == [250, 500, STEPS]
            and all(0 < value <= 1 for *_, value in quality))
    graph = _get(base, f"/data/plugin/graphs/graph?run={RUN}").decode("utf-8")
    assert 'name: "inputs/train_inputs"' in graph and "nce_loss" in graph

    text_tags = json.loads(_get(base, "/data/plugin/text/tags"))[RUN]
    assert {"neighbours", "run"} <= set(text_tags)
    run_text = json.loads(_get(base, f"/data/plugin/text/text?run={RUN}&tag=run"))
    assert "contexts" in run_text[-1]["text"] and "genre=0.6,score=0.4" in run_text[-1]["text"]
    neighbours = json.loads(_get(base, f"/data/plugin/text/text?run={RUN}&tag=neighbours"))
    assert ([entry["step"] for entry in neighbours] == [250, 500, STEPS]
            and "<table>" in neighbours[-1]["text"])

    images = json.loads(_get(base, "/data/plugin/images/tags"))[RUN]
    assert {"plots/genres", "plots/clusters", "plots/labelled"} <= set(images)

    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "colParams": [],
               "startIndex": 0, "sliceSize": 10}
    (group,) = _post(base, "/data/plugin/hparams/session_groups", request)["sessionGroups"]
    assert len(group["hparams"]) >= 4
    assert (group["hparams"]["steps"] == STEPS
            and group["hparams"]["contexts"] == "genre=0.6,score=0.4")
    metrics = {value["name"]["tag"]: value["value"] for value in group["metricValues"]}
    assert {"quality/genre_at_10", "quality/score_at_10"} <= set(metrics)


@pytest.mark.slow  # t-SNE
def test_run_files_are_readable_by_others(demo_run):
    for folder, _, names in os.walk(demo_run):
        for name in names:
            mode = os.stat(os.path.join(folder, name)).st_mode & 0o777
            assert mode & 0o044 == 0o044, f"{name} has mode {oct(mode)}"


def _chromium_or_skip():
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def _projector_frame(page, seconds=90):
    for _ in range(seconds * 2):
        frame = next((f for f in page.frames if "projector_binary" in f.url), None)
        if frame is not None:
            return frame
        page.wait_for_timeout(500)  # not time.sleep: the browser's events are handled while waiting
    pytest.fail("the projector's frame did not load")


def _plot_area(path):
    from matplotlib.image import imread

    return imread(path)[150:850, 320:1080, :3]


def _colours(pixels, min_pixels=40):
    """The distinct saturated colours drawn, each by at least `min_pixels` pixels."""
    saturated = pixels[(pixels.max(axis=2) - pixels.min(axis=2)) > 0.25]
    _, counts = np.unique(np.round(saturated * 8), axis=0, return_counts=True)
    return int((counts >= min_pixels).sum())


@contextlib.contextmanager
def _browser_page(profile):
    """A page of headless Chromium (Debian's), with its profile in `profile`; closed whatever
    happens."""
    from playwright.sync_api import sync_playwright

    chromium = _chromium_or_skip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900})
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.slow
def test_one_click_on_a_bookmark_shows_the_runs_map(tensorboard, tmp_path):
    base, vocabulary, _ = tensorboard
    later = str(tmp_path / "later.png")
    with _browser_page(tmp_path / "profile") as page:
        page.goto(base + "/#projector")
        # The projector runs in its own frame; it says how many points it has loaded once they are
        # in.
        frame = _projector_frame(page)
        frame.get_by_text(f"Points: {vocabulary}").first.wait_for(timeout=90_000)
        assert frame.get_by_text("1 tensor found").count() == 1
        # The bookmark panel's first unselected radio button: "t-SNE by primary genre".
        frame.locator("paper-icon-button[icon=radio-button-unchecked]").first.click()
        page.wait_for_timeout(3000)  # a few frames for the scatter plot to draw
        page.screenshot(path=SCREENSHOT)
        assert frame.get_by_text("Error", exact=True).count() == 0
        page.wait_for_timeout(30_000)
        page.screenshot(path=later)
    first = _plot_area(SCREENSHOT)
    assert _colours(first) >= 4, f"fewer than 4 genre colours in {SCREENSHOT}"
    # No in-browser t-SNE moved the points: the map 30 s later is the same picture.
    assert np.mean(np.abs(first - _plot_area(later)).max(axis=2) > 0.1) < 0.001


@pytest.mark.slow
def test_the_hparams_dashboard_compares_two_runs_by_what_they_learned(tmp_path):
    """Two demo runs that differ in their learning rate, in TensorBoard's HParams dashboard."""
    import bands2vec

    logs = tmp_path / "logs"
    for name, rate in (("slow", 1.0), ("fast", 3.0)):
        bands2vec.train("demo", bands2vec.TrainOptions(steps=300, learning_rate=rate),
                        logs=str(logs), name=name, plots=False, say=quiet)
    records = {name: run_record.read(str(logs / name)) for name in ("slow", "fast")}
    with _serving(logs) as base, _browser_page(tmp_path / "profile") as page:
        page.goto(base + "/#hparams")
        grid = page.locator("vaadin-grid-cell-content")
        grid.filter(has_text="fast").first.wait_for(timeout=90_000)
        # The dashboard shows the settings that differ first, and five at first: alphabetically,
        # learning_rate would be the seventh, not shown.
        boxes = page.locator("tf-hparams-query-pane paper-checkbox")
        shown = [boxes.nth(i).inner_text().strip() for i in range(boxes.count())
                 if boxes.nth(i).get_attribute("aria-checked") == "true"]
        assert shown[0] == "learning_rate", shown
        headers = [grid.nth(i).inner_text().strip() for i in range(grid.count())]
        assert ({"learning_rate", "genre agreement", "score agreement", "final loss"}
                <= set(headers)), headers
        for record in records.values():  # each run's rate and quality, as the table writes numbers
            figures = [record.options.learning_rate, record.quality["genre"]["trained"],
                       record.quality["score"]["trained"]]
            assert all(f"{figure:#.5g}" in headers for figure in figures), (figures, headers)


# ---------------------------------------------------------------------------------------------
# The files behind it, read without a server
# ---------------------------------------------------------------------------------------------

def _projector_config(run_dir):
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    config = projector.ProjectorConfig()
    with open(os.path.join(run_dir, tensorboard_files.PROJECTOR_FILE)) as f:
        text_format.Parse(f.read(), config)
    return config


def _bookmarks(run_dir):
    with open(os.path.join(run_dir, tensorboard_files.BOOKMARKS_FILE)) as f:
        return json.load(f)


@pytest.mark.slow
def test_bookmarks_come_with_the_plots_and_follow_the_vectors(tmp_path, demo_catalog):
    import bands2vec
    import plots

    run_dir = train_run(tmp_path, "demo", steps=100)
    bookmarks = os.path.join(run_dir, tensorboard_files.BOOKMARKS_FILE)
    assert (not os.path.exists(bookmarks)
            and not _projector_config(run_dir).embeddings[0].bookmarks_path)

    bands2vec.open_run(str(tmp_path)).plot(say=quiet)
    assert (_projector_config(run_dir).embeddings[0].bookmarks_path
            == tensorboard_files.BOOKMARKS_FILE)
    states = _bookmarks(run_dir)
    header = list(metadata.read_columns(run_dir))
    with np.load(os.path.join(run_dir, plots.TSNE_CACHE)) as cached:
        coordinates = cached["coordinates"]
    for state in states:
        points = np.array([[p["linear-x"], p["linear-y"]] for p in state["projections"]])
        assert points.shape == (len(demo_catalog), 2) and np.all(np.isfinite(points))
        np.testing.assert_allclose(points, coordinates, atol=1e-4)
        assert state["selectedColorOptionName"] in header

    # Resumed without plots, the map belongs to older vectors: it goes. With plots, a new one comes.
    bands2vec.resume(str(tmp_path), "trained", steps=150, plots=False, say=quiet)
    assert (not os.path.exists(bookmarks)
            and not _projector_config(run_dir).embeddings[0].bookmarks_path)
    bands2vec.resume(str(tmp_path), "trained", steps=200, say=quiet)
    assert len(_bookmarks(run_dir)) == len(tensorboard_files.BOOKMARKS)


@pytest.mark.slow  # t-SNE
def test_summaries_in_the_events_files(demo_run):
    import glob

    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    records = [record for path in sorted(glob.glob(os.path.join(demo_run, "events.out.tfevents.*")))
               for record in tf.compat.v1.train.summary_iterator(path)]
    values = [(record.step, value) for record in records for value in record.summary.value]
    tags = {value.tag for _, value in values}
    # The hparams config is the log folder's (one for all its runs); the run has its values, named
    # for it.
    assert {"neighbours", "run", "plots/genres", "quality/genre_at_10",
            "_hparams_/session_start_info"} <= tags
    assert "_hparams_/experiment" not in tags
    assert os.path.isfile(os.path.join(os.path.dirname(demo_run),
                                       tensorboard_files.EXPERIMENT_FILE))
    start = next(value for _, value in values if value.tag == "_hparams_/session_start_info")
    data = plugin_data_pb2.HParamsPluginData.FromString(start.metadata.plugin_data.content)
    assert ({"steps", "batch_size", "learning_rate", "contexts", "genre_share"}
            <= set(data.session_start_info.hparams))
    assert data.session_start_info.group_name == os.path.basename(demo_run)
    run_text = next(value for _, value in values if value.tag == "run")
    assert b"quality: genre" in run_text.tensor.string_val[0]
    final = [float(tensor_util.make_ndarray(value.tensor)) for step, value in values
             if value.tag == "quality/genre_at_10" and step == 300]
    info_genre = json.load(open(os.path.join(demo_run, "run.json")))["quality"]["genre"]["trained"]
    assert final == [pytest.approx(info_genre, abs=1e-6)]  # the last step has the full figure, once


# ---------------------------------------------------------------------------------------------
# Scalars described, the hparams config typed, the plots' images once
# ---------------------------------------------------------------------------------------------

def _accumulated(folder):
    """TensorBoard's own reading of a run's (or the log folder's) events: its event accumulator."""
    from tensorboard.backend.event_processing import plugin_event_accumulator

    accumulator = plugin_event_accumulator.EventAccumulator(str(folder),
                                                            size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def _scalar_tags(accumulator):
    return [tag for tag, data in accumulator.AllSummaryMetadata().items()
            if data.plugin_data.plugin_name == "scalars"]


def _values(accumulator, tag):
    from tensorboard.util import tensor_util

    return [(event.step, float(tensor_util.make_ndarray(event.tensor_proto)))
            for event in accumulator.Tensors(tag)]


def test_every_scalar_has_a_description_and_the_throughput_is_the_runs(demo_trained):
    record = run_record.read(demo_trained)
    accumulator = _accumulated(demo_trained)
    tags = _scalar_tags(accumulator)
    assert {"loss/nce", "optimizer/learning_rate", "speed/pairs_per_second", "quality/genre_at_10",
            "run/final_loss", "run/training_seconds"} <= set(tags)
    for tag in tags:
        assert len(accumulator.SummaryMetadata(tag).summary_description) > 80, tag
    loss = accumulator.SummaryMetadata("loss/nce").summary_description
    guess = tensorboard_files.uniform_guess_loss(record.options.num_sampled)
    assert f"starts at {guess:.2f}" in loss and "quality/" in loss
    # The curve starts where the description says: a model that finds every artist equally likely.
    assert _values(accumulator, "loss/nce")[0][1] == pytest.approx(guess, abs=0.3)
    # Pairs a second every 25 steps: the seconds they add up to are the run's training seconds.
    speed = _values(accumulator, "speed/pairs_per_second")
    assert [step for step, _ in speed] == list(range(25, record.options.steps + 1, 25))
    seconds = sum(25 * record.options.batch_size / value for _, value in speed)
    assert seconds == pytest.approx(record.stats.seconds, rel=0.25)
    assert (_values(accumulator, "run/training_seconds")
            == [(record.stats.steps, pytest.approx(record.stats.seconds))])
    assert (_values(accumulator, "run/final_loss")
            == [(record.stats.steps, pytest.approx(record.stats.loss))])


def _experiment(folder):
    from tensorboard.plugins.hparams import metadata as hparams_metadata

    content = _accumulated(folder).PluginTagToContent("hparams")["_hparams_/experiment"]
    return hparams_metadata.parse_experiment_plugin_data(content)


def test_the_log_folders_hparams_config_is_typed_with_the_quality_as_metrics(demo_trained):
    from tensorboard.plugins.hparams import api_pb2

    logs = os.path.dirname(demo_trained)
    # the folder's, not the run's
    assert os.listdir(demo_trained).count(tensorboard_files.EXPERIMENT_FILE) == 0
    experiment = _experiment(logs)
    infos = {info.name: info for info in experiment.hparam_infos}
    record = run_record.read(demo_trained)
    assert set(infos) == {"data", *record.options.hparams()}
    assert all(info.type != api_pb2.DATA_TYPE_UNSET and not info.differs for info in infos.values())
    assert infos["contexts"].type == api_pb2.DATA_TYPE_STRING
    assert (list(infos["contexts"].domain_discrete.values[0].string_value.split(","))
            == ["genre=0.6", "score=0.4"])
    assert infos["batch_size"].type == api_pb2.DATA_TYPE_FLOAT64
    assert infos["batch_size"].domain_interval.min_value == record.options.batch_size
    metrics = {info.name.tag: info for info in experiment.metric_infos}
    assert set(metrics) == {*contexts.quality_tags().values(), "run/final_loss",
                            "run/training_seconds"}
    assert all(info.description and info.display_name for info in metrics.values())


def test_a_new_hparams_config_left_by_a_killed_writer_is_removed_once_stale(demo_trained, tmp_path):
    """Probe 19: kill -9 as a run wrote the log folder's hparams config left its hidden new file
    there for good, outside any run. One that may be another process's write under way (a minute
    old or less, or another user's) is left alone."""
    logs = tmp_path / "logs"
    shutil.copytree(demo_trained, logs / "r")
    hidden = [logs / f".{tensorboard_files.EXPERIMENT_FILE}.{tail}"
              for tail in ("0123abcd", "89abcdef", "fedcba98")]
    for path in hidden:
        path.write_bytes(b"half a file")
    long_ago = time.time() - 120
    for path in (hidden[0], hidden[2]):
        os.utime(path, (long_ago, long_ago))
    if os.geteuid() == 0:
        os.chown(hidden[2], 65534, 65534)
    tensorboard_files.write_experiment(str(logs))
    assert (logs / tensorboard_files.EXPERIMENT_FILE).is_file()
    assert [path.exists() for path in hidden] == [False, True, os.geteuid() == 0]


def test_a_setting_that_differs_between_runs_is_marked_so(demo_trained, tmp_path):
    record = run_record.read(demo_trained)
    doubled = dataclasses.replace(record.options, batch_size=2 * record.options.batch_size)
    other = dataclasses.replace(record, options=doubled)
    for name, each in (("a", record), ("b", other)):
        os.makedirs(tmp_path / name)
        run_record.write(str(tmp_path / name), each)
    tensorboard_files.write_experiment(str(tmp_path))
    infos = {info.name: info for info in _experiment(tmp_path).hparam_infos}
    assert [name for name, info in infos.items() if info.differs] == ["batch_size"]
    interval = infos["batch_size"].domain_interval
    assert ((interval.min_value, interval.max_value)
            == (record.options.batch_size, 2 * record.options.batch_size))


@pytest.mark.slow  # t-SNE
def test_plot_replaces_the_runs_images(demo_run, tmp_path):
    import bands2vec

    copy = tmp_path / "logs" / "r"
    shutil.copytree(demo_run, copy)
    bands2vec.open_run(str(copy)).plot(say=quiet)
    said = []
    bands2vec.open_run(str(copy)).plot(clusters=301, say=said.append)
    assert said[0] == ("Clustering 300 artists into 300 with k-means for the plots "
                       "(--clusters 301 is more than the artists)")
    accumulator = _accumulated(copy)
    images = [tag for tag, data in accumulator.AllSummaryMetadata().items()
              if data.plugin_data.plugin_name == "images"]
    assert {"plots/genres", "plots/clusters", "plots/labelled"} <= set(images)
    assert all(len(accumulator.Tensors(tag)) == 1 for tag in images)
