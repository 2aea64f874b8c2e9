"""Evaluation scenes: real clips with ground-truth frames and cameras, loaded lazily.

Datasets (folder layouts in docs/evaluation.md):

* ``re10k``: RealEstate10K. ``ROOT/<split>/<clip>.txt`` camera files (the dataset's own format) and the
  extracted frames in ``ROOT/<split>/<clip>/`` (named ``<timestamp>.png|jpg`` after the camera lines, or any
  names whose sorted order is the camera order). Default frames: 50 and 200.
* ``dl3dv``: DL3DV (or any nerfstudio capture): ``ROOT/<split>/<scene>/[nerfstudio/]transforms.json``; the
  first image folder found among the path in the file, ``images_4``, ``images_2``, ``images_8`` is read.
  Default frames: 50 and 200.
* ``transforms``: every folder holding a ``transforms.json`` under ``ROOT`` (or ROOT itself); optional
  ``depth_file_path`` entries give z-depth ``.npy`` maps. The committed list ``lists/real_dev.txt`` covers the
  two development scenes of ``shared/data/scenes`` (use ``--dataset transforms --split real_dev``).
* ``procedural``: the procedural suites of :mod:`worldwarp.scenes.suites` (``--split dev|test``; exact depth
  and cameras; rendered once into the cache folder ``ROOT``). Default frames: 50 and 199 (clips of 200).

Clip frames are re-indexed so that the start frame is 0. Scene lists live in ``eval/lists/<name>.txt``; each
line is ``scene_id frames [start]`` with ``frames`` comma-separated (``-`` = the dataset default).
:func:`make_scene_list` and :func:`write_scene_list` (``worldwarp eval list``) make such a list for a dataset.
transforms.json poses are c2w with OpenGL axes and are converted to OpenCV axes here (flip camera y and z);
lens distortion coefficients are ignored (a pixel or two for the development scenes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.errors import InputError
from worldwarp.io.atomic import atomic_write_text

__all__ = [
    "DATASETS",
    "DatasetConfig",
    "EvalScene",
    "ListEntry",
    "default_list",
    "load_dataset",
    "load_re10k_clip",
    "load_transforms_scene",
    "make_scene_list",
    "read_scene_list",
    "with_start_depth",
    "write_scene_list",
]

LISTS_DIR = Path(__file__).with_name("lists")
DATASETS = ("re10k", "dl3dv", "transforms", "procedural")
# the procedural suites render 200-frame clips (0..199), so their "long" frame is the last one, 199
DEFAULT_FRAMES = {"re10k": (50, 200), "dl3dv": (50, 200), "procedural": (50, 199)}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


@dataclass
class EvalScene:
    """One evaluation clip: cameras for every frame, lazily loaded frames (and depth), frames to score.

    Attributes:
        name: scene id (unique within the dataset).
        dataset: dataset name.
        cameras: Cameras for frames 0..M-1 (frame 0 = the start frame) at the evaluation resolution.
        frame_indices: frames to score (the protocol's "short" and "long" frame), each < M.
        load_frame: index -> (3, H, W) float32 image in [0, 1] (ground truth; methods may read index 0 only).
        load_depth: index -> (H, W) float32 z-depth (0 = invalid), or None when the dataset has no depth.
        skip_reason: set when the scene cannot be evaluated (too short, missing files); the runner records it.
    """

    name: str
    dataset: str
    cameras: Cameras
    frame_indices: tuple[int, ...]
    load_frame: Callable[[int], Tensor]
    load_depth: Callable[[int], Tensor] | None = None
    skip_reason: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.cameras)

    @property
    def height(self) -> int:
        return self.cameras.height

    @property
    def width(self) -> int:
        return self.cameras.width

    def frames(self, indices: Sequence[int]) -> Tensor:
        """Ground-truth frames (n, 3, H, W) at ``indices``."""
        return torch.stack([self.load_frame(int(i)) for i in indices])

    @property
    def start_image(self) -> Tensor:
        """(3, H, W) frame 0."""
        return self.load_frame(0)

    @property
    def start_depth(self) -> Tensor | None:
        """(H, W) z-depth of frame 0, or None."""
        return None if self.load_depth is None else self.load_depth(0)

    def prefix(self, count: int) -> EvalScene:
        """The same scene with cameras for frames 0..count-1 only (what a method gets to see)."""
        if count > self.num_frames:
            raise InputError(f"scene {self.name}: {count} frames requested, clip has {self.num_frames}")
        return replace(self, cameras=self.cameras[:count])


@dataclass
class DatasetConfig:
    """Which scenes to evaluate and at what size.

    Attributes:
        name: one of :data:`DATASETS`.
        root: dataset folder (not needed for ``procedural``).
        split: split folder (re10k, dl3dv) or list name; the list ``lists/<name>_<split>.txt`` (or
            ``lists/<split>.txt``) is used when it exists, else every scene found under the root.
        list_file: explicit scene list (overrides the split's list).
        frames: frames to score, overriding the list and the dataset default.
        size: (height, width) evaluation resolution (cover-resize and centre crop); None keeps the source size.
        stride: take every ``stride``-th source frame (the clip's frame k is source frame start + k * stride).
        max_scenes: evaluate only the first scenes of the list.
        start_depth: where the start frame's depth comes from: ``"given"`` (the dataset's depth; scenes without
            it have none), ``"stereo"`` (plane-sweep stereo, :mod:`worldwarp.geometry.stereo`, of frame 0 against
            frames 1..``stereo_sources`` with the dataset's cameras, even where depth is given) or ``"auto"``
            (given where present, stereo otherwise). Stereo reads those ground-truth frames to measure the start
            frame's geometry only (what RealEstate10K and DL3DV, which ship no depth, need without depth weights);
            the scored frames lie further on.
        stereo_sources: how many frames after the start frame the stereo estimate may use.
    """

    name: str
    root: Path | None = None
    split: str = "test"
    list_file: Path | None = None
    frames: tuple[int, ...] | None = None
    size: tuple[int, int] | None = None
    stride: int = 1
    max_scenes: int | None = None
    start_depth: Literal["given", "stereo", "auto"] = "given"
    stereo_sources: int = 8

    def __post_init__(self) -> None:
        if self.start_depth not in ("given", "stereo", "auto"):
            raise InputError(f"unknown start depth {self.start_depth!r}: choose given, stereo or auto")
        if self.stereo_sources < 1:
            raise InputError(f"stereo_sources must be >= 1, got {self.stereo_sources}")
        if self.name not in DATASETS:
            raise InputError(f"unknown dataset {self.name!r}: choose one of {', '.join(DATASETS)}")
        if self.stride < 1:
            raise InputError(f"stride must be >= 1, got {self.stride}")
        if self.frames is not None and (not self.frames or min(self.frames) < 1):
            raise InputError(f"frames to score must be >= 1, got {self.frames}")
        if self.size is not None and min(self.size) < 16:
            raise InputError(f"evaluation size must be at least 16x16, got {self.size}")


@dataclass(frozen=True)
class ListEntry:
    """One line of a scene list: scene id, frames to score (None = default) and start frame."""

    scene: str
    frames: tuple[int, ...] | None
    start: int = 0


def read_scene_list(path: Path) -> list[ListEntry]:
    """Parse a scene list (``scene frames [start]`` per line, ``#`` comments); errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: scene list not found")
    out: list[ListEntry] = []
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        toks = line.split()
        if len(toks) > 3:
            raise InputError(f"{path}:{no}: expected 'scene frames [start]', found {len(toks)} fields")
        frames: tuple[int, ...] | None = None
        try:
            if len(toks) > 1 and toks[1] != "-":
                frames = tuple(int(x) for x in toks[1].split(","))
            start = int(toks[2]) if len(toks) > 2 else 0
        except ValueError:
            raise InputError(f"{path}:{no}: frames must be comma-separated integers and start an integer") from None
        if (frames is not None and min(frames) < 1) or start < 0:
            raise InputError(f"{path}:{no}: frames must be >= 1 and start >= 0")
        out.append(ListEntry(toks[0], frames, start))
    return out


def default_list(name: str, split: str) -> Path | None:
    """The committed list for a dataset and split, if there is one."""
    for cand in (LISTS_DIR / f"{name}_{split}.txt", LISTS_DIR / f"{split}.txt"):
        if cand.is_file():
            return cand
    return None


# ---------------------------------------------------------------------------------------------- image helpers
def _prepare_size(source: tuple[int, int], size: tuple[int, int] | None):
    from worldwarp.io.images import plan_prepare

    return None if size is None or tuple(size) == tuple(source) else plan_prepare(source, *size)


def _frame_loader(paths: list[Path], size: tuple[int, int] | None, source: tuple[int, int]) -> Callable[[int], Tensor]:
    def load(i: int) -> Tensor:
        from worldwarp.io.images import load_image, prepare_image

        img, _ = load_image(paths[i])
        if tuple(img.shape[-2:]) != source:
            raise InputError(f"{paths[i]}: image is {img.shape[-1]}x{img.shape[-2]}, expected {source[1]}x{source[0]}")
        if size is not None and tuple(size) != source:
            img, _ = prepare_image(img, *size)
        return img.float()

    return load


def _depth_loader(
    paths: list[Path | None], size: tuple[int, int] | None, source: tuple[int, int], scale: float
) -> Callable[[int], Tensor] | None:
    if not paths or any(p is None for p in paths):
        return None

    def load(i: int) -> Tensor:
        from worldwarp.io.images import resize_image

        path = paths[i]
        assert path is not None
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: cannot read depth ({type(e).__name__})") from e
        d = torch.from_numpy(np.asarray(d, dtype=np.float32)).squeeze()
        if d.ndim != 2:
            raise InputError(f"{path}: depth must be a 2-D array, got shape {tuple(d.shape)}")
        d = d * scale
        d = torch.where(torch.isfinite(d) & (d > 0), d, torch.zeros_like(d))
        if tuple(d.shape) != source:  # depth stored at another resolution: nearest resample to the image grid
            d = resize_image(d[None], *source, mode="nearest")[0]
        prep = _prepare_size(source, size)
        if prep is not None:
            d = resize_image(d[None], *prep.resized, mode="nearest")[0]
            d = d[prep.top : prep.top + prep.height, prep.left : prep.left + prep.width]
        return d.contiguous()

    return load


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im) if im.getexif().get(0x0112, 1) != 1 else im
            return im.height, im.width
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read image ({type(e).__name__})") from e


def _select(
    name: str,
    dataset: str,
    cameras: Cameras,
    frame_paths: list[Path],
    depth_paths: list[Path | None],
    depth_scale: float,
    entry: ListEntry,
    config: DatasetConfig,
) -> EvalScene:
    """Cut the clip at ``entry.start`` with ``config.stride``, resize, and attach loaders."""
    frames = config.frames or entry.frames or DEFAULT_FRAMES.get(dataset)
    keep = list(range(entry.start, len(frame_paths), config.stride))
    if not keep:
        raise InputError(f"scene {name}: start frame {entry.start} lies beyond its {len(frame_paths)} frames")
    source = (cameras.height, cameras.width)
    cams = cameras[keep]
    skip = None
    if frames is None:
        frames = ((len(keep) - 1) // 2, len(keep) - 1)  # middle and last frame
    if max(frames) >= len(keep):
        skip = f"clip has {len(keep)} frames from start {entry.start} (stride {config.stride}), needs {max(frames) + 1}"
    prep = _prepare_size(source, config.size)
    if prep is not None:
        cams = prep.apply_to_cameras(cams)
    paths = [frame_paths[k] for k in keep]
    dpaths = [depth_paths[k] for k in keep] if depth_paths else []
    scene = EvalScene(
        name=name,
        dataset=dataset,
        cameras=cams,
        frame_indices=tuple(int(f) for f in frames),
        load_frame=_frame_loader(paths, config.size, source),
        load_depth=_depth_loader(dpaths, config.size, source, depth_scale),
        skip_reason=skip,
        meta={"start": entry.start, "stride": config.stride},
    )
    return with_start_depth(scene, config)


def with_start_depth(scene: EvalScene, config: DatasetConfig) -> EvalScene:
    """``scene`` with its start depth chosen by ``config.start_depth`` (recorded in ``meta["start_depth"]``).

    For stereo, ``load_depth`` estimates frame 0 once (on first use) and refuses other frames.
    """
    if config.start_depth == "given" or (config.start_depth == "auto" and scene.load_depth is not None):
        return replace(scene, meta={**scene.meta, "start_depth": "given" if scene.load_depth else "none"})
    n = min(config.stereo_sources, scene.num_frames - 1)
    if n < 1:
        return replace(scene, load_depth=None, meta={**scene.meta, "start_depth": "none (one frame, no stereo)"})
    cached: list[Tensor] = []

    def load(i: int) -> Tensor:
        if i != 0:
            raise InputError(f"scene {scene.name}: stereo depth is estimated for the start frame only, not frame {i}")
        if not cached:
            from worldwarp.geometry.stereo import StereoDepthConfig, plane_sweep_depth

            images = scene.frames(range(n + 1))  # (n + 1, 3, H, W)
            cams = scene.cameras[list(range(n + 1))]
            depth, valid, _ = plane_sweep_depth(images[0], images[1:], cams[[0]], cams[list(range(1, n + 1))],
                                                StereoDepthConfig())  # fmt: skip
            cached.append(torch.where(valid, depth, torch.zeros_like(depth)).float().contiguous())
        return cached[0]

    return replace(scene, load_depth=load, meta={**scene.meta, "start_depth": f"stereo (frames 0-{n})"})


# ---------------------------------------------------------------------------------------------- transforms.json
def _find_transforms(folder: Path) -> Path | None:
    for cand in (folder / "transforms.json", folder / "nerfstudio" / "transforms.json"):
        if cand.is_file():
            return cand
    return None


def _resolve_image(base: Path, file_path: str) -> Path | None:
    p = base / file_path
    cands = [p]
    parts = Path(file_path).parts
    if len(parts) > 1:  # nerfstudio keeps full-size paths; DL3DV ships downscaled copies in images_N
        cands += [base / f"{parts[0]}_{k}" / Path(*parts[1:]) for k in (4, 2, 8)]
    if not p.suffix:
        cands = [c.with_suffix(s) for c in cands for s in _IMAGE_SUFFIXES]
    return next((c for c in cands if c.is_file()), None)


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def load_transforms_scene(
    folder: Path, config: DatasetConfig, entry: ListEntry | None = None, dataset: str = "transforms"
) -> EvalScene:
    """Load a nerfstudio/instant-ngp ``transforms.json`` scene (OpenGL c2w -> OpenCV c2w).

    Frames are ordered by file name (natural order). Intrinsics come from the top level or per frame
    (``fl_x fl_y cx cy w h``) and are scaled to the actual image size when the images were downscaled.
    """
    folder = Path(folder)
    path = _find_transforms(folder)
    if path is None:
        raise InputError(f"{folder}: no transforms.json (nor nerfstudio/transforms.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{path}: no 'frames' list")
    frames = sorted(frames, key=lambda f: _natural_key(str(f.get("file_path", ""))))
    base = path.parent
    c2ws, Ks, paths, dpaths = [], [], [], []
    size: tuple[int, int] | None = None
    for i, fr in enumerate(frames):
        loc = f"{path} (frame {i}, {fr.get('file_path')})"

        def get(key: str, fr: dict = fr, loc: str = loc) -> float:
            v = fr.get(key, meta.get(key))
            if v is None:
                raise InputError(f"{loc}: missing '{key}'")
            return float(v)

        img = _resolve_image(base, str(fr.get("file_path", "")))
        if img is None:
            raise InputError(f"{loc}: image file not found")
        if size is None:
            size = _image_size(img)
        h_json, w_json = get("h"), get("w")
        sx, sy = size[1] / w_json, size[0] / h_json
        fx = get("fl_x") * sx
        fy = (get("fl_y") if "fl_y" in fr or "fl_y" in meta else get("fl_x")) * sy
        K = torch.tensor([[fx, 0.0, get("cx") * sx], [0.0, fy, get("cy") * sy], [0.0, 0.0, 1.0]], dtype=torch.float64)
        try:
            m = torch.tensor(fr["transform_matrix"], dtype=torch.float64)
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{loc}: missing or malformed transform_matrix") from None
        if m.shape == (3, 4):
            m = torch.cat([m, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
        if m.shape != (4, 4):
            raise InputError(f"{loc}: transform_matrix must be 4x4, got {tuple(m.shape)}")
        c2ws.append(m @ _OPENGL_TO_OPENCV)
        Ks.append(K)
        paths.append(img)
        dp = fr.get("depth_file_path")
        dpaths.append(base / dp if dp else None)
    assert size is not None
    cams = Cameras(torch.stack(c2ws), torch.stack(Ks), *size)
    scale = float(meta.get("depth_unit_scale_factor", 1.0))
    return _select(folder.name, dataset, cams, paths, dpaths, scale, entry or ListEntry(folder.name, None), config)


# ---------------------------------------------------------------------------------------------- RealEstate10K
def load_re10k_clip(txt: Path, frames_dir: Path, config: DatasetConfig, entry: ListEntry | None = None) -> EvalScene:
    """Load a RealEstate10K clip: its camera file and its folder of extracted frames."""
    from worldwarp.trajectory.formats.re10k import parse_re10k

    txt, frames_dir = Path(txt), Path(frames_dir)
    if not frames_dir.is_dir():
        raise InputError(f"{frames_dir}: frames folder of clip {txt.stem} not found")
    images = sorted((p for p in frames_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES), key=lambda p: p.name)
    if not images:
        raise InputError(f"{frames_dir}: no frames (.png/.jpg)")
    size = _image_size(images[0])
    clip = parse_re10k(txt, height=size[0], width=size[1])
    by_stem = {p.stem: p for p in images}
    found = [str(t) in by_stem for t in clip.timestamps]
    if all(found):
        paths = [by_stem[str(t)] for t in clip.timestamps]
    elif any(found):
        missing = clip.timestamps[found.index(False)]
        raise InputError(f"{frames_dir}: no frame named {missing}.* for the camera line of that timestamp")
    elif len(images) == len(clip.timestamps):  # names are not timestamps: take them in sorted order
        paths = images
    else:
        raise InputError(
            f"{frames_dir}: {len(images)} frames for {len(clip.timestamps)} camera lines in {txt.name}, and the "
            "file names are not the timestamps"
        )
    entry = entry or ListEntry(txt.stem, None)
    return _select(txt.stem, "re10k", clip.cameras, paths, [], 1.0, entry, config)


# ---------------------------------------------------------------------------------------------- procedural
def _procedural_scenes(config: DatasetConfig, entries: list[ListEntry] | None) -> list[EvalScene]:
    """Scenes of the procedural suite ``config.split`` ("dev"/"test"), rendered once into ``config.root``.

    :func:`worldwarp.scenes.suites.render_suite_scene` caches each clip in ``ROOT/<name>_<H>x<W>/`` in the
    transforms.json layout; the first run renders (slow on CPU), later runs and shards read the cache.
    """
    from worldwarp.scenes.suites import render_suite_scene, suite

    if config.root is None:
        raise InputError("dataset procedural needs --root: the folder where rendered suite clips are cached")
    height, width = config.size or (256, 384)
    names = [e.name for e in suite(config.split)]
    wanted = entries if entries is not None else [ListEntry(n, None) for n in names]
    scenes = []
    for e in wanted[: config.max_scenes]:
        if e.scene not in names:
            raise InputError(f"suite {config.split!r} has no scene {e.scene!r}")
        render_suite_scene(config.split, names.index(e.scene), config.root, height, width)
        folder = Path(config.root) / f"{e.scene}_{height}x{width}"
        exact = replace(config, size=None)  # rendered at the evaluation size already
        scene = load_transforms_scene(folder, exact, e, dataset="procedural")
        scenes.append(replace(scene, name=e.scene))
    return scenes


# ---------------------------------------------------------------------------------------------- entry point
def _dataset_base(config: DatasetConfig) -> Path:
    """The folder that holds a real dataset's scenes (re10k: its ``<clip>.txt`` files), checked to exist."""
    if config.root is None:
        raise InputError(f"dataset {config.name} needs --root (the dataset folder)")
    root = Path(config.root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    if config.name == "re10k":
        split_dir = root / config.split
        if not split_dir.is_dir():
            raise InputError(f"{split_dir}: split folder not found (expected ROOT/<split>/<clip>.txt)")
        return split_dir
    base = root / config.split if config.name == "dl3dv" else root
    if not base.is_dir():
        raise InputError(f"{base}: dataset folder not found")
    return base


def _scan_scenes(config: DatasetConfig, base: Path) -> tuple[Path, list[ListEntry]]:
    """Every scene under ``base`` (no list), sorted by name, and the folder its names are relative to.

    A transforms/dl3dv ``base`` that is itself a scene is its own single entry, relative to its parent.
    """
    if config.name == "re10k":
        return base, [ListEntry(p.stem, None) for p in sorted(base.glob("*.txt"))]
    if _find_transforms(base) is not None:
        return base.parent, [ListEntry(base.name, None)]
    names = sorted(p.name for p in base.iterdir() if p.is_dir() and _find_transforms(p) is not None)
    if not names:
        raise InputError(f"{base}: no scene folders with a transforms.json")
    return base, [ListEntry(n, None) for n in names]


def _load_entry(config: DatasetConfig, base: Path, entry: ListEntry) -> EvalScene:
    """Load one scene of a real dataset named by ``entry`` (relative to ``base``)."""
    if config.name == "re10k":
        txt = base / f"{entry.scene}.txt"
        if not txt.is_file():
            raise InputError(f"{txt}: camera file of clip {entry.scene} not found")
        return load_re10k_clip(txt, base / entry.scene, config, entry)
    return load_transforms_scene(base / entry.scene, config, entry, dataset=config.name)


def load_dataset(config: DatasetConfig) -> list[EvalScene]:
    """All scenes of a dataset split, in list order (or sorted by name when there is no list)."""
    list_file = config.list_file or default_list(config.name, config.split)
    entries = read_scene_list(list_file) if list_file else None
    if config.name == "procedural":
        scenes = _procedural_scenes(config, entries)
        return scenes[: config.max_scenes] if config.max_scenes else scenes
    base = _dataset_base(config)
    if entries is None:
        base, entries = _scan_scenes(config, base)
    return [_load_entry(config, base, e) for e in entries[: config.max_scenes]]


# ---------------------------------------------------------------------------------------------- scene lists
def make_scene_list(
    config: DatasetConfig, count: int | None = None, seed: int = 0
) -> tuple[list[ListEntry], dict[str, int]]:
    """The scene list of a dataset split: every scene long enough for its frames, or ``count`` of them.

    Scenes are enumerated as :func:`load_dataset` does without a list (committed lists and
    ``config.list_file`` are ignored). The frames to score are ``config.frames`` or the dataset default; a
    clip is kept when it has more than ``max(frames)`` frames after ``config.stride`` (start frame 0). With
    ``count``, that many of the kept scenes are drawn without replacement by
    ``numpy.random.default_rng(seed).choice``. Entries carry their frames explicitly and are sorted by name.

    Returns:
        (entries, counts) with counts ``found`` (scenes found), ``too_short`` and ``kept`` (entries returned).

    Raises:
        InputError: a procedural dataset, no frames to score, ``count < 1``, a negative seed, a root that is
            itself a scene, or no scene long enough.
    """
    if config.name == "procedural":
        raise InputError("procedural suites are defined by their seed: no scene list needed")
    frames = config.frames or DEFAULT_FRAMES.get(config.name)
    if frames is None:
        raise InputError(f"dataset {config.name} has no default frames to score: give them (e.g. --frames 50,200)")
    frames = tuple(int(f) for f in frames)
    if count is not None and count < 1:
        raise InputError(f"count must be >= 1, got {count}")
    if seed < 0:
        raise InputError(f"list seed must be >= 0, got {seed}")
    base = _dataset_base(config)
    if config.name != "re10k" and _find_transforms(base) is not None:
        raise InputError(f"{base} is itself a scene: give the folder that holds the scenes as the root")
    base, found = _scan_scenes(config, base)
    probe = replace(config, frames=frames, size=None, list_file=None, max_scenes=None)
    needed = max(frames)
    long_enough = sorted(e.scene for e in found if _load_entry(probe, base, e).num_frames > needed)
    if not long_enough:
        raise InputError(
            f"{base}: none of the {len(found)} scenes found is long enough: frame {needed} needs {needed + 1} "
            f"frames (stride {config.stride})"
        )
    chosen = long_enough
    if count is not None:
        if count > len(long_enough):
            raise InputError(
                f"count {count} is more than the {len(long_enough)} scenes long enough (of {len(found)} found)"
            )
        pick = np.random.default_rng(seed).choice(len(long_enough), size=count, replace=False)
        chosen = sorted(long_enough[int(i)] for i in pick)
    counts = {"found": len(found), "too_short": len(found) - len(long_enough), "kept": len(chosen)}
    return [ListEntry(name, frames, 0) for name in chosen], counts


def write_scene_list(path: Path, entries: Sequence[ListEntry], header: Sequence[str]) -> None:
    """Write a scene list atomically: ``header`` lines as ``# `` comments, then ``scene  frames  start`` lines.

    :func:`read_scene_list` parses the file back to ``entries``.
    """
    lines = [f"# {line}".rstrip() for text in header for line in (str(text).splitlines() or [""])]
    width = max((len(e.scene) for e in entries), default=0)
    for e in entries:
        if not e.scene or "#" in e.scene or any(c.isspace() for c in e.scene):
            raise InputError(f"scene id {e.scene!r} cannot go in a scene list (empty, whitespace or '#')")
        if (e.frames is not None and (not e.frames or min(e.frames) < 1)) or e.start < 0:
            raise InputError(f"scene {e.scene}: frames must be >= 1 and start >= 0, got {e.frames} and {e.start}")
        frames = "-" if e.frames is None else ",".join(str(int(f)) for f in e.frames)
        lines.append(f"{e.scene:<{width}}  {frames}  {int(e.start)}")
    atomic_write_text(path, "\n".join(lines) + "\n")
