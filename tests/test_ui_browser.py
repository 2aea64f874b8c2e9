"""The web UI in a real headless Chromium (Debian's package) driven by Playwright.

Picks the example, previews the path, shows an error for a bad preset, generates one chunk with a tiny
random-weight model, downloads the video, rolls back, downloads the cameras, and keeps a screenshot in
``test-artifacts/``. Skips when Chromium or Playwright is missing (``.ci/install-browser`` installs Chromium).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_ui_session import FRAMES, H, W, make_ui_config

pytestmark = [pytest.mark.browser, pytest.mark.timeout(170)]

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (run .ci/install-browser)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pytest.importorskip("gradio", reason="gradio is not installed")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory):
    from worldwarp.ui.app import build_app, launch_app

    demo = build_app(make_ui_config(tmp_path_factory.mktemp("ui_browser")))
    port = _free_port()
    launch_app(demo, host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_ui_in_chromium(browser, app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from worldwarp.io.video import read_video
    from worldwarp.trajectory.io import read_cameras

    t0 = time.perf_counter()
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        page.goto(app_url)
        expect(page.locator("#generate")).to_be_visible(timeout=30_000)

        # pick the example: the image, the depth and the example's settings are filled in
        page.locator("#example input").click()
        page.get_by_role("option", name="toy").click()
        expect(page.locator("#image img")).to_be_visible(timeout=20_000)
        expect(page.locator("#fov input[type=number]")).to_have_value("70", timeout=10_000)

        # a bad preset is a visible message, not a traceback
        page.locator("#trajectory textarea").fill("orbit+wobble")
        page.locator("#generate").click()
        expect(page.locator("#status")).to_contain_text("Error: unknown camera preset 'wobble'", timeout=20_000)
        expect(page.locator("#preview-message")).to_contain_text("unknown camera preset 'wobble'")
        assert "Traceback" not in page.content()

        # compose the path with the preset buttons; the preview follows
        page.locator("#clear-spec").click()
        expect(page.locator("#trajectory textarea")).to_have_value("")
        page.locator("#preset input").click()
        page.get_by_role("option", name="move_forward", exact=True).click()
        page.locator("#add-with").click()
        page.locator("#preset input").click()
        page.get_by_role("option", name="pan_left", exact=True).click()
        page.locator("#add-with").click()
        expect(page.locator("#trajectory textarea")).to_have_value("move_forward+pan_left")
        page.locator("#frames input").fill(str(FRAMES))
        page.locator("#frames input").press("Enter")
        expect(page.locator("#preview-message")).to_contain_text(f"{FRAMES} cameras", timeout=30_000)
        expect(page.locator("#path-preview img")).to_be_visible()

        # generate one chunk
        page.locator("#generate").click()
        expect(page.locator("#status")).to_contain_text("chunk 1 of 3 done", timeout=60_000)
        expect(page.locator("#chunk-panel img")).to_be_visible(timeout=10_000)
        expect(page.locator("#result-video video")).to_be_visible(timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "ui.png"), full_page=True)

        with page.expect_download(timeout=20_000) as dl:
            page.locator("#download-video").click()
        video_file = tmp_path / dl.value.suggested_filename
        dl.value.save_as(video_file)
        assert video_file.suffix == ".mp4"
        assert read_video(video_file).shape == (5, 3, H, W)

        # roll back to the start image (keep 0 chunks) and download the cameras of what is left
        page.locator("#rollback").click()
        expect(page.locator("#status")).to_contain_text("rolled back: kept 0 chunks", timeout=20_000)
        with page.expect_download(timeout=20_000) as dl:
            page.locator("#download-cameras").click()
        cams_file = tmp_path / dl.value.suggested_filename
        dl.value.save_as(cams_file)
        assert cams_file.name.endswith("_cameras.json")
        data = json.loads(cams_file.read_text())
        assert data["format"] == "worldwarp.cameras" and len(data["frames"]) == 1
        cams = read_cameras(cams_file)
        assert (cams.height, cams.width) == (H, W)
        assert torch.allclose(cams.c2w[0], torch.eye(4, dtype=torch.float64), atol=1e-9)
        expect(page.locator("#download-ply")).to_be_disabled()
        page.screenshot(path=str(ARTIFACTS / "ui_after_rollback.png"), full_page=True)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "ui_failure.png"), full_page=True)
        raise
    finally:
        page.close()
    assert time.perf_counter() - t0 < 90


def test_ui_upload_own_image_in_chromium(browser, app_url: str, tmp_path: Path) -> None:
    """Upload an image of one's own (no depth: the ground-plane prior is used) and generate one chunk."""
    from PIL import Image
    from playwright.sync_api import expect

    rng = np.random.default_rng(0)
    upload = tmp_path / "mine.png"
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(upload)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_url)
        expect(page.locator("#generate")).to_be_visible(timeout=30_000)
        page.locator("#image input[type=file]").set_input_files(str(upload))
        expect(page.locator("#image img")).to_be_visible(timeout=20_000)
        page.locator("#trajectory textarea").fill("move_forward")
        page.locator("#generate").click()
        expect(page.locator("#status")).to_contain_text("chunk 1 of", timeout=60_000)
        expect(page.locator("#chunk-panel img")).to_be_visible(timeout=10_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "ui_upload_failure.png"), full_page=True)
        raise
    finally:
        page.close()


