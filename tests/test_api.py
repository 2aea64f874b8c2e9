"""The front door: ``from worldwarp import WorldWarpPipeline``, ``from_pretrained``, calls with files or tensors."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import pytest
import torch

import worldwarp
from worldwarp import PipelineConfig, PipelineOutput, WorldWarpPipeline
from worldwarp.cameras import Cameras, intrinsics_from_fov, look_at
from worldwarp.errors import InputError
from worldwarp.examples import example_dir
from worldwarp.fill import InpaintFill, STDiffFill

H, W = 64, 96
SMALL = dict(height=H, width=W, chunk_frames=9, overlap=5, steps=2, cache_steps=2, progress=False)


@pytest.mark.parametrize("module", ["worldwarp", "worldwarp.pipeline", "worldwarp.settings"])
def test_docstring_examples_run(module: str) -> None:
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and (result.attempted > 0 or module == "worldwarp")


def test_import_is_cheap_and_names_are_lazy() -> None:
    code = (
        "import sys, worldwarp; heavy = [m for m in ('torch', 'worldwarp.pipeline', 'diffusers') if m in sys.modules];"
        "print(heavy); from worldwarp import WorldWarpPipeline, PipelineConfig; print(WorldWarpPipeline.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "worldwarp.pipeline"
    assert set(worldwarp.__all__) <= set(dir(worldwarp))
    with pytest.raises(AttributeError):
        worldwarp.NoSuchThing  # noqa: B018


def test_from_pretrained_tiny_uses_the_shipped_model_and_the_cpu_preset() -> None:
    pipe = WorldWarpPipeline.from_pretrained("tiny", device="cpu")
    assert pipe.config == PipelineConfig.cpu()
    assert isinstance(pipe.fill, STDiffFill) and pipe.fill.denoiser is pipe.denoiser
    tuned = WorldWarpPipeline.from_pretrained("tiny", device="cpu", strength=0.3, seed=4, preset="paper")
    assert (tuned.config.sampler.strength, tuned.config.seed, tuned.config.chunk_frames) == (0.3, 4, 49)
    inpaint = WorldWarpPipeline.from_pretrained("tiny", device="cpu", fill="inpaint")
    assert inpaint.denoiser is None and isinstance(inpaint.fill, InpaintFill)
    with pytest.raises(InputError, match="strength must lie in"):
        WorldWarpPipeline.from_pretrained("tiny", device="cpu", strength=2.0)
    with pytest.raises(InputError, match="unexpected keyword argument 'strenght'"):
        WorldWarpPipeline.from_pretrained("tiny", device="cpu", strenght=0.5)
    with pytest.raises(InputError, match="unknown denoiser 'big'"):
        WorldWarpPipeline.from_pretrained("big", device="cpu", preset="cpu")


def _tensors(n: int) -> tuple[torch.Tensor, Cameras, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, H, W, generator=g)
    depth = 2.0 + torch.rand(H, W, generator=g)
    eye = torch.stack([torch.tensor([0.03 * i, 0.0, 0.05 * i]) for i in range(n)]).double()
    c2w = look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    return image, Cameras(c2w, intrinsics_from_fov(H, W, fov_x_deg=60), H, W), depth


def test_call_with_files_matches_the_cli_inputs_and_returns_everything() -> None:
    from worldwarp.inputs import prepare_inputs

    pipe = WorldWarpPipeline.from_pretrained("tiny", device="cpu", **SMALL)
    room = example_dir("room")
    out = pipe(image=room / "image.png", trajectory="orbit+zoom_in", num_frames=12, depth=room / "depth.png",
               fov_x_deg=70)  # fmt: skip
    assert isinstance(out, PipelineOutput)
    ref = prepare_inputs(room / "image.png", "orbit+zoom_in", 12, H, W, depth_path=str(room / "depth.png"),
                         fov_x_deg=70)  # fmt: skip
    assert torch.equal(out.frames[0], (ref.image * 255).round() / 255)
    assert torch.allclose(out.cameras.c2w, ref.cameras.c2w.to(out.cameras.c2w), atol=1e-6)
    # the same run from tensors gives the same frames
    again = pipe(ref.image, ref.cameras, ref.depth)
    assert torch.equal(again.frames, out.frames)
    assert len(out.gaussians) == len(out.chunks) == 2 and all(g is not None for g in out.gaussians)
    stages = {k: v for k, v in out.timings.items() if k != "total"}
    assert set(stages) == {"inputs", "start", "geometry", "cache", "warp", "prompt", "diffusion", "append", "save"}
    assert abs(sum(stages.values()) - out.timings["total"]) <= 0.05 * out.timings["total"]
    for r in out.chunks:
        parts = sum(v for k, v in r.timings.items() if k != "total")
        assert abs(parts - r.timings["total"]) <= 1e-6 + 0.05 * r.timings["total"]


def test_call_without_depth_estimates_it_in_step_2() -> None:
    calls: list[int] = []

    class Flat:
        def estimate(self, images: torch.Tensor, cameras: Cameras | None = None):  # noqa: ANN201
            from worldwarp.geometry.base import DepthPrediction

            calls.append(images.shape[0])
            d = torch.full((images.shape[0], H, W), 3.0)
            return DepthPrediction(d, d > 0, metric=True)

    image, cams, _ = _tensors(12)
    pipe = WorldWarpPipeline.from_pretrained("tiny", device="cpu", depth_estimator=Flat(), **SMALL)
    state = pipe.start(image, cams)  # no depth: chunk 0's step 2 estimates it
    assert calls == [] and not state.start_depth_given
    pipe.step(state)
    assert calls == [1] and torch.equal(state.depths[0], torch.full((H, W), 3.0))
    pipe.step(state)  # chunk 1: its 5 history frames were generated, so the estimator sees them
    assert calls == [1, 5]
    # a preset path needs the scene's scale before the cameras exist: estimated first, booked as chunk 0's geometry
    out = pipe(image, "orbit", num_frames=12)
    assert calls[2] == 1 and out.chunks[0].timings["geometry"] > 0


def test_call_rejects_mixed_inputs() -> None:
    pipe = WorldWarpPipeline(None, PipelineConfig.cpu(height=H, width=W, fill="inpaint", progress=False))
    image, cams, depth = _tensors(6)
    with pytest.raises(InputError, match="num_frames is needed"):
        pipe(image, "orbit", depth)
    with pytest.raises(InputError, match="with an image file"):
        pipe(example_dir("room") / "image.png", cams, depth)
    with pytest.raises(InputError, match="the diffusion fill needs a denoiser"):
        WorldWarpPipeline(None, PipelineConfig.cpu(height=H, width=W))


def test_run_json_stage_timings_add_up_to_the_wall_time(tmp_path) -> None:
    from worldwarp.cli import main

    room = example_dir("room")
    out = tmp_path / "run"
    argv = ["generate", str(room / "image.png"), "--depth", str(room / "depth.png"), "--trajectory", "orbit",
            "--frames", "12", "--out", str(out), "--height", "64", "--width", "96", "--chunk", "9", "--steps", "2",
            "--cache-steps", "5", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    run = json.loads((out / "run.json").read_text())
    stages = run["timings"]
    assert set(stages) == {"inputs", "model", "start", "geometry", "cache", "warp", "prompt", "diffusion", "append",
                           "save"}  # fmt: skip
    assert abs(sum(stages.values()) - run["seconds"]) <= 0.05 * run["seconds"], (stages, run["seconds"])
    per_chunk = sum(c["timings"]["total"] for c in run["chunks"])
    chunk_stages = sum(stages[k] for k in ("geometry", "cache", "warp", "prompt", "diffusion", "append"))
    assert abs(per_chunk - chunk_stages) <= 1e-6 * len(run["chunks"]) + 1e-9
