"""Evaluation datasets: transforms.json (OpenGL -> OpenCV), RealEstate10K clips, scene lists, real scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.eval.datasets import DatasetConfig, ListEntry, load_dataset, load_transforms_scene, read_scene_list

FOCAL, H, W, Z, STEP = 32.0, 32, 48, 2.0, 0.25  # STEP * FOCAL / Z = 4 pixels of image motion per frame


def texture(x: np.ndarray, y: np.ndarray, phase: float) -> np.ndarray:
    """Smooth colour of the plane z = Z at world (x, y): (..., 3) in [0, 1]."""
    return np.stack(
        [
            0.5 + 0.4 * np.sin(1.3 * x + 0.7 * y + phase),
            0.5 + 0.4 * np.cos(0.9 * x - 1.1 * y + 2 * phase),
            0.5 + 0.3 * np.sin(2.0 * x) * np.cos(1.5 * y - phase),
        ],
        axis=-1,
    )


def write_plane_scene(folder: Path, frames: int = 7, phase: float = 0.0, depth: bool = True) -> None:
    """A textured plane seen by a camera sliding along +x (4 px per frame), in nerfstudio layout."""
    (folder / "images").mkdir(parents=True)
    (folder / "depth").mkdir()
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    entries = []
    for k in range(frames):
        tx = STEP * k
        x = (u - W / 2) / FOCAL * Z + tx
        y = (v - H / 2) / FOCAL * Z
        img = (texture(x, y, phase) * 255).round().astype(np.uint8)
        Image.fromarray(img).save(folder / "images" / f"frame_{k:05d}.png")
        np.save(folder / "depth" / f"frame_{k:05d}.npy", np.full((H, W), Z, np.float32))
        c2w_cv = np.eye(4)
        c2w_cv[0, 3] = tx
        entry = {
            "file_path": f"images/frame_{k:05d}.png",
            "transform_matrix": (c2w_cv @ np.diag([1.0, -1.0, -1.0, 1.0])).tolist(),  # OpenGL axes
        }
        if depth:
            entry["depth_file_path"] = f"depth/frame_{k:05d}.npy"
        entries.append(entry)
    meta = {"fl_x": FOCAL, "fl_y": FOCAL, "cx": W / 2, "cy": H / 2, "w": W, "h": H, "frames": entries[::-1]}
    (folder / "transforms.json").write_text(json.dumps(meta))


def test_transforms_scene_converts_opengl_to_opencv(tmp_path):
    write_plane_scene(tmp_path / "plane")
    scene = load_transforms_scene(tmp_path / "plane", DatasetConfig("transforms"))
    assert scene.num_frames == 7 and scene.frame_indices == (3, 6)  # middle and last frame by default
    expected = torch.eye(4, dtype=torch.float64).repeat(7, 1, 1)
    expected[:, 0, 3] = STEP * torch.arange(7)
    assert torch.equal(scene.cameras.c2w, expected)  # frames sorted by name, OpenCV axes
    assert torch.equal(scene.cameras.K[0], torch.tensor([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1.0]]).double())
    # frame k, pixel j shows the same world point as frame 0, pixel j + 4k
    f0, f2 = scene.frames([0, 2])
    assert torch.equal(f2[:, :, : W - 8], f0[:, :, 8:])
    assert torch.equal(scene.start_depth, torch.full((H, W), Z))
    # a prefix keeps the loaders but cuts the cameras
    assert scene.prefix(3).num_frames == 3
    with pytest.raises(InputError, match="requested"):
        scene.prefix(8)


def test_resize_start_and_stride(tmp_path):
    write_plane_scene(tmp_path / "plane")
    cfg = DatasetConfig("transforms", size=(16, 16), stride=2, frames=(2,))
    scene = load_transforms_scene(tmp_path / "plane", cfg, ListEntry("plane", None, start=1))
    assert scene.num_frames == 3 and scene.frame_indices == (2,)
    assert scene.cameras.c2w[:, 0, 3].tolist() == [0.25, 0.75, 1.25]  # source frames 1, 3, 5
    # cover-resize 32x48 -> 16x24, centre crop 16x16: focal halves, principal point moves to the crop centre
    assert scene.cameras.K[0].tolist() == [[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]
    assert scene.start_image.shape == (3, 16, 16) and scene.start_depth.shape == (16, 16)
    too_long = load_transforms_scene(tmp_path / "plane", DatasetConfig("transforms", frames=(9,)))
    assert too_long.skip_reason is not None and "needs 10" in too_long.skip_reason


def test_scene_lists_and_errors(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("# comment\nsceneA 50,200\nsceneB - 7  # default frames, start 7\n")
    assert read_scene_list(lst) == [ListEntry("sceneA", (50, 200), 0), ListEntry("sceneB", None, 7)]
    lst.write_text("sceneA 50,x\n")
    with pytest.raises(InputError, match=r"list\.txt:1: "):
        read_scene_list(lst)
    lst.write_text("ok 5\nbad 0\n")
    with pytest.raises(InputError, match=r"list\.txt:2: "):
        read_scene_list(lst)
    with pytest.raises(InputError, match="unknown dataset"):
        DatasetConfig("kitti")
    with pytest.raises(InputError, match="needs --root"):
        load_dataset(DatasetConfig("dl3dv"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "transforms.json").write_text("{\n  'frames': }")
    with pytest.raises(InputError, match=r"transforms\.json:2: invalid JSON"):
        load_transforms_scene(tmp_path / "bad", DatasetConfig("transforms"))


def test_dataset_discovery_and_dl3dv_layout(tmp_path):
    for name in ("b", "a"):
        write_plane_scene(tmp_path / "test" / name / "nerfstudio", depth=False)
    scenes = load_dataset(DatasetConfig("dl3dv", root=tmp_path, split="test", frames=(2, 4)))
    assert [s.name for s in scenes] == ["a", "b"]
    assert all(s.frame_indices == (2, 4) and s.load_depth is None for s in scenes)
    # DL3DV's default frames (50, 200) do not exist in a 7-frame clip: the scene is kept, marked skipped
    assert load_dataset(DatasetConfig("dl3dv", root=tmp_path, split="test"))[0].skip_reason is not None


def test_re10k_clip(tmp_path):
    from worldwarp.cameras import look_at
    from worldwarp.trajectory.formats.re10k import write_re10k

    split = tmp_path / "test"
    split.mkdir()
    eye = torch.stack([torch.linspace(0, 1, 5, dtype=torch.float64), torch.zeros(5), torch.zeros(5)], -1)
    cams = Cameras(look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0])), torch.eye(3), 18, 32)
    cams.K[:, 0, 0], cams.K[:, 1, 1], cams.K[:, 0, 2], cams.K[:, 1, 2] = 20.0, 20.0, 16.0, 9.0
    stamps = [1000 * (k + 1) for k in range(5)]
    write_re10k(split / "clip1.txt", cams, timestamps=stamps)
    (split / "clip1").mkdir()
    for k, t in enumerate(stamps):
        Image.fromarray(np.full((18, 32, 3), 40 * k, np.uint8)).save(split / "clip1" / f"{t}.png")
    (scene,) = load_dataset(DatasetConfig("re10k", root=tmp_path, split="test", frames=(2, 4)))
    assert scene.name == "clip1" and scene.frame_indices == (2, 4)
    assert torch.allclose(scene.cameras.c2w, cams.c2w, atol=1e-12)
    assert torch.allclose(scene.cameras.K, cams.K, atol=1e-12)
    assert float(scene.frames([3])[0].mean()) == pytest.approx(120 / 255)
    (split / "clip1" / f"{stamps[1]}.png").unlink()
    with pytest.raises(InputError, match="no frame named 2000"):
        load_dataset(DatasetConfig("re10k", root=tmp_path, split="test"))
    for k, t in enumerate(stamps):  # names that are not timestamps: sorted order, counts must agree
        (split / "clip1" / f"{t}.png").unlink(missing_ok=True)
        Image.fromarray(np.full((18, 32, 3), 40 * k, np.uint8)).save(split / "clip1" / f"img_{k}.png")
    (scene,) = load_dataset(DatasetConfig("re10k", root=tmp_path, split="test", frames=(2, 4)))
    assert float(scene.frames([3])[0].mean()) == pytest.approx(120 / 255)
    Image.fromarray(np.zeros((18, 32, 3), np.uint8)).save(split / "clip1" / "img_9.png")
    with pytest.raises(InputError, match="6 frames for 5 camera lines"):
        load_dataset(DatasetConfig("re10k", root=tmp_path, split="test"))


def test_real_dev_list(shared_data):
    scenes = load_dataset(DatasetConfig("transforms", root=shared_data / "scenes", split="real_dev", size=(48, 64)))
    info = {s.name: (s.num_frames, s.frame_indices, s.load_depth is not None, s.skip_reason) for s in scenes}
    assert info == {
        "7scenes_redkitchen": (25, (12, 24), True, None),
        "ingp_fox": (50, (24, 49), False, None),
    }
    kitchen = scenes[0]
    assert kitchen.frames([24]).shape == (1, 3, 48, 64)
    # 7-Scenes depth is metres with holes (0) on the black worktop
    d = kitchen.start_depth
    assert 0.3 < float(d[d > 0].median()) < 4.0 and 0.5 < float((d > 0).float().mean()) < 0.95


def test_procedural_suite_reads_its_cache(tmp_path):
    """The procedural hook goes through the suite's on-disk cache (a pre-rendered tiny stand-in here)."""
    from worldwarp.scenes.clips import Clip
    from worldwarp.scenes.export import write_clip
    from worldwarp.scenes.suites import suite

    entry = suite("dev")[1]
    n, h, w = entry.frames, 16, 16
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    c2w[:, 2, 3] = torch.linspace(0, 1, n, dtype=torch.float64)
    cams = Cameras(c2w, torch.tensor([[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]), h, w)
    frames = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(0))
    clip = Clip(frames, torch.full((n, h, w), 3.0), cams, entry.seed, entry.kind, entry.trajectory)
    write_clip(clip, tmp_path / f"{entry.name}_{h}x{w}")
    lst = tmp_path / "one.txt"
    lst.write_text(f"{entry.name} -\n")
    (scene,) = load_dataset(DatasetConfig("procedural", root=tmp_path, split="dev", list_file=lst, size=(h, w)))
    assert (scene.name, scene.dataset, scene.frame_indices, scene.num_frames) == (
        entry.name,
        "procedural",
        (50, 199),
        n,
    )
    assert torch.allclose(scene.cameras.c2w, c2w, atol=1e-12)
    assert torch.allclose(scene.frames([7])[0], frames[7], atol=0.5 / 255 + 1e-6)
    assert torch.equal(scene.start_depth, torch.full((h, w), 3.0))
    with pytest.raises(InputError, match="needs --root"):
        load_dataset(DatasetConfig("procedural", split="dev"))