def test_ui_bad_upload_is_one_readable_message(browser, app_url: str, tmp_path: Path) -> None:
    """A file that is not an image: one message in the status line (no red "Error" badges, no server path)."""
    from playwright.sync_api import expect

    upload = tmp_path / "notes.png"
    upload.write_text("this is not an image")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_url)
        expect(page.locator("#generate")).to_be_visible(timeout=30_000)
        page.locator("#image input[type=file]").set_input_files(str(upload))
        status = page.locator("#status")
        expect(status).to_contain_text("notes.png: not an image file", timeout=20_000)
        text = status.inner_text()
        assert "/tmp" not in text and str(tmp_path) not in text and len(text.strip().splitlines()) == 1, text
        page.locator("#trajectory textarea").fill("move_forward")
        page.locator("#generate").click()
        expect(status).to_contain_text("notes.png: not an image file", timeout=30_000)
        assert str(tmp_path) not in status.inner_text()
        assert page.locator(".error").count() == 0  # Gradio's red badges on failed outputs
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "ui_bad_upload_failure.png"), full_page=True)
        raise
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_docs_screenshot(browser, tmp_path: Path) -> None:
    """The screenshot of docs/ui.md: the bundled room example at the CPU resolution, one chunk.

    Uses the packaged tiny checkpoint when it exists, else the classical inpainting fill (a random model would
    show noise). Writes ``test-artifacts/ui_docs.png``; copy it to ``docs/images/ui.png``.
    """
    from playwright.sync_api import expect

    from worldwarp.diffusion.denoisers.tiny import DEFAULT_CHECKPOINT, TinyDenoiser, TinyDenoiserConfig
    from worldwarp.pipeline import PipelineConfig
    from worldwarp.splat.cache import CacheConfig
    from worldwarp.ui.app import build_app, launch_app
    from worldwarp.ui.session import UIConfig, default_examples_dir, list_examples

    if "room" not in list_examples(default_examples_dir()):
        pytest.skip("the bundled room example is missing")
    trained = (DEFAULT_CHECKPOINT / "model.safetensors").is_file()
    checkpoint = None
    if not trained:  # the pipeline still needs a denoiser for its shapes; the inpainting fill does not call it
        checkpoint = str(tmp_path / "random_tiny")
        TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16))).save_pretrained(
            checkpoint
        )
    pipeline = PipelineConfig.cpu(
        chunk_frames=13, cache=CacheConfig(steps=60), fill="diffusion" if trained else "inpaint", progress=False
    )
    demo = build_app(UIConfig(checkpoint=checkpoint, pipeline=pipeline, work_dir=tmp_path, default_frames=37))
    port = _free_port()
    launch_app(demo, host="127.0.0.1", port=port, block=False)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("#example input").click()
        page.get_by_role("option", name="room").click()
        expect(page.locator("#image img")).to_be_visible(timeout=20_000)
        expect(page.locator("#preview-message")).to_contain_text("37 cameras", timeout=60_000)
        page.locator("#generate").click()
        expect(page.locator("#status")).to_contain_text(re.compile(r"chunk 1 of \d+ done|Error"), timeout=800_000)
        assert "Error" not in page.locator("#status").inner_text()
        expect(page.locator("#chunk-panel img")).to_be_visible(timeout=10_000)
        page.wait_for_timeout(1500)  # let the video's first frame paint
        page.screenshot(path=str(ARTIFACTS / "ui_docs.png"), full_page=True)
    finally:
        page.close()
        demo.close()
