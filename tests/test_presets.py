"""Presets: release / paper / cpu, the denoiser's default preset, and the generation flags of ``worldwarp eval``."""

from __future__ import annotations

import pytest

from worldwarp.cli import build_parser, main
from worldwarp.diffusion.denoisers.registry import DenoiserSpec
from worldwarp.diffusion.denoisers.wan import RELEASE_NEGATIVE_PROMPT
from worldwarp.eval.pipeline_methods import PipelineMethodConfig
from worldwarp.pipeline import PipelineConfig, default_preset
from worldwarp.runner import GenerationRequest, build_config


def test_release_and_paper_presets() -> None:
    r = PipelineConfig.release()
    assert (r.height, r.width, r.chunk_frames, r.overlap) == (480, 720, 81, 1)
    assert (r.sampler.steps, r.sampler.strength, r.sampler.guidance_scale) == (50, 0.6, 5.0)
    assert r.negative_prompt == RELEASE_NEGATIVE_PROMPT and r.warp.erosion_border == "zero"
    assert (r.cache.steps, r.cache.max_points_per_frame, r.cache.sampling, r.cache.sh_degree) == (
        500,
        50_000,
        "random",
        3,
    )
    assert (r.cache.init_scale, r.cache.lr_means_scale, r.cache.init_opacity) == ("knn_rms", "none", 0.9999)
    p = PipelineConfig.paper()
    assert (p.chunk_frames, p.overlap, p.sampler.strength) == (49, 5, 0.8)
    assert p.sampler.sigma_grid == "scheduler" and p.sampler.patch_levels == "release" and p.cache == r.cache
    assert PipelineConfig.paper(overlap=9).overlap == 9


def test_cpu_preset_keeps_the_embedded_rules() -> None:
    c = PipelineConfig.cpu()
    s = c.sampler
    assert (s.sigma_grid, s.start_rule, s.mask_reduction, s.patch_levels) == ("shifted_linspace",) + ("strict",) * 3
    assert c.warp.erosion_border == "keep" and c.negative_prompt == ""
    assert not c.warp.reprojection  # chosen on the dev suite for the embedded model (PipelineConfig.cpu)
    assert PipelineConfig.release().warp.reprojection and PipelineConfig.paper().warp.reprojection


def test_default_preset_follows_the_denoiser() -> None:
    assert default_preset("wan") == "release" and default_preset("tiny") == "cpu"
    assert build_config(GenerationRequest(out="x", denoiser=DenoiserSpec(name="wan"))).chunk_frames == 81
    assert build_config(GenerationRequest(out="x")).chunk_frames == PipelineConfig.cpu().chunk_frames
    cfg = build_config(GenerationRequest(out="x", preset="paper", negative_prompt="fog", strength=0.7))
    assert (cfg.chunk_frames, cfg.negative_prompt, cfg.sampler.strength) == (49, "fog", 0.7)
    args = build_parser().parse_args(["generate", "im.png", "--trajectory", "orbit", "--frames", "9", "--out", "o",
                                      "--denoiser", "wan", "--trust-checkpoint", "--caption-model", "vlm"])  # fmt: skip
    req = GenerationRequest.from_args(args)
    assert req.preset is None and req.caption_model == "vlm" and req.denoiser.trust_checkpoint


def _eval_args(*extra: str):
    return build_parser().parse_args(["eval", "--dataset", "procedural", "--out", "r.json", *extra])


def test_eval_takes_the_generation_flags() -> None:
    from worldwarp.cli.eval import _method_config

    args = _eval_args("--method", "worldwarp", "--denoiser", "wan", "--checkpoint", "st.safetensors", "--preset",
                      "paper", "--strength", "0.7", "--cfg", "3", "--steps", "20", "--chunk", "49", "--overlap", "5",
                      "--seed", "4", "--wan-model", "models/wan", "--pipeline-device", "cpu")  # fmt: skip
    cfg = _method_config(args, PipelineMethodConfig)
    assert cfg.denoiser == DenoiserSpec(name="wan", checkpoint="st.safetensors", wan_model="models/wan")
    assert (cfg.preset, cfg.strength, cfg.guidance_scale, cfg.steps, cfg.seed, cfg.device) == (
        "paper", 0.7, 3.0, 20, 4, "cpu"
    )  # fmt: skip
    assert (cfg.chunk_frames, cfg.overlap) == (49, 5)
    assert _method_config(_eval_args("--method", "worldwarp"), PipelineMethodConfig) == PipelineMethodConfig()


def test_eval_rejects_generation_flags_for_other_methods(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--dataset", "procedural", "--method", "inpaint", "--denoiser", "wan", "--out", "r.json"])
    err = capsys.readouterr().err
    assert code == 2 and "--denoiser does not apply to method 'inpaint'" in err and err.count("\n") == 1