# ---------------------------------------------------------------------------------------------- making lists
def write_re10k_clip(split: Path, name: str, frames: int) -> None:
    """A tiny RealEstate10K clip: camera file plus ``frames`` 8x8 frames named by their timestamps."""
    from worldwarp.trajectory.formats.re10k import write_re10k

    c2w = torch.eye(4, dtype=torch.float64).repeat(frames, 1, 1)
    c2w[:, 0, 3] = torch.arange(frames, dtype=torch.float64)
    K = torch.tensor([[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]])
    stamps = [1000 * (k + 1) for k in range(frames)]
    split.mkdir(parents=True, exist_ok=True)
    write_re10k(split / f"{name}.txt", Cameras(c2w, K, 8, 8), timestamps=stamps)
    (split / name).mkdir()
    for t in stamps:
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(split / name / f"{t}.png")


LENGTHS = {"c0": 5, "c1": 3, "c2": 6, "c3": 5, "c4": 4, "c5": 7, "c6": 5, "c7": 5}  # frames 2,4 need 5 frames
LONG = ["c0", "c2", "c3", "c5", "c6", "c7"]


@pytest.fixture
def re10k_root(tmp_path: Path) -> Path:
    root = tmp_path / "RealEstate10K"
    for name, n in LENGTHS.items():
        write_re10k_clip(root / "test", name, n)
    return root


