"""The log dir in the real TensorBoard server, through its HTTP API, and the projector in a real browser."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import train_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
RUN = "trained"
TENSOR = "embeddings/embeddings"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return response.read()


@pytest.fixture(scope="module")
def tensorboard(tmp_path_factory, demo_catalog):
    """A short demo run served by the installed TensorBoard on 127.0.0.1; stopped whatever happens."""
    logs = tmp_path_factory.mktemp("tb-logs")
    train_run(logs, "--data", "demo", "--steps", "200", "--no-plots")
    port = _free_port()
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
        yield base, len(demo_catalog)
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


def test_projector_plugin_serves_the_run(tensorboard):
    base, vocabulary = tensorboard
    runs = _wait_for(lambda: json.loads(_get(base, "/data/plugin/projector/runs")), lambda r: RUN in r)
    assert RUN in runs
    info = json.loads(_get(base, f"/data/plugin/projector/info?run={RUN}"))
    embedding = next(e for e in info["embeddings"] if e["tensorName"] == TENSOR)
    assert embedding["tensorShape"] == [vocabulary, 64] and embedding["metadataPath"] == "metadata.tsv"
    tensor = np.frombuffer(_get(base, f"/data/plugin/projector/tensor?run={RUN}&name={TENSOR}"), dtype=np.float32)
    assert tensor.size == vocabulary * 64 and np.all(np.isfinite(tensor))
    metadata = _get(base, f"/data/plugin/projector/metadata?run={RUN}&name={TENSOR}").decode("utf-8")
    rows = metadata.rstrip("\n").split("\n")
    assert len(rows) == vocabulary + 1 and rows[0].startswith("artist\tgenres\t")


def test_scalars_and_graphs_plugins_serve_the_run(tensorboard):
    base, _ = tensorboard
    tags = _wait_for(lambda: json.loads(_get(base, "/data/plugin/scalars/tags")), lambda t: RUN in t)
    assert "loss/nce" in tags[RUN]
    points = json.loads(_get(base, f"/data/plugin/scalars/scalars?run={RUN}&tag=loss/nce"))
    assert len(points) >= 8 and points[-1][1] == 200  # [wall time, step, value], every 25 steps
    graph = _get(base, f"/data/plugin/graphs/graph?run={RUN}").decode("utf-8")
    assert 'name: "inputs/train_inputs"' in graph and "nce_loss" in graph


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


def test_projector_draws_every_artist_in_a_browser(tensorboard, tmp_path):
    from matplotlib.image import imread
    from playwright.sync_api import sync_playwright

    chromium = _chromium_or_skip()
    base, vocabulary = tensorboard
    screenshot = os.path.join(tempfile.gettempdir(), "bands2vec-projector.png")
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
            page.wait_for_timeout(3000)  # a few frames for the scatter plot to draw
            page.screenshot(path=screenshot)
            assert frame.get_by_text("Error", exact=True).count() == 0
            assert frame.get_by_text(f"Dimension: 64").count() >= 1
        finally:
            browser.close()
    # The points are drawn in the projector's blue-violet: count those pixels in the plot area.
    pixels = imread(screenshot)[150:850, 320:1080, :3]
    violet = (pixels[..., 2] > pixels[..., 0] + 0.15) & (pixels[..., 2] > pixels[..., 1] + 0.15)
    assert violet.sum() > 5000, f"only {violet.sum()} point pixels in {screenshot}"
