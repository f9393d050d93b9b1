"""The log dir in the real TensorBoard server, through its HTTP API, and the projector in a real browser."""
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

import metadata
import tensorboard_files
from helpers import free_ports, quiet, train_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
RUN = "trained"
TENSOR = tensorboard_files.PROJECTOR_TENSOR
STEPS = 600  # report steps 250 and 500 write sampled quality, the last step the full figures
SCREENSHOT = os.path.join(os.environ.get("BANDS2VEC_SCREENSHOT_DIR", tempfile.gettempdir()), "projector-bookmark.png")


def _get(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return response.read()


def _post(base, path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory, demo_catalog):
    """A demo run, plots included, served by the installed TensorBoard on 127.0.0.1; stopped whatever happens."""
    logs = tmp_path_factory.mktemp("tb-logs")
    run_dir = train_run(logs, "demo", plots=True, steps=STEPS)
    (port,) = free_ports(1)
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logs), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                _get(base, "/data/plugins_listing")
                break
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"TensorBoard did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        yield base, len(demo_catalog), run_dir
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


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
    runs = _wait_for(lambda: json.loads(_get(base, "/data/plugin/projector/runs")), lambda r: RUN in r)
    assert RUN in runs
    # The plugin reads the tensor file's shape in the background: ask until it has.
    info = _wait_for(lambda: json.loads(_get(base, f"/data/plugin/projector/info?run={RUN}")),
                     lambda i: all(e.get("tensorShape") for e in i["embeddings"]))
    (embedding,) = info["embeddings"]  # the artists only: no NCE weights, no other checkpoint variable
    assert embedding["tensorName"] == TENSOR and embedding["tensorShape"] == [vocabulary, 64]
    assert embedding["metadataPath"] == "metadata.tsv"
    tensor = np.frombuffer(_get(base, f"/data/plugin/projector/tensor?run={RUN}&name={TENSOR}"), dtype=np.float32)
    assert tensor.size == vocabulary * 64 and np.all(np.isfinite(tensor))
    metadata = _get(base, f"/data/plugin/projector/metadata?run={RUN}&name={TENSOR}").decode("utf-8")
    header, *rows = metadata.rstrip("\n").split("\n")
    assert len(rows) == vocabulary and header.split("\t")[:2] == ["artist", "genres"]
    states = json.loads(_get(base, f"/data/plugin/projector/bookmarks?run={RUN}&name={TENSOR}"))
    assert [state["selectedColorOptionName"] for state in states] == ["primary_genre", "cluster", "score_bucket"]
    for state in states:
        assert len(state["projections"]) == vocabulary and state["dataSetDimensions"] == [vocabulary, 64]
        assert state["selectedColorOptionName"] in header.split("\t")


@pytest.mark.slow
def test_scalars_text_images_and_hparams(tensorboard):
    base, _, _ = tensorboard
    tags = _wait_for(lambda: json.loads(_get(base, "/data/plugin/scalars/tags")), lambda t: RUN in t)[RUN]
    assert {"loss/nce", "quality/genre_at_10", "quality/score_at_10", "quality/label_at_10"} <= set(tags)
    points = json.loads(_get(base, f"/data/plugin/scalars/scalars?run={RUN}&tag=loss/nce"))
    assert len(points) >= 20 and points[-1][1] == STEPS  # [wall time, step, value], every 25 steps
    quality = json.loads(_get(base, f"/data/plugin/scalars/scalars?run={RUN}&tag=quality/genre_at_10"))
    assert [step for _, step, _ in quality] == [250, 500, STEPS] and all(0 < value <= 1 for *_, value in quality)
    graph = _get(base, f"/data/plugin/graphs/graph?run={RUN}").decode("utf-8")
    assert 'name: "inputs/train_inputs"' in graph and "nce_loss" in graph

    text_tags = json.loads(_get(base, "/data/plugin/text/tags"))[RUN]
    assert {"neighbours", "run"} <= set(text_tags)
    run_text = json.loads(_get(base, f"/data/plugin/text/text?run={RUN}&tag=run"))
    assert "contexts" in run_text[-1]["text"] and "genre=0.6,score=0.4" in run_text[-1]["text"]
    neighbours = json.loads(_get(base, f"/data/plugin/text/text?run={RUN}&tag=neighbours"))
    assert [entry["step"] for entry in neighbours] == [250, 500, STEPS] and "<table>" in neighbours[-1]["text"]

    images = json.loads(_get(base, "/data/plugin/images/tags"))[RUN]
    assert {"plots/genres", "plots/clusters", "plots/labelled"} <= set(images)

    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "colParams": [], "startIndex": 0,
               "sliceSize": 10}
    (group,) = _post(base, "/data/plugin/hparams/session_groups", request)["sessionGroups"]
    assert len(group["hparams"]) >= 4
    assert group["hparams"]["steps"] == STEPS and group["hparams"]["contexts"] == "genre=0.6,score=0.4"
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


@pytest.mark.slow
def test_one_click_on_a_bookmark_shows_the_runs_map(tensorboard, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = _chromium_or_skip()
    base, vocabulary, _ = tensorboard
    later = str(tmp_path / "later.png")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = browser.new_page()
            page.goto(base + "/#projector")
            # The projector runs in its own frame; it says how many points it has loaded once they are in.
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
        finally:
            browser.close()
    first = _plot_area(SCREENSHOT)
    assert _colours(first) >= 4, f"fewer than 4 genre colours in {SCREENSHOT}"
    # No in-browser t-SNE moved the points: the map 30 s later is the same picture.
    assert np.mean(np.abs(first - _plot_area(later)).max(axis=2) > 0.1) < 0.001


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
    assert not os.path.exists(bookmarks) and not _projector_config(run_dir).embeddings[0].bookmarks_path

    bands2vec.open_run(str(tmp_path)).plot(say=quiet)
    assert _projector_config(run_dir).embeddings[0].bookmarks_path == tensorboard_files.BOOKMARKS_FILE
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
    assert not os.path.exists(bookmarks) and not _projector_config(run_dir).embeddings[0].bookmarks_path
    bands2vec.resume(str(tmp_path), "trained", steps=200, say=quiet)
    assert len(_bookmarks(run_dir)) == len(tensorboard_files.BOOKMARKS)


@pytest.mark.slow  # t-SNE
def test_summaries_in_the_events_files(demo_run):
    import glob

    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    records = [record for path in sorted(glob.glob(os.path.join(demo_run, "events.out.tfevents.*")))
               for record in tf.compat.v1.train.summary_iterator(path)]
    values = [(record.step, value) for record in records for value in record.summary.value]
    tags = {value.tag for _, value in values}
    assert {"neighbours", "run", "plots/genres", "quality/genre_at_10", "_hparams_/experiment",
            "_hparams_/session_start_info"} <= tags
    start = next(value for _, value in values if value.tag == "_hparams_/session_start_info")
    data = plugin_data_pb2.HParamsPluginData.FromString(start.metadata.plugin_data.content)
    assert {"steps", "batch_size", "learning_rate", "contexts", "genre_share"} <= set(data.session_start_info.hparams)
    run_text = next(value for _, value in values if value.tag == "run")
    assert b"quality: genre" in run_text.tensor.string_val[0]
    final = [value.simple_value for step, value in values if value.tag == "quality/genre_at_10" and step == 300]
    info_genre = json.load(open(os.path.join(demo_run, "run.json")))["quality"]["genre"]["trained"]
    assert final == [pytest.approx(info_genre, abs=1e-6)]  # the last step has the full figure, once