def test_make_scene_list_keeps_long_clips(re10k_root, tmp_path):
    from worldwarp.eval.datasets import make_scene_list

    cfg = DatasetConfig("re10k", root=re10k_root, split="test", frames=(2, 4))
    entries, counts = make_scene_list(cfg)
    assert entries == [ListEntry(n, (2, 4), 0) for n in LONG]
    assert counts == {"found": 8, "too_short": 2, "kept": 6}
    # a committed list in the lists folder or config.list_file is ignored
    stale = tmp_path / "stale.txt"
    stale.write_text("c1 2\n")
    assert (
        make_scene_list(DatasetConfig("re10k", root=re10k_root, split="test", frames=(2, 4), list_file=stale))[0]
        == entries
    )
    # stride 2: a clip needs more than 2 frames after the stride, i.e. at least 5 source frames (0, 2, 4)
    entries, counts = make_scene_list(DatasetConfig("re10k", root=re10k_root, split="test", frames=(2,), stride=2))
    assert [e.scene for e in entries] == LONG and counts == {"found": 8, "too_short": 2, "kept": 6}
    # the dataset default (50, 200) is written explicitly; no clip here reaches frame 200
    with pytest.raises(InputError, match=r"none of the 8 scenes found is long enough: frame 200 needs 201 frames"):
        make_scene_list(DatasetConfig("re10k", root=re10k_root, split="test"))
    with pytest.raises(InputError, match="count must be >= 1, got 0"):
        make_scene_list(cfg, count=0)
    with pytest.raises(InputError, match="count 7 is more than the 6 scenes long enough"):
        make_scene_list(cfg, count=7)
    with pytest.raises(InputError, match="no scene list needed"):
        make_scene_list(DatasetConfig("procedural", root=tmp_path, split="dev"))


