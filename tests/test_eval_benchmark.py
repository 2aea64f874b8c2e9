"""The eval runner end to end on a tiny textured-plane dataset: exact baselines, shards, merge, report, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from test_eval_datasets import W, write_plane_scene
from worldwarp.cli import main
from worldwarp.eval.benchmark import (
    METHODS,
    BenchmarkConfig,
    InpaintConfig,
    OracleWarpConfig,
    build_method,
    merge_results,
    read_results,
    register_method,
    run_benchmark,
    select_shard,
    shard_output_path,
)
from worldwarp.eval.datasets import DatasetConfig, load_dataset
from worldwarp.eval.report import aggregate


@pytest.fixture()
def plane_root(tmp_path):
    root = tmp_path / "planes"
    for k, name in enumerate(["p0", "p1", "p2"]):
        write_plane_scene(root / name, frames=7, phase=0.7 * k)
    return root


def _scenes(root, frames=(2, 4)):
    return load_dataset(DatasetConfig("transforms", root=root, frames=frames))


def test_exact_baselines_on_a_sliding_plane(plane_root):
    """Camera slides 4 px per frame: the warp is exact, the holes are the last 4k columns."""
    scenes = _scenes(plane_root)[:1]
    cfg = BenchmarkConfig(hole_point_radius=0.0)
    oracle, _ = run_benchmark(scenes, build_method("oracle-warp", OracleWarpConfig(point_radius=0.0)), "o", cfg)
    inpaint, _ = run_benchmark(scenes, build_method("inpaint", InpaintConfig(point_radius=0.0)), "i", cfg)
    copy, _ = run_benchmark(scenes, build_method("copy-first"), "c", cfg)
    for k in (2, 4):
        o, i, c = (doc["scenes"][0]["metrics"][str(k)] for doc in (oracle, inpaint, copy))
        assert o["hole_fraction"] == pytest.approx(4 * k / W)  # exactly the uncovered columns
        assert math.isinf(o["psnr"]) and o["ssim"] == pytest.approx(1.0)  # perfect warp + true holes
        assert o["hf_ratio"] == 1.0 and o["color_error"] == 0.0  # identical frames: no grain, no cast
        assert math.isinf(i["psnr_visible"]) and math.isfinite(i["psnr_holes"])  # exact outside the holes
        assert c["psnr"] < i["psnr"] < math.inf
    # the plain runner defaults (radius 1) close one extra column of each hole strip
    default, _ = run_benchmark(scenes, build_method("copy-first"), "c", BenchmarkConfig())
    assert default["scenes"][0]["metrics"]["2"]["hole_fraction"] == pytest.approx(7 / W)


def test_curve_frames_and_method_contract(plane_root):
    scenes = _scenes(plane_root)[:1]
    seen = []

    def spy(scene, indices):
        seen.append((scene.num_frames, list(indices)))
        return scene.start_image[None].expand(len(indices), -1, -1, -1)

    doc, _ = run_benchmark(scenes, spy, "spy", BenchmarkConfig(curve_stride=3))
    assert seen == [(5, [2, 3, 4])]  # cameras up to the last requested frame only
    assert sorted(doc["scenes"][0]["metrics"]) == ["2", "3", "4"]
    agg = aggregate(doc)
    assert [s["frames"] for s in agg["slots"]] == [[2], [4]]
    assert sorted(agg["curves"]["psnr"]) == [2, 3, 4]

    def wrong(scene, indices):
        return torch.zeros(len(indices), 3, 8, 8)

    with pytest.raises(Exception, match="expected"):
        run_benchmark(scenes, wrong, "wrong", BenchmarkConfig())


def test_registry_takes_typed_configs():
    assert {"copy-first", "inpaint", "oracle-warp"} <= set(METHODS)
    assert METHODS["inpaint"].config_type is InpaintConfig
    with pytest.raises(TypeError):
        build_method("inpaint", OracleWarpConfig())
    with pytest.raises(TypeError):
        register_method("bad", lambda c: None, dict, "not a dataclass")


def test_shards_merge_to_the_unsharded_run(plane_root):
    scenes = _scenes(plane_root)
    method = build_method("inpaint")
    full, _ = run_benchmark(scenes, method, "inpaint", BenchmarkConfig(), dataset="transforms", split="x")
    parts = [
        run_benchmark(scenes, method, "inpaint", BenchmarkConfig(), shard=(i, 2), dataset="transforms", split="x")
        for i in (1, 0)
    ]
    assert [k for k, _ in select_shard(scenes, 1, 2)] == [1]
    merged, _ = merge_results(parts)

    def strip(doc):
        return [{k: v for k, v in s.items() if k != "seconds"} for s in doc["scenes"]]

    assert strip(merged) == strip(full)
    assert merged["shards"] == [[0, 2], [1, 2]]
    with pytest.raises(Exception, match="same scene"):
        merge_results([parts[0], parts[0]])
    assert shard_output_path(plane_root / "r.json", 1, 4).name == "r.shard1of4.json"


def test_cli_run_shards_merge_report(plane_root, tmp_path, capsys):
    out = tmp_path / "res" / "results.json"
    common = ["eval", "--dataset", "transforms", "--root", str(plane_root), "--frames", "2,4", "--quiet"]
    common += ["--method", "inpaint"]
    for i in (0, 1):
        assert main([*common, "--shard", f"{i}/2", "--out", str(out), "--save-frames", str(tmp_path / "fr")]) == 0
    shards = [out.with_name(f"results.shard{i}of2.json") for i in (0, 1)]
    assert [s["name"] for s in read_results(shards[1])[0]["scenes"]] == ["p1"]
    merged = tmp_path / "merged.json"
    assert main(["eval", "merge", *map(str, shards), "--out", str(merged)]) == 0
    full, _ = read_results(merged)
    assert [s["name"] for s in full["scenes"]] == ["p0", "p1", "p2"]
    assert (tmp_path / "fr" / "p1" / "gen_00004.png").is_file() and (tmp_path / "fr" / "p1" / "gt_00004.png").is_file()
    # no temporary files left behind by the atomic writes
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(s.name for s in shards)

    copy = tmp_path / "copy.json"
    assert main([*common[:-2], "--method", "copy-first", "--curve-stride", "2", "--out", str(copy)]) == 0
    report = tmp_path / "report"
    assert main(["eval", "report", str(merged), str(copy), "--out", str(report)]) == 0
    text = (report / "report.md").read_text()
    assert "## transforms / test" in text and "| inpaint | 3 |" in text and "| copy-first | 3 |" in text
    assert "PSNR f2" in text and "LPIPS not computed" in text
    psnr_png = report / "transforms_test_psnr.png"
    assert psnr_png.is_file() and psnr_png.read_bytes()[:4] == b"\x89PNG"
    # the table's numbers are the means over the scenes
    row = next(line for line in text.splitlines() if line.startswith("| inpaint |"))
    mean2 = sum(s["metrics"]["2"]["psnr"] for s in full["scenes"]) / 3
    assert f"{mean2:.2f}" in row


def test_cli_errors_exit_2(plane_root, tmp_path, capsys):
    assert main(["eval", "--dataset", "kitti", "--out", str(tmp_path / "r.json")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["eval", "--dataset", "transforms", "--root", str(plane_root), "--method", "nope",
                 "--out", str(tmp_path / "r.json")]) == 2  # fmt: skip
    assert "unknown method" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    assert main(["eval", "merge", str(bad), "--out", str(tmp_path / "m.json")]) == 2
    assert "not a worldwarp results file" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, still what FID files use
def test_lpips_and_fid_through_the_runner(plane_root, tmp_path):
    import numpy as np

    from test_eval_lpips_fid import _random_weights
    from worldwarp.eval.benchmark import write_results
    from worldwarp.eval.fid import FIDConfig, fid_from_features
    from worldwarp.eval.lpips import LPIPS, LPIPSConfig

    backbone, heads = _random_weights("alex")
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")

    class Stats(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    net = tmp_path / "stats.pt"
    torch.jit.script(Stats()).save(str(net))
    fid = FIDConfig(net, input_range="unit", return_features_kwarg=False)
    cfg = BenchmarkConfig(lpips=LPIPSConfig(tmp_path), fid=fid, hole_metrics=False)
    scenes = load_dataset(DatasetConfig("transforms", root=plane_root, frames=(2, 4), size=(64, 96)))
    method = build_method("copy-first")
    parts = [run_benchmark(scenes, method, "copy-first", cfg, shard=(i, 2)) for i in (0, 1)]
    for i, (doc, feats) in enumerate(parts):
        write_results(tmp_path / f"r{i}.json", doc, feats)
    merged, feats = merge_results([read_results(tmp_path / f"r{i}.json") for i in (0, 1)])
    assert feats["order"].tolist() == [0, 1, 2] and feats["gen_1"].shape == (3, 6)
    # features are the per-channel means and stds of the frames at each slot, in scene order
    lp = LPIPS.from_folder(LPIPSConfig(tmp_path))
    for k, scene in enumerate(scenes):
        gt4 = scene.frames([4])
        assert np.allclose(feats["gt_1"][k][:3], gt4[0].mean(dim=(1, 2)).numpy(), atol=1e-6)
        gen = scene.start_image[None]
        want = float(lp(gen, gt4))
        assert merged["scenes"][k]["metrics"]["4"]["lpips"] == pytest.approx(want, rel=1e-5)
    agg = aggregate(merged, feats)
    assert agg["slots"][1]["fid"] == pytest.approx(fid_from_features(feats["gen_1"], feats["gt_1"]))
    assert agg["slots"][1]["lpips"] == pytest.approx(np.mean([s["metrics"]["4"]["lpips"] for s in merged["scenes"]]))
