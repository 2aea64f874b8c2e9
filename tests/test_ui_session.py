"""The web UI's session logic without a browser: generate, roll back, export, and errors as messages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from worldwarp.diffusion.denoisers.tiny import TinyDenoiser, TinyDenoiserConfig
from worldwarp.diffusion.sampler import SamplerConfig
from worldwarp.errors import InputError
from worldwarp.io.depth import save_depth
from worldwarp.io.images import save_image
from worldwarp.pipeline import PipelineConfig
from worldwarp.splat.cache import CacheConfig
from worldwarp.ui.session import (
    InputSpec,
    UIConfig,
    UISession,
    compose_spec,
    list_examples,
    load_example,
    preview_path,
    user_message,
)

H, W = 32, 48
FRAMES = 9  # chunks of 5 frames with 2 of history: (0, 1, 5), (3, 2, 8), (6, 2, 11) -> 3 chunks


def _scene_image(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth test image (3, h, w) and a depth ramp (h, w) from 2 to 4."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * math.pi * x) * torch.cos(4 * math.pi * y)])
    return img.clamp(0, 1), 2.0 + 2.0 * y


def make_ui_config(root: Path) -> UIConfig:
    """A random-weight tiny checkpoint, one example ("toy", 64x96) and a tiny pipeline under ``root``."""
    torch.manual_seed(0)
    TinyDenoiser(TinyDenoiserConfig(width=16, depth=1, heads=2, freq_dim=8, widths=(8, 16, 16))).save_pretrained(
        root / "ckpt"
    )
    ex = root / "examples" / "toy"
    ex.mkdir(parents=True)
    img, depth = _scene_image(2 * H, 2 * W)
    save_image(ex / "image.png", img)
    save_depth(ex / "depth.png", depth)
    (ex / "example.json").write_text(json.dumps({"fov_x_deg": 70.0, "speed": 1.5, "description": "toy"}))
    (root / "examples" / "not_an_example").mkdir()
    pipeline = PipelineConfig.cpu(
        height=H, width=W, chunk_frames=5, overlap=2, sampler=SamplerConfig(steps=2, guidance_scale=1.0),
        cache=CacheConfig(steps=2, max_points_per_frame=300), progress=False,
    )  # fmt: skip
    return UIConfig(checkpoint=str(root / "ckpt"), pipeline=pipeline, examples_dir=root / "examples", work_dir=root)


@pytest.fixture(scope="module")
def ui_config(tmp_path_factory: pytest.TempPathFactory) -> UIConfig:
    return make_ui_config(tmp_path_factory.mktemp("ui"))


def _spec(cfg: UIConfig, **over) -> InputSpec:
    ex = cfg.examples_folder() / "toy"
    base = dict(
        image=str(ex / "image.png"), depth=str(ex / "depth.png"), trajectory="move_forward+pan_left",
        camera_file=None, frames=FRAMES,
    )  # fmt: skip
    base.update(over)
    return InputSpec(**base)


# ---------------------------------------------------------------------------------------------- pure helpers
def test_compose_spec() -> None:
    assert compose_spec("move_forward", "pan_left", "with") == "move_forward+pan_left"
    assert compose_spec("move_forward", "pan_left", "then") == "move_forward,pan_left"
    assert compose_spec("  ", "orbit", "then") == "orbit"
    assert compose_spec("orbit+", "zoom_in", "then") == "orbit,zoom_in"  # a dangling operator is dropped
    assert compose_spec("orbit", "dolly_in", "with") == "orbit+dolly_in"  # aliases are accepted
    with pytest.raises(InputError, match="unknown camera preset 'bogus'"):
        compose_spec("orbit", "bogus", "with")


def test_examples(ui_config: UIConfig, tmp_path: Path) -> None:
    assert list_examples(ui_config.examples_folder()) == ["toy"]
    assert list_examples(tmp_path / "missing") == []
    ex = load_example(ui_config.examples_folder(), "toy")
    assert (ex.fov_x_deg, ex.speed, ex.scale, ex.description) == (70.0, 1.5, 1.0, "toy")
    assert ex.depth is not None and ex.depth.name == "depth.png"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "example.json").write_text('{\n  "fov_x_deg": 60,\n}')
    with pytest.raises(InputError, match=r"bad/example.json:3: invalid JSON"):
        load_example(tmp_path, "bad")
    with pytest.raises(InputError, match="no example named 'nope'"):
        load_example(tmp_path, "nope")


def test_example_files_are_copied_into_the_session(ui_config: UIConfig) -> None:
    s = UISession(ui_config)
    ex = s.example_files("toy")
    assert ex.image.parent.parent.parent == s.folder
    assert ex.image.read_bytes() == (ui_config.examples_folder() / "toy" / "image.png").read_bytes()
    s.close()
    assert not s.folder.exists()


def test_preview_is_the_cli_preview(ui_config: UIConfig) -> None:
    from worldwarp.inputs import prepare_inputs, trajectory_for_scene
    from worldwarp.trajectory.preview import render_preview_array

    spec = _spec(ui_config, frames=12)
    p = preview_path(spec, H, W)
    assert p.error is None and p.message == "12 cameras"
    cams = prepare_inputs(spec.image, spec.trajectory, 12, H, W, depth_path=spec.depth).cameras
    ref = render_preview_array(cams, "move_forward+pan_left  (12 frames)")
    assert p.image is not None and p.image.dtype == np.uint8 and np.array_equal(p.image, ref)
    # without an image the path is drawn at unit depth
    q = preview_path(_spec(ui_config, image=None, depth=None, trajectory="orbit", frames=7), H, W)
    ref = render_preview_array(trajectory_for_scene("orbit", 7, H, W, 1.0), "orbit  (7 frames)")
    assert q.image is not None and np.array_equal(q.image, ref)
    # a camera file replaces the spec (read at the working resolution, brought to the frame count)
    from worldwarp.trajectory.io import write_cameras

    cam_file = ui_config.work_dir / "path_cameras.json"
    write_cameras(cam_file, trajectory_for_scene("pan_right", 7, H, W, 1.0), "cameras")
    c = preview_path(_spec(ui_config, camera_file=str(cam_file), frames=7), H, W)
    ref = render_preview_array(trajectory_for_scene(str(cam_file), 7, H, W, 1.0), "path_cameras.json  (7 frames)")
    assert c.error is None and c.image is not None and np.array_equal(c.image, ref)
    bad = preview_path(_spec(ui_config, trajectory="orbit+wobble"), H, W)
    assert bad.image is None and bad.error is not None and bad.error.startswith("unknown camera preset 'wobble'")


# ---------------------------------------------------------------------------------------------- generation
@pytest.fixture(scope="module")
def session(ui_config: UIConfig):
    s = UISession(ui_config)
    yield s
    s.close()


def test_generate_one_chunk_and_exports(session: UISession, ui_config: UIConfig) -> None:
    from worldwarp.io.video import read_video
    from worldwarp.splat.gaussians import Gaussians
    from worldwarp.trajectory.io import read_cameras

    calls: list[tuple[float, str]] = []
    views = list(session.generate(_spec(ui_config), 1, 0.6, 0, progress=lambda f, m: calls.append((f, m))))
    assert len(views) == 1
    v = views[0]
    assert v.error is None, v.status
    assert v.status.startswith("started a new video") and "chunk 1 of 3 done" in v.status
    assert (v.chunks_done, v.chunks_total, v.frames_done) == (1, 3, 5)
    assert calls[0] == (0.0, "preparing inputs") and calls[1] == (0.0, "chunk 1 of 3") and calls[-1] == (1.0, "done")
    state = session.state
    assert state is not None and state.frames.shape == (5, 3, H, W)
    # the page's strength and seed go into the generation's settings; the app's config is untouched
    cfg = session.pipeline_config(0.35, 7)
    assert (cfg.sampler.strength, cfg.seed, cfg.sampler.steps) == (0.35, 7, 2)
    assert session.config.pipeline.sampler.strength == 0.8 and session.config.pipeline.seed == 0

    # video: every frame so far, in order, at the working resolution (H.264 yuv420 blurs colour at 48x32)
    video = read_video(v.video)
    assert video.shape == (5, 3, H, W)
    err = (video[:, None] - state.frames[None]).abs().mean(dim=(2, 3, 4))  # (5, 5) video frame vs frame
    assert float(err[0, 0]) < 0.04 and torch.equal(err.argmin(1), torch.arange(5))
    # cameras: exactly the generated frames' cameras
    cams = read_cameras(v.cameras)
    assert len(cams) == 5 and (cams.height, cams.width) == (H, W)
    assert torch.allclose(cams.c2w, state.cameras.c2w[:5].double(), atol=1e-6)
    # PLY: the chunk's 3DGS cache
    g = Gaussians.load_ply(v.ply)
    ref = state.chunks[0].gaussians
    assert ref is not None and g.num == ref.num
    assert torch.allclose(g.means, ref.means.detach().float(), atol=1e-6)
    # panel: prior | mask | result of the chunk's last frame, each enlarged 8x (nearest) under a label band
    assert v.panel is not None and v.panel.dtype == np.uint8
    f, band, gap = 8, 32, 6
    assert v.panel.shape == (band + H * f, 3 * W * f + 2 * gap, 3)
    mask = state.chunks[0].mask[-1].numpy()
    mask_panel = v.panel[band:, W * f + gap : 2 * W * f + gap, 0]
    assert np.array_equal(mask_panel, np.kron(mask, np.ones((f, f))).astype(np.uint8) * 255)
    result_panel = v.panel[band:, 2 * (W * f + gap) :]
    expect = (state.frames[4].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(result_panel[::f, ::f], expect)


def test_continue_rollback_and_regenerate(session: UISession, ui_config: UIConfig) -> None:
    spec = _spec(ui_config)
    if session.state is None:  # run alone
        list(session.generate(spec, 1, 0.6, 0))
    views = list(session.generate(spec, 5, 0.6, 0))  # asks for 5, only 2 remain
    assert [v.chunks_done for v in views] == [2, 3] and all(v.error is None for v in views)
    assert views[-1].frames_done == FRAMES and not views[0].status.startswith("started")
    full = session.state.frames.clone()

    done = list(session.generate(spec, 1, 0.6, 0))
    assert len(done) == 1 and done[0].error.startswith("every chunk of this trajectory is generated")

    v = session.rollback(1)
    assert v.error is None and v.status == "rolled back: kept 1 chunk"
    assert (v.chunks_done, v.frames_done) == (1, 5) and torch.equal(session.state.frames, full[:5])
    assert sorted(p.name for p in session.folder.glob("worldwarp_*")) == [
        "worldwarp_1chunks_5frames.mp4",
        "worldwarp_1chunks_5frames_cameras.json",
        "worldwarp_chunk0_cache.ply",
    ]  # the previous exports are replaced
    # the same seed regenerates the same chunk
    again = list(session.generate(spec, 1, 0.6, 0))
    assert again[-1].chunks_done == 2 and torch.equal(session.state.frames, full[:8])

    v0 = session.rollback(0)
    assert (v0.chunks_done, v0.frames_done, v0.ply, v0.panel) == (0, 1, None, None)
    assert json.loads(v0.cameras.read_text())["frames"].__len__() == 1

    bad = session.rollback(4)
    assert bad.error == "cannot roll back to chunk 4: 0 chunks exist" and bad.status == f"**Error:** {bad.error}"


def test_changed_inputs_start_a_new_video(ui_config: UIConfig) -> None:
    s = UISession(ui_config)
    v1 = s.run_all(_spec(ui_config, trajectory="static", frames=5))
    assert v1.error is None and (v1.chunks_done, v1.chunks_total) == (1, 1)
    v2 = s.run_all(_spec(ui_config, trajectory="static", frames=6))
    assert v2.status.startswith("started a new video") and (v2.chunks_done, v2.chunks_total) == (1, 2)
    s.close()


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "over, chunks, strength, expected",
    [
        (dict(image=None), 1, 0.6, "no start image: upload one or pick an example"),
        (dict(image="/nonexistent/start.png"), 1, 0.6, "image not found: start.png"),
        (dict(trajectory="orbit+wobble"), 1, 0.6, "unknown camera preset 'wobble'"),
        (dict(trajectory=" "), 1, 0.6, "no camera path: compose a preset spec or upload a camera file"),
        (dict(frames=1), 1, 0.6, "frames must be a whole number from 2 to 1000, got 1"),
        (dict(speed=0.0), 1, 0.6, "speed must be > 0, got 0.0"),
        (dict(), 0, 0.6, "number of chunks must be a whole number >= 1, got 0"),
        (dict(), 1, 1.5, "strength must lie in [0, 1], got 1.5"),
        (dict(camera_file="/nonexistent/cams.txt"), 1, 0.6, "cams.txt: camera file not found"),
    ],
)
def test_bad_input_is_a_message(ui_config: UIConfig, over, chunks, strength, expected) -> None:
    s = UISession(ui_config)
    views = list(s.generate(_spec(ui_config, **over), chunks, strength, 0))
    assert len(views) == 1
    assert views[0].error is not None and views[0].error.startswith(expected), views[0].error
    assert views[0].status == f"**Error:** {views[0].error}" and s.state is None
    s.close()


def test_bad_files_are_messages_naming_the_file(ui_config: UIConfig, tmp_path: Path) -> None:
    s = UISession(ui_config)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png at all")
    (err,) = [v.error for v in s.generate(_spec(ui_config, image=str(corrupt)))]
    assert err is not None and err.startswith("corrupt.png: ") and str(tmp_path) not in err and "\n" not in err
    small = tmp_path / "small_depth.png"
    save_depth(small, torch.full((10, 10), 2.0))
    (err,) = [v.error for v in s.generate(_spec(ui_config, depth=str(small)))]
    assert err is not None and err.startswith("small_depth.png: depth is 10x10 but the image is 96x64")
    cams = tmp_path / "cams.txt"
    cams.write_text("https://example.com/video\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    (err,) = [v.error for v in s.generate(_spec(ui_config, camera_file=str(cams)))]
    assert err is not None and err.startswith("cams.txt") and str(tmp_path) not in err
    assert s.rollback(0).error == "nothing to roll back: generate a chunk first"
    s.close()


def test_unexpected_errors_are_messages(ui_config: UIConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    from worldwarp.pipeline import WorldWarpPipeline

    def boom(self, state):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(WorldWarpPipeline, "step", boom)
    s = UISession(ui_config)
    (v,) = list(s.generate(_spec(ui_config)))
    assert v.error == "unexpected error (RuntimeError: boom); see the server log"
    s.close()


def test_user_message() -> None:
    assert user_message(InputError("bad\nmore")) == "bad"
    assert user_message(FileNotFoundError(2, "No such file", "/x.png")) == "file not found: /x.png"


def test_missing_checkpoint_is_a_message(ui_config: UIConfig, tmp_path: Path) -> None:
    from dataclasses import replace

    s = UISession(replace(ui_config, checkpoint=str(tmp_path / "no_model")))
    (v,) = list(s.generate(_spec(ui_config)))
    assert v.error is not None and v.error.startswith("no_model: no tiny ST-Diff checkpoint")  # no server path
    s.close()


# ---------------------------------------------------------------------------------------------- app and CLI
def test_app_builds_with_the_elem_ids(ui_config: UIConfig) -> None:
    pytest.importorskip("gradio")
    from worldwarp.ui.app import build_app

    demo = build_app(ui_config)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    need = {"example", "image", "depth", "trajectory", "preset", "add-with", "add-then", "camera-file", "frames",
            "speed", "scale", "fov", "path-preview", "strength", "chunks", "seed", "generate", "status",
            "result-video", "chunk-panel", "rollback-k", "rollback", "download-video", "download-cameras",
            "download-ply"}  # fmt: skip
    assert need <= ids, need - ids
    example = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "example")
    assert example.choices == [("toy", "toy")]


def test_cli_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gradio")
    from worldwarp.cli import main

    assert main(["ui", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "worldwarp ui: error: argument --port: must lie in [1, 65535], got '70000' (see worldwarp ui --help)"


def test_page_defaults_are_the_presets() -> None:
    """The page's strength is the pipeline preset's (the CPU preset's for the embedded model), unless set."""
    for preset in ("cpu", "paper"):
        cfg = UIConfig(pipeline=PipelineConfig.preset(preset))
        assert cfg.strength() == PipelineConfig.preset(preset).sampler.strength
    assert UIConfig(default_strength=0.3).strength() == 0.3


def test_messages_show_no_server_paths(ui_config: UIConfig, tmp_path: Path) -> None:
    from worldwarp.ui.app import check_upload
    from worldwarp.ui.session import hide_paths

    assert hide_paths("/tmp/gradio/1a2b/photo.png: not an image") == "photo.png: not an image"
    assert hide_paths("3/4 of frames; ratio 1/2") == "3/4 of frames; ratio 1/2"
    upload = tmp_path / "gradio" / "abc123" / "notes.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("hello")
    msg = check_upload(str(upload))
    assert msg is not None and msg.startswith("notes.txt: not an image") and str(tmp_path) not in msg
    assert check_upload(None) is None
    good = tmp_path / "ok.png"
    save_image(good, torch.rand(3, 8, 8))
    assert check_upload(str(good)) is None
    s = UISession(ui_config)
    (err,) = [v.error for v in s.generate(_spec(ui_config, image=str(upload)))]
    assert err is not None and err.startswith("notes.txt:") and str(tmp_path) not in err
    s.close()


def test_image_component_passes_unreadable_uploads_on() -> None:
    pytest.importorskip("gradio")
    import gradio as gr

    from worldwarp.ui.app import accept_any_upload

    comp = accept_any_upload(gr.Image(type="filepath"))

    class Payload:
        path = "/nowhere/upload.txt"
        url = None
        orig_name = "upload.txt"
        meta = {"_type": "gradio.FileData"}

    assert comp.preprocess(Payload()) == "/nowhere/upload.txt"
    assert comp.preprocess(None) is None
