"""Library helpers the method studies share: the weights digest, finite means, and evaluate_methods with reuse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from worldwarp.diffusion.denoisers.digest import weights_digest
from worldwarp.eval.report import mean_finite
from worldwarp.eval.suite import evaluate_methods


def test_weights_digest_tracks_every_weight() -> None:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    b = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    b.load_state_dict(a.state_dict())
    digest = weights_digest(a)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert weights_digest(b) == digest  # same weights, different object
    with torch.no_grad():
        b[1].bias[2] += 1e-6  # one value of the last layer
    assert weights_digest(b) != digest
    assert weights_digest(a.double()) != digest  # dtype is part of the identity


def test_weights_digest_is_stable_across_versions() -> None:
    """Results files record this digest: its value for fixed weights must not change."""
    m = torch.nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, -2.0]]))
        m.bias.fill_(0.5)
    assert weights_digest(m) == "5ad03a2f5e44903b"


def test_mean_finite() -> None:
    assert mean_finite([1.0, float("nan"), 3.0, float("inf"), None]) == 2.0
    assert math.isnan(mean_finite([float("nan")]))


def test_evaluate_methods_writes_and_reuses_results(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from test_pipeline_methods import _scene, _tiny_denoiser
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig

    scenes = [_scene(6, move=0.05)]
    den = _tiny_denoiser()
    config = PipelineMethodConfig(chunk_frames=5, overlap=2, steps=2, cache_steps=2)
    docs = evaluate_methods(scenes, ("inpaint-cache", "copy-first"), den, config, tmp_path, "t", reuse=True)
    assert set(docs) == {"inpaint-cache", "copy-first"} and (tmp_path / "t_inpaint-cache.json").is_file()
    assert "denoiser_weights" not in docs["inpaint-cache"]  # inpainting never calls the model
    capsys.readouterr()
    again = evaluate_methods(scenes, ("inpaint-cache",), den, config, tmp_path, "t", reuse=True)
    assert "reused" in capsys.readouterr().out
    first, second = docs["inpaint-cache"]["scenes"][0], again["inpaint-cache"]["scenes"][0]
    assert second["seconds"] == first["seconds"] and second["metrics"]["5"]["psnr"] == first["metrics"]["5"]["psnr"]
    # a file written before a config field existed (here the solver) is read back when the field has its default
    path = tmp_path / "t_inpaint-cache.json"
    doc = json.loads(path.read_text())
    del doc["method_config"]["solver"]
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    evaluate_methods(scenes, ("inpaint-cache",), den, config, tmp_path, "t", reuse=True)
    assert "reused" in capsys.readouterr().out


def test_evaluate_methods_reruns_when_the_preset_changed(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    from dataclasses import replace

    from test_pipeline_methods import _scene, _tiny_denoiser
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig
    from worldwarp.pipeline import PipelineConfig

    scenes = [_scene(6, move=0.05)]
    config = PipelineMethodConfig(chunk_frames=5, overlap=2, steps=2, cache_steps=2)
    docs = evaluate_methods(scenes, ("inpaint-cache", "copy-first"), _tiny_denoiser(), config, tmp_path, "t", True)
    recorded = docs["inpaint-cache"]["pipeline_config"]
    assert recorded["warp"]["reprojection"] == PipelineConfig.cpu().warp.reprojection
    assert (recorded["height"], recorded["width"]) == (scenes[0].height, scenes[0].width)
    assert "pipeline_config" not in docs["copy-first"]  # not a pipeline method
    # the same method settings under a changed preset (here the warp's reprojection check): run again, not reused
    cpu = PipelineConfig.cpu.__func__

    def changed(cls, **overrides):  # noqa: ANN001, ANN202
        base = cpu(cls, **overrides)
        return replace(base, warp=replace(base.warp, reprojection=not base.warp.reprojection))

    monkeypatch.setattr(PipelineConfig, "cpu", classmethod(changed))
    capsys.readouterr()
    again = evaluate_methods(scenes, ("inpaint-cache", "copy-first"), _tiny_denoiser(), config, tmp_path, "t", True)
    out = capsys.readouterr().out
    assert "copy-first: reused" in out and "inpaint-cache: reused" not in out
    assert again["inpaint-cache"]["pipeline_config"]["warp"]["reprojection"] != recorded["warp"]["reprojection"]


def test_classical_fills_are_reused_across_a_sampler_change(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    """A fill without the model never calls the sampler: its recorded settings leave the sampler out, so a preset
    whose sampler changed reads it back, while the model's method runs again."""
    from dataclasses import replace

    from test_pipeline_methods import _scene, _tiny_denoiser
    from worldwarp.eval.pipeline_methods import PipelineMethodConfig
    from worldwarp.pipeline import PipelineConfig

    scenes = [_scene(6, move=0.05)]
    config = PipelineMethodConfig(chunk_frames=5, overlap=2, cache_steps=2)
    den = _tiny_denoiser()
    docs = evaluate_methods(scenes, ("inpaint-cache", "worldwarp"), den, config, tmp_path, "t", True)
    assert "sampler" not in docs["inpaint-cache"]["pipeline_config"]
    assert "sampler" in docs["worldwarp"]["pipeline_config"]
    cpu = PipelineConfig.cpu.__func__

    def changed(cls, **overrides):  # noqa: ANN001, ANN202
        base = cpu(cls, **overrides)
        return replace(base, sampler=replace(base.sampler, steps=base.sampler.steps + 1))

    monkeypatch.setattr(PipelineConfig, "cpu", classmethod(changed))
    capsys.readouterr()
    evaluate_methods(scenes, ("inpaint-cache", "worldwarp"), den, config, tmp_path, "t", True)
    out = capsys.readouterr().out
    assert "inpaint-cache: reused" in out and "worldwarp: reused" not in out
