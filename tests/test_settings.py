"""One preset-plus-overrides path (worldwarp.settings) for the CLI, the UI and eval; every bad value an InputError."""

from __future__ import annotations

import math

import pytest

from worldwarp.errors import InputError
from worldwarp.pipeline import PipelineConfig
from worldwarp.settings import Overrides, apply_overrides, configure


def test_configure_picks_the_denoisers_preset_and_applies_overrides() -> None:
    assert configure() == PipelineConfig.cpu()
    assert configure(denoiser="wan") == PipelineConfig.release()
    assert configure("paper", denoiser="tiny") == PipelineConfig.paper()
    cfg = configure(
        "cpu",
        Overrides(
            height=64, width=96, chunk_frames=9, overlap=1, steps=3, strength=0.25, guidance_scale=2.0,
            noise_mode="temporal", cache_steps=7, cache_init_scale="footprint", cache_w_depth=0.5,
            cache_mode="points", fill="inpaint", prompt="a room", negative_prompt="blur", seed=11, progress=False,
        ),
    )  # fmt: skip
    base = PipelineConfig.cpu()
    assert (cfg.height, cfg.width, cfg.chunk_frames, cfg.overlap) == (64, 96, 9, 1)
    assert (cfg.sampler.steps, cfg.sampler.strength, cfg.sampler.guidance_scale) == (3, 0.25, 2.0)
    assert (cfg.sampler.noise_mode, cfg.sampler.shift) == ("temporal", base.sampler.shift)
    assert (cfg.cache.steps, cfg.cache.init_scale, cfg.cache.w_depth) == (7, "footprint", 0.5)
    assert cfg.cache.max_points_per_frame == base.cache.max_points_per_frame
    assert (cfg.cache_mode, cfg.fill, cfg.prompt, cfg.negative_prompt) == ("points", "inpaint", "a room", "blur")
    assert (cfg.seed, cfg.progress, cfg.warp) == (11, False, base.warp)


def test_apply_overrides_leaves_the_base_alone_and_none_keeps_values() -> None:
    base = PipelineConfig.cpu()
    assert apply_overrides(base, None) is base
    assert apply_overrides(base, Overrides()) == base
    out = apply_overrides(base, Overrides(strength=0.5))
    assert out.sampler.strength == 0.5 and base.sampler.strength == PipelineConfig.cpu().sampler.strength


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "over, message",
    [
        (dict(strength=1.5), "strength must lie in [0, 1], got 1.5"),
        (dict(strength=-0.1), "strength must lie in [0, 1], got -0.1"),
        (dict(strength=NAN), "SamplerConfig.strength must be a finite number, got nan"),
        (dict(steps=0), "steps must be a whole number >= 1, got 0"),
        (dict(steps=2.5), "steps must be a whole number >= 1, got 2.5"),
        (dict(guidance_scale=-1.0), "guidance scale (cfg) must be >= 0, got -1.0"),
        (dict(guidance_scale=INF), "SamplerConfig.guidance_scale must be a finite number, got inf"),
        (dict(cache_steps=-1), "CacheConfig.steps must be >= 0, got -1"),
        (dict(cache_w_depth=-0.5), "CacheConfig learning rates and loss weights must be >= 0"),
        (dict(cache_w_depth=NAN), "CacheConfig.w_depth must be a finite number, got nan"),
        (dict(height=0), "resolution must be positive, got 0x192"),
        (dict(width=-8), "resolution must be positive, got 128x-8"),
        (dict(height=64.5), "PipelineConfig.height must be a whole number, got 64.5"),
        (dict(chunk_frames=0), "need 1 <= overlap < chunk_frames, got overlap 5, chunk 0"),
        (dict(overlap=0), "need 1 <= overlap < chunk_frames, got overlap 0, chunk 25"),
        (dict(overlap=25), "need 1 <= overlap < chunk_frames, got overlap 25, chunk 25"),
        (dict(seed=-1), "seed must lie in [0, 4294967295], got -1"),
        (dict(seed=2**32), "seed must lie in [0, 4294967295], got 4294967296"),
        (dict(noise_mode="loud"), "unknown noise mode 'loud'"),
        (dict(cache_mode="voxels"), "unknown cache mode 'voxels'"),
        (dict(fill="paint"), "unknown fill mode 'paint'"),
        (dict(cache_init_scale="grid"), "CacheConfig.init_scale must be 'knn', 'knn_rms' or 'footprint'"),
    ],
)
def test_out_of_range_values_are_one_line_input_errors(over: dict, message: str) -> None:
    with pytest.raises(InputError) as e:
        configure("cpu", Overrides(**over))
    text = str(e.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_unknown_preset_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown pipeline preset 'fast'; choose one of release, paper, cpu"):
        configure("fast")


@pytest.mark.parametrize(
    "option, value, message",
    [
        # ranges are checked while the arguments are parsed (worldwarp.cli.options), relations by configure
        ("--strength", "1.5", "argument --strength: must lie in [0, 1], got '1.5'"),
        ("--strength", "nan", "must be a finite number"),
        ("--steps", "0", "argument --steps: must lie in [1, 10000], got '0'"),
        ("--cfg", "-2", "argument --cfg: must lie in [0, 100], got '-2'"),
        ("--cache-steps", "-3", "argument --cache-steps: must lie in [0, 100000], got '-3'"),
        ("--height", "0", "argument --height: must lie in [8, 8192], got '0'"),
        ("--chunk", "3", "need 1 <= overlap < chunk_frames, got overlap 5, chunk 3"),
        ("--overlap", "0", "argument --overlap: must lie in [1, 999], got '0'"),
        ("--seed", "-1", "argument --seed: must lie in [0, 4294967295], got '-1'"),
    ],
)
def test_cli_bad_numeric_option_is_one_line_and_exit_2(
    option: str, value: str, message: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from worldwarp.cli import main
    from worldwarp.examples import example_dir

    image = example_dir("room") / "image.png"
    out = tmp_path / "out"
    argv = ["generate", str(image), "--trajectory", "orbit", "--frames", "9", "--out", str(out), option, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("worldwarp"), err
    assert message in err, err
    assert not out.exists()  # nothing was written


def test_every_interface_builds_its_config_through_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's request, the UI's page settings and the eval methods all go through worldwarp.settings."""
    import worldwarp.settings as settings
    from worldwarp.diffusion.denoisers.registry import DenoiserSpec
    from worldwarp.eval.pipeline_methods import VARIANTS, PipelineMethodConfig, make_pipeline_config
    from worldwarp.runner import GenerationRequest, build_config
    from worldwarp.ui.session import UIConfig, UISession

    calls: list[Overrides] = []
    real = settings.apply_overrides

    def spy(config: PipelineConfig, overrides: Overrides | None = None) -> PipelineConfig:
        calls.append(overrides or Overrides())
        return real(config, overrides)

    monkeypatch.setattr(settings, "apply_overrides", spy)
    cli = build_config(GenerationRequest(out="x", strength=0.3, denoiser=DenoiserSpec()))
    assert cli.sampler.strength == 0.3 and calls[-1].strength == 0.3
    ev = make_pipeline_config(VARIANTS["full-noise"], PipelineMethodConfig(strength=0.4, progress=False), 64, 96)
    assert ev.sampler.noise_mode == "full" and calls[-1].noise_mode == "full" and calls[-1].strength == 0.4
    session = UISession(UIConfig(pipeline=PipelineConfig.cpu()))
    try:
        ui = session.pipeline_config(0.7, 3)
    finally:
        session.close()
    assert (ui.sampler.strength, ui.seed) == (0.7, 3) and calls[-1] == Overrides(strength=0.7, seed=3)
