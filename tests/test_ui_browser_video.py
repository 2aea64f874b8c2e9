"""The web UI's "From video" camera mode in a real headless Chromium: upload a clip, see its extracted path in
the preview, generate; a clip without a path is one message. SfM is replaced by a stand-in (tested on rendered
clips in test_video_paths.py), so the test measures the page, not COLMAP."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_ui_browser import ARTIFACTS, app_url, browser  # noqa: F401  (fixtures)
from test_video_paths import _noise_video, make_path
from worldwarp.trajectory import from_video as fv

pytestmark = [pytest.mark.browser, pytest.mark.timeout(170)]


def test_from_video_mode_in_chromium(browser, app_url: str, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    from playwright.sync_api import expect

    monkeypatch.setenv("WORLDWARP_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[int] = []

    def fake(frames, indices, total, config=None, *, name="video", progress=None):
        calls.append(total)
        if progress is not None:
            progress(0.5, "reconstructing (seed 1 of 3)")
        if float(frames.float().std()) < 1.0:
            raise fv.VideoPathError(f"{name}: no camera path: structure from motion found no 3D model")
        return make_path(n=total)

    monkeypatch.setattr(fv, "video_path_from_frames", fake)
    clip = _noise_video(tmp_path / "walk.mp4", n=21)
    flat = _noise_video(tmp_path / "flat.mp4", n=9, flat=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(app_url)
        expect(page.locator("#generate")).to_be_visible(timeout=30_000)
        page.locator("#example input").click()
        page.get_by_role("option", name="toy").click()
        expect(page.locator("#image img")).to_be_visible(timeout=20_000)

        page.locator("#camera-video input[type=file]").set_input_files(str(clip))
        msg = page.locator("#preview-message")
        expect(msg).to_contain_text("cameras from the video: 21 cameras: 11 registered by SfM", timeout=30_000)
        expect(page.locator("#path-preview img")).to_be_visible()
        assert calls == [21]

        page.locator("#generate").click()
        expect(page.locator("#status")).to_contain_text("chunk 1 of", timeout=60_000)
        assert calls == [21]  # the generation read the path from the cache
        page.screenshot(path=str(ARTIFACTS / "ui_from_video.png"), full_page=True)

        # a clip without a path: one message under the preview, none of the old path left
        page.locator("#camera-video button[aria-label='Clear']").first.click()
        page.locator("#camera-video input[type=file]").set_input_files(str(flat))
        expect(msg).to_contain_text(
            "Error: flat.mp4: no camera path: structure from motion found no 3D model", timeout=30_000
        )
        expect(page.locator("#path-preview img")).to_have_count(0)
        assert "Traceback" not in page.content()
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "ui_from_video_failure.png"), full_page=True)
        raise
    finally:
        page.close()