def test_make_scene_list_count_and_seed(re10k_root):
    from worldwarp.eval.datasets import make_scene_list

    cfg = DatasetConfig("re10k", root=re10k_root, split="test", frames=(2, 4))
    picks = {seed: [e.scene for e in make_scene_list(cfg, count=3, seed=seed)[0]] for seed in range(6)}
    assert [e.scene for e in make_scene_list(cfg, count=3, seed=0)[0]] == picks[0]  # deterministic
    for pick in picks.values():
        assert len(pick) == 3 and pick == sorted(pick) and set(pick) <= set(LONG)
    assert any(pick != picks[0] for pick in picks.values())  # another seed draws other scenes
    assert make_scene_list(cfg, count=3, seed=0)[1] == {"found": 8, "too_short": 2, "kept": 3}
    assert [e.scene for e in make_scene_list(cfg, count=6, seed=4)[0]] == LONG


def test_write_scene_list_round_trip_and_load(re10k_root, tmp_path):
    from worldwarp.eval.datasets import make_scene_list, write_scene_list

    entries, _ = make_scene_list(DatasetConfig("re10k", root=re10k_root, split="test", frames=(2, 4)), 3, seed=1)
    out = tmp_path / "lists" / "re10k_test.txt"
    write_scene_list(out, entries, ["made by a test", "two\nlines"])
    lines = out.read_text().splitlines()
    assert lines[:3] == ["# made by a test", "# two", "# lines"]
    assert lines[3] == f"{entries[0].scene}  2,4  0" and len(lines) == 6
    assert read_scene_list(out) == entries
    mixed = [ListEntry("long_name", None, 3), ListEntry("b", (1,), 0)]
    write_scene_list(tmp_path / "mixed.txt", mixed, [])
    assert read_scene_list(tmp_path / "mixed.txt") == mixed
    with pytest.raises(InputError, match="cannot go in a scene list"):
        write_scene_list(tmp_path / "bad.txt", [ListEntry("a b", None)], [])
    assert not (tmp_path / "bad.txt").exists()
    # evaluating with --list loads exactly those scenes with those frames
    scenes = load_dataset(DatasetConfig("re10k", root=re10k_root, split="test", list_file=out))
    assert [(s.name, s.frame_indices, s.skip_reason) for s in scenes] == [(e.scene, (2, 4), None) for e in entries]


def test_make_scene_list_transforms_layouts(tmp_path):
    from worldwarp.eval.datasets import make_scene_list

    for name, n in (("b", 7), ("a", 4), ("c", 5)):
        write_plane_scene(tmp_path / "dl" / "test" / name / "nerfstudio", frames=n, depth=False)
    entries, counts = make_scene_list(DatasetConfig("dl3dv", root=tmp_path / "dl", split="test", frames=(4,)))
    assert entries == [ListEntry("b", (4,), 0), ListEntry("c", (4,), 0)]
    assert counts == {"found": 3, "too_short": 1, "kept": 2}
    with pytest.raises(InputError, match="no default frames"):
        make_scene_list(DatasetConfig("transforms", root=tmp_path / "dl" / "test"))
    entries, counts = make_scene_list(DatasetConfig("transforms", root=tmp_path / "dl" / "test", frames=(3,)))
    assert [e.scene for e in entries] == ["a", "b", "c"] and counts["too_short"] == 0
    with pytest.raises(InputError, match="is itself a scene"):
        make_scene_list(DatasetConfig("transforms", root=tmp_path / "dl" / "test" / "a" / "nerfstudio", frames=(1,)))


def test_eval_list_cli(re10k_root, tmp_path, capsys):
    from worldwarp.cli import main
    from worldwarp.eval.datasets import make_scene_list

    out = tmp_path / "re10k_test.txt"
    args = ["eval", "list", "--dataset", "re10k", "--root", str(re10k_root), "--split", "test", "--frames", "2,4"]
    assert main([*args, "--count", "4", "--list-seed", "3", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 4 of 8 scenes found (2 too short) to {out}\n"
    cfg = DatasetConfig("re10k", root=re10k_root, split="test", frames=(2, 4))
    assert read_scene_list(out) == make_scene_list(cfg, count=4, seed=3)[0]
    text = out.read_text()
    assert str(tmp_path) not in text  # the root is recorded by its folder name only
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[1] == (
        "#   worldwarp eval list --dataset re10k --root ROOT --split test --count 4 --list-seed 3 --frames 2,4 "
        "--stride 1 --out re10k_test.txt"
    )
    assert "# dataset: re10k  split: test  root: RealEstate10K (folder name; ROOT above)" in header
    assert "# scenes: 8 found, 2 too short, 4 listed (seed 3)" in header
    assert "# frames: 2,4  stride: 1" in header
    assert any(line.startswith("# rule: a clip is kept when it has more than 4 frames") for line in header)
    # bad input: one line on stderr, exit 2, nothing written
    bad = tmp_path / "bad.txt"
    assert main([*args, "--count", "0", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "worldwarp eval: error: argument --count: must lie in [1, 10000000], got '0' (see worldwarp eval --help)\n"
    )
    assert not bad.exists()
    assert main(["eval", "list", "extra.json", "--dataset", "re10k", "--out", str(bad)]) == 2
    assert "eval list takes no files" in capsys.readouterr().err
