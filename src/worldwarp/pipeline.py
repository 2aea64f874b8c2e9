"""WorldWarpPipeline: the chunk loop of the method (DESIGN.md §1), one numbered step per stage.

For each chunk of ``chunk_frames`` frames whose first frames are the history (the start image for chunk 0, the
last ``overlap`` generated frames afterwards):

1. **History**: frames, depths and cameras of the history frames.
2. **Geometry**: depth of the history frames: the start depth (given, or estimated here), the cache's rendered
   depth of generated frames where they were warped, and the depth estimator's (aligned to it) where they were
   filled (without an estimator: a background-biased fill of the rendered depth, made in step 6).
3. **3DGS cache**: fit Gaussians to the history frames (or, for the ablations, a plain point cloud / nothing).
4. **Forward warp**: render the cache at the chunk's new cameras -> prior RGB, validity mask, depth.
5. **Fill** (:mod:`worldwarp.fill`): ST-Diff encodes prior + history, reduces the mask to the latent grid, fills
   holes and revises warped regions with per-token noise levels and decodes (or, for the classical baseline,
   OpenCV inpainting of the prior).
6. **Append** the new frames and their depths, save the chunk atomically, move on.

Every stage is timed (``ChunkRecord.timings``; the stages are timed back to back and add up to ``total``).
:meth:`WorldWarpPipeline.from_pretrained` loads a denoiser by name; calling the pipeline takes files, specs or
tensors (``pipe(image="photo.jpg", trajectory="orbit+zoom_in", num_frames=100)``).

The pipeline is stateful only through :class:`GenerationState`, so interfaces can generate chunk by chunk and
roll back (:meth:`WorldWarpPipeline.start`, :meth:`WorldWarpPipeline.step`, :meth:`GenerationState.rollback`).
Frames are quantised to 8 bits as they are made, so a run resumed from its saved chunks reproduces an
uninterrupted run exactly.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from worldwarp.cameras import Cameras
from worldwarp.diffusion.denoisers.base import Denoiser
from worldwarp.diffusion.sampler import SamplerConfig
from worldwarp.errors import InputError
from worldwarp.fill import FillStrategy, fill_for
from worldwarp.splat.cache import CacheConfig, fit_cache
from worldwarp.splat.gaussians import Gaussians
from worldwarp.start_memory import StartMemoryConfig, recall_start_frame
from worldwarp.warp import WarpConfig, WarpResult, forward_warp, point_cloud_warp

__all__ = [
    "PIPELINE_PRESETS",
    "ChunkRecord",
    "GenerationState",
    "PipelineConfig",
    "PipelineOutput",
    "WorldWarpPipeline",
    "chunk_layout",
    "default_preset",
    "fill_depth",
    "quantize",
]

CacheMode = Literal["gaussians", "points", "none"]
FillMode = Literal["diffusion", "inpaint", "push_pull"]
STATE_VERSION = 1
PIPELINE_PRESETS = ("release", "paper", "cpu")


def default_preset(denoiser: str) -> str:
    """The preset a denoiser runs when none is named: ``"release"`` for ``wan``, ``"cpu"`` for the embedded model."""
    return "release" if denoiser == "wan" else "cpu"


@dataclass
class PipelineConfig:
    """Every number of the method.

    The field defaults are the paper's numbers with the embedded model's rules; use a preset: :meth:`release` (the
    authors' released demo, the default for Wan), :meth:`paper` (the paper's chunking and strength on the same
    machinery) or :meth:`cpu` (the embedded CPU model). docs/wan.md tabulates them.

    Attributes:
        height, width: working resolution (multiples of the denoiser's space factor times its patch size).
        chunk_frames: frames per chunk, history included (paper 49 = 1 + 4 * 12 for Wan's 4x time compression).
        overlap: history frames carried from one chunk to the next (paper 5).
        sampler: ST-Diff sampling (steps 50, shift 5, strength 0.8, CFG 5, noise mode).
        cache: the 3DGS cache fit (500 Adam steps, paper learning rates and loss).
        warp: forward warp and validity mask (alpha 0.5, 10% reprojection, 15x15 erosion at 480).
        start_memory: the start-frame memory (off in the paper and release presets; :mod:`worldwarp.start_memory`).
        cache_mode: ``"gaussians"`` (the method), ``"points"`` (point-cloud cache ablation), ``"none"``.
        fill: ``"diffusion"`` (ST-Diff), ``"inpaint"`` (classical baseline: OpenCV inpainting, no revision) or
            ``"push_pull"`` (classical, no OpenCV: push-pull interpolation of the holes,
            :mod:`worldwarp.diffusion.hole_guess`).
        prompt, negative_prompt: text conditioning (ignored by the embedded model).
        seed: seeds every chunk (chunk k uses ``seed`` and ``k``), so runs are reproducible and resumable.
        progress: show progress bars.
    """

    height: int = 480
    width: int = 720
    chunk_frames: int = 49
    overlap: int = 5
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    warp: WarpConfig = field(default_factory=WarpConfig)
    start_memory: StartMemoryConfig = field(default_factory=StartMemoryConfig)
    cache_mode: CacheMode = "gaussians"
    fill: FillMode = "diffusion"
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("height", "width", "chunk_frames", "overlap", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise InputError(f"PipelineConfig.{name} must be a whole number, got {v!r}")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"seed must lie in [0, {2**32 - 1}], got {self.seed}")
        if self.height <= 0 or self.width <= 0:
            raise InputError(f"resolution must be positive, got {self.height}x{self.width}")
        if self.overlap < 1 or self.chunk_frames <= self.overlap:
            raise InputError(f"need 1 <= overlap < chunk_frames, got overlap {self.overlap}, chunk {self.chunk_frames}")
        if self.cache_mode not in ("gaussians", "points", "none"):
            raise InputError(f"unknown cache mode {self.cache_mode!r}; choose gaussians, points or none")
        if self.fill not in ("diffusion", "inpaint", "push_pull"):
            raise InputError(f"unknown fill mode {self.fill!r}; choose diffusion, inpaint or push_pull")

    @classmethod
    def release(cls, **overrides: Any) -> PipelineConfig:
        """The authors' release (its Gradio demo's defaults) as far as this pipeline can express them.

        480x720, 81-frame chunks with 1 history frame, strength 0.6, 50 steps, shift 5, CFG 5 against the release's
        negative prompt; the sigma grid of diffusers' ``FlowMatchEulerDiscreteScheduler``, the release's start
        index, mask reduction and patch levels (:mod:`worldwarp.diffusion.latent_grid`); erosion with zero padding;
        a 3DGS cache of at most 50k random pixels per frame, SH degree 3, scales = RMS of the 3-NN distances,
        opacity 0.9999, absolute mean learning rate, 500 steps. What remains different is listed in docs/wan.md.
        """
        from worldwarp.diffusion.denoisers.wan import RELEASE_NEGATIVE_PROMPT

        base: dict[str, Any] = dict(
            height=480,
            width=720,
            chunk_frames=81,
            overlap=1,
            sampler=SamplerConfig(
                steps=50,
                shift=5.0,
                strength=0.6,
                guidance_scale=5.0,
                sigma_grid="scheduler",
                start_rule="release",
                mask_reduction="release",
                patch_levels="release",
            ),
            cache=CacheConfig(
                steps=500,
                max_points_per_frame=50_000,
                sampling="random",
                init_scale="knn_rms",
                knn=3,
                lr_means_scale="none",
                sh_degree=3,
                init_opacity=0.9999,
            ),
            warp=WarpConfig(erosion_border="zero"),
            negative_prompt=RELEASE_NEGATIVE_PROMPT,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def paper(cls, **overrides: Any) -> PipelineConfig:
        """The paper's numbers (49-frame chunks, 5 history frames, strength 0.8) on the :meth:`release` machinery."""
        release = cls.release()
        base: dict[str, Any] = dict(
            chunk_frames=49, overlap=5, sampler=replace(release.sampler, strength=0.8), cache=release.cache
        )
        base.update(overrides)
        return cls.release(**base)

    @classmethod
    def cpu(cls, **overrides: Any) -> PipelineConfig:
        """The embedded CPU preset: 128x192, 25-frame chunks, one direct model pass (a 2-step grid, strength 0.5,
        shift 5), no CFG, 150 cache steps.

        The embedded model (a preconditioned U-Net, docs/model_card.md) is used as a one-pass predictor (solver
        ``"direct"``): the holes start from a push-pull interpolation of the warp at level 1
        (``hole_init="push_pull"``), the warped cells from the warp itself at the grid's level 5/6
        (``revise_init="prior"``, strength 0.5 of a 2-step grid with shift 5), and one evaluation returns the
        guess and the warp plus the model's corrections: the fill and the revision of the warp, deterministic. The
        model is trained for exactly that pass; strength 0 keeps the warp unrevised, and more steps or noised
        warps visit levels it does not denoise. The settings were chosen on the procedural "dev" suite at 128x192
        and frame 199 (docs/training.md, docs/benchmarks/embedded_model.md). The paper preset keeps 0.8 (Wan).
        The cache's inverse-depth weight 0.1 (paper 0.01) was chosen the same way: with only 150 steps the
        fitted depth stays biased toward the camera at grazing surfaces and the reprojection check then drops
        correct pixels; the stronger depth term gave the best dev PSNR (docs/benchmarks/strength.md).
        The reprojection check of the warp is off: after 150 steps the fitted depth of far content (a view through
        a window, the far wall) is off by more than its 10 % tolerance, so the check dropped warped pixels that are
        far better than any fill this model makes; without it PSNR and SSIM on the dev suite rose at frames 50 and
        199 (docs/training.md, section *Warp tolerance*). The release and paper presets keep the check.
        The start-frame memory is on (:mod:`worldwarp.start_memory`): every chunk's cache is fitted to renders of
        renders, so detail fades chunk by chunk, and the memory puts the start image's own pixels back wherever the
        start view sees the surface; chosen on the dev suite (docs/training.md, section *Session 11*). The
        release and paper presets leave it off (the authors' method).
        """
        base: dict[str, Any] = dict(
            height=128,
            width=192,
            chunk_frames=25,
            overlap=5,
            sampler=SamplerConfig(steps=2, shift=5.0, strength=0.5, guidance_scale=1.0, solver="direct"),
            cache=CacheConfig(steps=150, max_points_per_frame=12_000, w_depth=0.1),
            warp=WarpConfig(reprojection=False),
            start_memory=StartMemoryConfig(enabled=True),
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PipelineConfig:
        presets = {"release": cls.release, "paper": cls.paper, "cpu": cls.cpu}
        if name not in presets:
            raise InputError(f"unknown pipeline preset {name!r}; choose one of {', '.join(presets)}")
        return presets[name](**overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def chunk_layout(num_frames: int, chunk_frames: int, overlap: int) -> list[tuple[int, int, int]]:
    """``(start, history, end)`` of each chunk: frames ``start..end-1``, the first ``history`` of them given.

    Chunk 0 starts at frame 0 with one history frame (the start image); chunk k > 0 starts ``overlap`` frames
    before the end of chunk k - 1. ``end`` may exceed ``num_frames`` on the last chunk (the trajectory is
    extended there and the extra frames are dropped).
    """
    if num_frames < 2:
        raise InputError(f"need at least 2 frames, got {num_frames}")
    out = [(0, 1, chunk_frames)]
    while out[-1][2] < num_frames:
        start = out[-1][2] - overlap
        out.append((start, overlap, start + chunk_frames))
    return out


def quantize(frames: Tensor) -> Tensor:
    """Round frames in [0, 1] to the nearest 8-bit level (what is saved is exactly what is used)."""
    return (frames.clamp(0, 1) * 255).round() / 255


def fill_depth(depth: Tensor, valid: Tensor, max_iters: int | None = None) -> Tensor:
    """Fill invalid pixels of z-depth maps (N, H, W) from their valid neighbours, favouring the background.

    Holes left by a forward warp are mostly disocclusions of farther surfaces, so each pass of a 3x3 max filter
    grows the farthest neighbouring depth into the hole. Pixels that no valid pixel reaches take the median of
    the valid depth (or 1 when there is none).
    """
    import torch.nn.functional as F

    d = torch.where(valid, depth, torch.zeros_like(depth))[:, None]  # (N, 1, H, W)
    known = valid[:, None].clone()
    iters = max_iters if max_iters is not None else max(depth.shape[-2:])
    for _ in range(iters):
        if bool(known.all()):
            break
        grown = F.max_pool2d(d, 3, stride=1, padding=1)
        reach = F.max_pool2d(known.to(d.dtype), 3, stride=1, padding=1) > 0
        new = reach & ~known
        d = torch.where(new, grown, d)
        known = known | new
    out = d[:, 0]
    for i in range(out.shape[0]):
        if not bool(known[i].all()):
            vals = depth[i][valid[i]]
            fill = vals.median() if vals.numel() else torch.ones((), dtype=depth.dtype)
            out[i] = torch.where(known[i, 0], out[i], fill)
    return out


@dataclass
class ChunkRecord:
    """What one chunk produced (everything a UI or an output writer needs).

    Attributes:
        index: chunk number k.
        start, history, end: the chunk's frames are ``start..end-1``; the first ``history`` were given.
        new_indices: indices of the frames this chunk appended (after dropping frames past the trajectory).
        prior: (n, 3, H, W) warped prior of the new frames.
        mask: (n, H, W) bool validity mask of the new frames.
        gaussians: the chunk's 3DGS cache (None for the ablations without one, or after a resume).
        timings: seconds per stage.
        prompt: the text prompt the chunk was generated with (its caption when the pipeline has a captioner).
    """

    index: int
    start: int
    history: int
    end: int
    new_indices: list[int]
    prior: Tensor
    mask: Tensor
    gaussians: Gaussians | None
    timings: dict[str, float]
    prompt: str = ""


@dataclass
class GenerationState:
    """The growing video: frames (M, 3, H, W), their depths (M, H, W) and the chunk records."""

    cameras: Cameras  # all target cameras (extended past the end when the last chunk needs it)
    num_frames: int  # frames requested
    frames: Tensor
    depths: Tensor
    chunks: list[ChunkRecord]
    layout: list[tuple[int, int, int]]
    start_depth_given: bool = True  # False: step 2 of chunk 0 estimates the start depth
    start_image: Tensor | None = None  # frame 0 and its depth, kept for the start-frame memory when frames are
    start_depth: Tensor | None = None  # released (None: not known yet, estimated when needed)
    geometry_seconds: float = 0.0  # geometry already spent on the inputs (booked into chunk 0's step 2)
    base: int = 0  # frames before this index were released (saved elsewhere); frames[i] is frame base + i

    @property
    def length(self) -> int:
        """Frames made so far (the start image included), released ones too."""
        return self.base + int(self.frames.shape[0])

    def release(self, keep_from: int | None = None) -> None:
        """Drop from memory what the next chunk does not need (its history, and frames from ``keep_from`` on,
        stay): older frames and depths, and the prior, mask and cache of every chunk but the last (whose mask
        step 2 of the next chunk may use). For long runs whose chunks are saved as they are made; frames before
        :attr:`base` can no longer be rolled back to."""
        cut = self.layout[self.next_chunk][0] if not self.done else self.length
        if keep_from is not None:
            cut = min(cut, keep_from)
        drop = cut - self.base
        if drop > 0:
            self.frames = self.frames[drop:].clone()
            self.depths = self.depths[drop:].clone()
            self.base = cut
        for r in self.chunks[:-1]:  # new empty tensors: a [:0] view would keep the whole storage alive
            if r.prior.shape[0] or r.mask.shape[0] or r.gaussians is not None:
                r.prior = r.prior.new_empty((0, *r.prior.shape[1:]))
                r.mask = r.mask.new_empty((0, *r.mask.shape[1:]))
                r.gaussians = None

    @property
    def done(self) -> bool:
        return len(self.chunks) >= len(self.layout)

    @property
    def next_chunk(self) -> int:
        return len(self.chunks)

    def rollback(self, k: int) -> None:
        """Keep chunks 0..k-1 (k = 0 keeps only the start image)."""
        if not 0 <= k <= len(self.chunks):
            raise InputError(f"cannot roll back to chunk {k}: {len(self.chunks)} chunks exist")
        keep = 1 if k == 0 else self.chunks[k - 1].new_indices[-1] + 1
        if keep <= self.base:
            raise InputError(f"cannot roll back to chunk {k}: its frames were released from memory")
        self.chunks = self.chunks[:k]
        self.frames = self.frames[: keep - self.base]
        self.depths = self.depths[: keep - self.base]


@dataclass
class PipelineOutput:
    """What a run made.

    Attributes:
        frames: (N, 3, H, W) in [0, 1], frame 0 is the start image (8-bit levels).
        depths: (N, H, W) z-depth of every frame.
        cameras: the N cameras of the frames.
        chunks: every chunk's :class:`ChunkRecord` (its cache of Gaussians, warped prior, mask and stage timings).
        timings: seconds of the whole call, back to back: ``inputs`` (reading and preparing what was given as
            files or specs), ``start``, the chunks' stages summed over the chunks this call made (``geometry``,
            ``cache``, ``warp``, ``prompt``, ``diffusion``, ``append``), ``save`` (saving chunks, callbacks), and
            ``total`` (the call's wall time, which the others add up to).
        first: index of ``frames[0]``: after a run with ``release=True`` the frames and depths are those from
            ``first`` on (the rest are in the run's :class:`ChunkStore`).
        fingerprint: the digests (weights, settings, inputs) a run with a ``state_dir`` was checked against.
    """

    frames: Tensor
    depths: Tensor
    cameras: Cameras
    chunks: list[ChunkRecord]
    timings: dict[str, float] = field(default_factory=dict)
    first: int = 0
    fingerprint: dict[str, str] = field(default_factory=dict)

    @property
    def gaussians(self) -> list[Gaussians | None]:
        """The 3DGS cache of every chunk (None where a chunk had none)."""
        return [r.gaussians for r in self.chunks]


class WorldWarpPipeline:
    """One image and a camera path in, a long 3D-consistent video out.

    Args:
        denoiser: any ST-Diff :class:`~worldwarp.diffusion.denoisers.base.Denoiser` (``tiny`` or ``wan``); None
            with ``config.fill == "inpaint"`` (or a ``fill`` that needs none).
        config: the method's numbers (:class:`PipelineConfig`).
        depth_estimator: a :class:`~worldwarp.geometry.base.DepthEstimator`. Step 2 of every chunk gives the
            generated history frames its depth where they were filled (aligned to their warped depth), and
            estimates the start depth when none is given (None: the weight-free ground-plane prior for the start
            depth; generated frames keep a background-biased fill of the rendered depth in their holes).
        captioner: a :class:`~worldwarp.diffusion.captions.Captioner` whose caption of each chunk's input frames
            (the start image for chunk 0, the previous chunk's frames afterwards) becomes the chunk's prompt, as in
            the release; None uses ``config.prompt`` for every chunk.
        device: where the cache and the sampler run; the denoiser must already be there.
        fill: step 5's :class:`~worldwarp.fill.FillStrategy` (default: the one ``config.fill`` names,
            :func:`~worldwarp.fill.fill_for`).

    Example (the embedded model, offline on the CPU; ``image`` and ``depth`` may also be tensors)::

        >>> from worldwarp import WorldWarpPipeline
        >>> from worldwarp.examples import example_dir
        >>> pipe = WorldWarpPipeline.from_pretrained("tiny", height=64, width=96, chunk_frames=9, overlap=5,
        ...                                          steps=2, cache_steps=2, progress=False)
        >>> room = example_dir("room")
        >>> out = pipe(image=room / "image.png", trajectory="orbit+zoom_in", num_frames=12,
        ...            depth=room / "depth.png", fov_x_deg=70)
        >>> out.frames.shape, len(out.cameras), len(out.gaussians)
        (torch.Size([12, 3, 64, 96]), 12, 2)
        >>> sorted(out.chunks[0].timings)
        ['append', 'cache', 'diffusion', 'geometry', 'prompt', 'total', 'warp']
    """

    def __init__(
        self,
        denoiser: Denoiser | None,
        config: PipelineConfig | None = None,
        depth_estimator: Any | None = None,
        device: torch.device | str = "cpu",
        captioner: Any | None = None,
        fill: FillStrategy | None = None,
    ) -> None:
        self.denoiser = denoiser
        self.captioner = captioner
        self.config = config or PipelineConfig()
        self.depth_estimator = depth_estimator
        self.device = torch.device(device)
        self.fill = fill if fill is not None else fill_for(self.config, denoiser)
        self.weights_id: str | None = None  # see weights_digest()
        c = self.config
        if denoiser is not None:
            tf = denoiser.time_factor
            if (c.chunk_frames - 1) % tf or (c.overlap - 1) % tf:
                raise InputError(
                    f"chunk_frames - 1 ({c.chunk_frames - 1}) and overlap - 1 ({c.overlap - 1}) must be multiples "
                    f"of the denoiser's time factor {tf}"
                )
            grid = denoiser.space_factor * denoiser.patch_size
            if c.height % grid or c.width % grid:
                raise InputError(f"resolution {c.height}x{c.width} must be a multiple of {grid} for this denoiser")

    @classmethod
    def from_pretrained(
        cls,
        name: str = "tiny",
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        base: str | None = None,
        preset: str | None = None,
        config: PipelineConfig | None = None,
        device: torch.device | str | None = None,
        depth_estimator: Any | None = None,
        captioner: Any | None = None,
        **overrides: Any,
    ) -> WorldWarpPipeline:
        """A pipeline with the named denoiser loaded (:func:`~worldwarp.diffusion.denoisers.registry.load_denoiser`).

        Args:
            name: ``"tiny"`` (the embedded model; ``checkpoint`` None: the one shipped with the package) or
                ``"wan"`` (Wan2.1 ST-Diff: ``checkpoint`` the WorldWarp ST-Diff state dict, ``base`` the
                Wan2.1-T2V-1.3B-Diffusers folder or hub id).
            preset: settings preset (None: the denoiser's, :func:`default_preset`); ``overrides`` are the fields
                of :class:`~worldwarp.settings.Overrides` (e.g. ``strength=0.5, steps=20, seed=1``).
            config: a complete :class:`PipelineConfig` instead of ``preset`` and ``overrides``.
            device: where it runs (None: cuda when available, else cpu).
            depth_estimator, captioner: see the class.
        """
        from worldwarp.diffusion.denoisers.registry import DenoiserSpec, load_denoiser
        from worldwarp.settings import Overrides, configure

        if config is not None and (preset is not None or overrides):
            raise InputError("give either config or preset/overrides, not both")
        if config is None:
            try:
                ov = Overrides(**overrides)
            except TypeError as e:
                raise InputError(f"from_pretrained: {e}") from None
            config = configure(preset, ov, denoiser=name)
        spec = DenoiserSpec(name=name, checkpoint=None if checkpoint is None else os.fspath(checkpoint))
        if base is not None:
            spec.wan_model = base
        from worldwarp.devices import resolve_device

        dev = resolve_device(device)
        denoiser = load_denoiser(spec, device=dev) if config.fill == "diffusion" else None
        return cls(denoiser, config, depth_estimator=depth_estimator, device=dev, captioner=captioner)

    # ------------------------------------------------------------------ state
    def start(self, image: Tensor, cameras: Cameras, depth: Tensor | None = None) -> GenerationState:
        """A fresh state: ``image`` (3, H, W) in [0, 1] is frame 0 with z-depth ``depth`` (H, W) at ``cameras[0]``.

        ``cameras`` are the N target cameras at the working resolution; the path is extended past its end when
        the last chunk needs more frames. Without ``depth``, step 2 of chunk 0 estimates it (see the class).
        """
        c = self.config
        if image.shape != (3, c.height, c.width):
            raise InputError(
                f"image must be (3, {c.height}, {c.width}) at the working resolution, got {tuple(image.shape)}"
            )
        given = depth is not None
        if depth is None:
            depth = torch.zeros(c.height, c.width)
        elif depth.shape != (c.height, c.width):
            raise InputError(f"depth must be ({c.height}, {c.width}), got {tuple(depth.shape)}")
        if (cameras.height, cameras.width) != (c.height, c.width):
            cameras = cameras.resize(c.height, c.width)
        if given and (not bool(torch.isfinite(depth).all()) or not bool((depth > 0).any())):
            raise InputError("start depth has no valid (finite, positive) value")
        num_frames = len(cameras)
        layout = chunk_layout(num_frames, c.chunk_frames, c.overlap)
        needed = layout[-1][2]
        if needed > num_frames:
            from worldwarp.trajectory.extend import extrapolate

            cameras = extrapolate(cameras, needed)
        image = quantize(image.to(self.device, torch.float32))
        return GenerationState(
            cameras=cameras.to(self.device, torch.float32),
            num_frames=num_frames,
            frames=image[None],
            depths=depth.to(self.device, torch.float32)[None],
            chunks=[],
            layout=layout,
            start_depth_given=given,
            start_image=image,
            start_depth=depth.to(self.device, torch.float32) if given else None,
        )

    def chunk_prompt(self, state: GenerationState, k: int) -> str:
        """The prompt of chunk ``k``: the caption of its input frames with a captioner, else ``config.prompt``."""
        if self.captioner is None or not self.fill.uses_prompt:
            return self.config.prompt
        if k == 0:
            frames = state.frames[:1]
        else:
            prev = state.chunks[k - 1]
            stop = prev.new_indices[-1] + 1 if prev.new_indices else prev.start + prev.history
            frames = state.frames[prev.start - state.base : stop - state.base]
        return self.captioner.caption(frames) or self.config.prompt  # an empty caption falls back to the prompt

    # ------------------------------------------------------------------ one chunk
    def step(self, state: GenerationState) -> ChunkRecord:
        """Generate the next chunk of ``state`` (steps 1-6) and append it; returns its record."""
        if state.done:
            raise InputError("every chunk of this trajectory has been generated")
        c = self.config
        k = state.next_chunk
        start, n_hist, end = state.layout[k]
        timings: dict[str, float] = {}
        t0 = t = time.perf_counter()

        def lap(stage: str) -> None:  # stages are timed back to back, so they add up to the chunk's total
            nonlocal t
            now = time.perf_counter()
            timings[stage] = now - t
            t = now

        # 1. History: the given frames of this chunk and their cameras.
        hist_cams = state.cameras[start : start + n_hist]
        new_cams = state.cameras[start + n_hist : end]

        # 2. Geometry: depth of the history frames: the start depth (estimated here when none was given); a
        #    generated frame's depth was rendered by the cache where it was warped, and the depth estimator (if
        #    any) gives it depth where it was filled.
        self._history_geometry(state, start, n_hist)
        b = state.base  # frames before it were released
        assert start >= b, "the history of this chunk was released"
        hist_frames = state.frames[start - b : start - b + n_hist]  # (V, 3, H, W)
        hist_depths = state.depths[start - b : start - b + n_hist]  # (V, H, W)
        lap("geometry")
        if k == 0 and state.geometry_seconds:
            timings["geometry"] += state.geometry_seconds

        # 3. Cache: fit the 3DGS cache to the history frames (seeded per chunk).
        gaussians: Gaussians | None = None
        if c.cache_mode == "gaussians":
            cache_cfg = replace(c.cache, seed=c.cache.seed + 1000 * c.seed + k)
            gaussians = fit_cache(hist_frames, hist_depths, hist_cams, cache_cfg, progress=c.progress)
        lap("cache")

        # 4. Forward warp into the new cameras: prior RGB, validity mask, rendered depth.
        warp = self._warp(gaussians, hist_frames, hist_depths, hist_cams, new_cams)
        #    With the start-frame memory: the start image's own pixels wherever the start view sees the target's
        #    surface and no view leaves room for an occluder (worldwarp.start_memory).
        if c.start_memory.enabled and c.cache_mode != "none":
            image0, depth0 = self._start_memory(state)
            warp = recall_start_frame(
                warp, image0, depth0, state.cameras[0], new_cams, (hist_depths, hist_cams), c.start_memory
            )
        lap("warp")

        # 5. Fill the holes and revise the warped regions (ST-Diff, or the inpainting baseline).
        prompt, cond = "", None
        if self.fill.uses_prompt:
            prompt = self.chunk_prompt(state, k)
            cond = self.fill.conditioning(prompt)
            lap("prompt")
        new_frames = quantize(self.fill.fill(hist_frames, warp, seed=1_000_003 * c.seed + k, cond=cond))
        lap("diffusion")

        # 6. Append: depth of the new frames (rendered where warped, a background-biased fill elsewhere), drop
        #    frames past the requested end, record the chunk.
        valid = warp.mask & (warp.depth > 0)
        new_depths = fill_depth(warp.depth, valid)
        keep = max(0, min(end, state.num_frames) - (start + n_hist))
        first_new = start + n_hist
        state.frames = torch.cat([state.frames[: first_new - b], new_frames[:keep]])
        state.depths = torch.cat([state.depths[: first_new - b], new_depths[:keep]])
        lap("append")
        timings["total"] = t - t0 + (state.geometry_seconds if k == 0 else 0.0)
        record = ChunkRecord(
            index=k,
            start=start,
            history=n_hist,
            end=end,
            new_indices=list(range(first_new, first_new + keep)),
            prior=quantize(warp.rgb[:keep]),
            mask=warp.mask[:keep],
            gaussians=gaussians,
            timings=timings,
            prompt=prompt,
        )
        state.chunks.append(record)
        return record

    def _warp(
        self,
        gaussians: Gaussians | None,
        frames: Tensor,
        depths: Tensor,
        cams: Cameras,
        targets: Cameras,
    ) -> WarpResult:
        c = self.config
        if c.cache_mode == "gaussians":
            assert gaussians is not None
            return forward_warp(gaussians, targets, cams, depths, c.warp)
        if c.cache_mode == "points":
            return point_cloud_warp(frames, depths, cams, targets, c.warp)
        n, H, W = len(targets), c.height, c.width
        z = torch.zeros(n, H, W, device=frames.device, dtype=frames.dtype)
        return WarpResult(
            rgb=torch.zeros(n, 3, H, W, device=frames.device, dtype=frames.dtype),
            depth=z,
            alpha=z.clone(),
            mask=torch.zeros(n, H, W, dtype=torch.bool, device=frames.device),
        )

    def _start_memory(self, state: GenerationState) -> tuple[Tensor, Tensor]:
        """Frame 0 and its depth for the memory; a resumed run whose start depth was estimated estimates it again
        (the estimators are deterministic)."""
        if state.start_image is None and state.base > 0:
            raise InputError("the start-frame memory needs frame 0, which this state released")
        image = state.start_image if state.start_image is not None else state.frames[0]  # a state built by hand
        if state.start_depth is None:
            state.start_depth = self.estimate_depth(image[None])[0]
        return image, state.start_depth

    def estimate_depth(self, images: Tensor) -> Tensor:
        """z-depth (N, H, W) of images (N, 3, H, W) from the pipeline's depth estimator (None: the weight-free
        ground-plane prior, which warns that it is a rough guess)."""
        est = self.depth_estimator
        if est is None:
            from worldwarp.geometry import get_estimator

            est = get_estimator("prior")
        return est.estimate(images).depth.to(images.device, torch.float32)

    def _history_geometry(self, state: GenerationState, start: int, n_hist: int) -> None:
        """Step 2 for the history frames ``start .. start + n_hist - 1``, in place in ``state.depths``."""
        if start == 0 and not state.start_depth_given:
            depth = self.estimate_depth(state.frames[:1])[0]
            if not bool(torch.isfinite(depth).all()) or not bool((depth > 0).any()):
                raise InputError("the estimated start depth has no valid (finite, positive) value")
            state.depths = torch.cat([depth[None].to(state.depths), state.depths[1:]])
            state.start_depth_given = True
            state.start_depth = state.depths[0]
        if self.depth_estimator is None:
            return
        from worldwarp.geometry.align import align_depth

        generated = [(i, r) for i in range(start, start + n_hist) for r in state.chunks if i in r.new_indices]
        if not generated:
            return
        b = state.base  # frames before it were released
        idx = [i - b for i, _ in generated]
        pred = self.estimate_depth(state.frames[idx])
        depths = state.depths.clone()
        for j, (i, record) in enumerate(generated):
            m = i - record.new_indices[0]
            if m >= record.mask.shape[0]:  # the record's masks were released: nothing to align to
                continue
            valid = record.mask[m] & (depths[i - b] > 0)  # where the cache rendered this frame's depth
            if int(valid.sum()) >= 16:
                aligned = align_depth(pred[j].to(depths), depths[i - b], valid).depth.to(depths)
                depths[i - b] = torch.where(valid, depths[i - b], aligned)
        state.depths = depths

    # ------------------------------------------------------------------ whole runs
    def __call__(
        self,
        image: Tensor | str | os.PathLike[str],
        trajectory: Cameras | str | os.PathLike[str],
        depth: Tensor | str | os.PathLike[str] | None = None,
        *,
        num_frames: int | None = None,
        fov_x_deg: float = 60.0,
        speed: float = 1.0,
        scale: float = 1.0,
        state_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        callback: Callable[[ChunkRecord, GenerationState], None] | None = None,
        release: bool = False,
    ) -> PipelineOutput:
        """Generate the whole trajectory.

        Args:
            image: the start image: a file (read, cover-resized and centre-cropped to the working resolution, as
                the CLI does) or a tensor (3, H, W) in [0, 1] at the working resolution.
            trajectory: :class:`~worldwarp.cameras.Cameras` (N target cameras), a preset spec such as
                ``"orbit+zoom_in"`` (scaled to the scene: units of half the median start depth) or a camera file.
            depth: z-depth of the image: a file (.npy, 16-bit PNG in mm, .exr, .pfm), a tensor (H, W), or None
                to estimate it in step 2 (:meth:`estimate_depth`).
            num_frames: frames to generate (frame 0 is the image); needed for a preset spec or a camera file.
            fov_x_deg, speed, scale: horizontal field of view of the image and the path's speed and scale
                (preset specs).
            state_dir: with it, every finished chunk is saved atomically there, and ``resume=True`` continues from
                the saved chunks (giving the same frames as an uninterrupted run); saved chunks of a run with other
                weights, settings or inputs are refused with a message saying which differ.
            callback: called with each chunk's record and the state after it is made, before it is saved (so
                what it writes for the chunk exists whenever the chunk's checkpoint does) and released.
            release: (needs ``state_dir``) keep in memory only what the next chunk needs, so memory stays flat
                however long the path: the output then holds the frames from ``output.first`` on, and
                :meth:`ChunkStore.frames` reads every frame back.

        Returns:
            :class:`PipelineOutput`: frames, depths, cameras, chunk records (with their Gaussians) and timings.
        """
        from tqdm.auto import tqdm

        if release and state_dir is None:
            raise InputError("release=True needs a state_dir to keep the frames in")
        t0 = time.perf_counter()
        image_t, cameras, depth_t, geometry_s = self._prepare(
            image, trajectory, depth, num_frames, fov_x_deg=fov_x_deg, speed=speed, scale=scale
        )
        t1 = time.perf_counter()
        state = self.start(image_t, cameras, depth_t)
        state.geometry_seconds = geometry_s
        parts = self.fingerprint_parts(state) if state_dir is not None else {}
        store = ChunkStore(Path(state_dir), parts) if state_dir is not None else None
        if store is not None:
            if resume:
                store.restore(state, release=release, keep_from=lambda: self._keep_from(state))
            else:
                store.reset()
        bar = tqdm(total=len(state.layout), initial=len(state.chunks), desc="chunks", disable=not self.config.progress)
        t2 = time.perf_counter()
        stages: dict[str, float] = {}
        save_s = 0.0
        while not state.done:
            record = self.step(state)
            t_saved = time.perf_counter()
            for stage, seconds in record.timings.items():
                if stage != "total":
                    stages[stage] = stages.get(stage, 0.0) + seconds
            if callback is not None:  # before the checkpoint: a chunk saved is a chunk whose outputs were written
                callback(record, state)
            if store is not None:
                store.save(state, record)
            if release and not state.done:
                state.release(self._keep_from(state))
                _trim_heap()
            bar.update(1)
            save_s += time.perf_counter() - t_saved
        bar.close()
        n = state.num_frames - state.base
        end = time.perf_counter()
        timings = {
            # an image file's depth, when estimated, is part of reading the inputs (prepare_inputs); a tensor's is
            # chunk 0's geometry (counted in its stages)
            "inputs": t1 - t0 - geometry_s,
            "start": t2 - t1,
            **stages,
            "save": save_s,
            "total": end - t0,
        }
        cams = state.cameras[: state.num_frames]
        return PipelineOutput(state.frames[:n], state.depths[:n], cams, state.chunks, timings, state.base, parts)

    def _prepare(
        self,
        image: Tensor | str | os.PathLike[str],
        trajectory: Cameras | str | os.PathLike[str],
        depth: Tensor | str | os.PathLike[str] | None,
        num_frames: int | None,
        *,
        fov_x_deg: float,
        speed: float,
        scale: float,
    ) -> tuple[Tensor, Cameras, Tensor | None, float]:
        """Image (3, H, W), cameras and depth (None: step 2 estimates it) from what :meth:`__call__` was given,
        and the seconds spent estimating the start depth here (a preset path is scaled to it)."""
        c = self.config
        if not isinstance(trajectory, Cameras) and num_frames is None:
            raise InputError("num_frames is needed with a preset spec or a camera file")
        if not isinstance(image, Tensor):
            from worldwarp.inputs import prepare_inputs

            if isinstance(trajectory, Cameras) or isinstance(depth, Tensor):
                raise InputError("with an image file, give the trajectory as a spec or file and depth as a file")
            assert num_frames is not None
            depth_path = None if depth is None else os.fspath(depth)
            prepared = prepare_inputs(
                image, trajectory, num_frames, c.height, c.width, depth_path=depth_path, fov_x_deg=fov_x_deg,
                speed=speed, scale=scale,
            )  # fmt: skip
            dev = self.device
            return prepared.image.to(dev), prepared.cameras, prepared.depth.to(dev), 0.0
        depth_t: Tensor | None
        if depth is None or isinstance(depth, Tensor):
            depth_t = depth
        else:
            from worldwarp.io.depth import load_depth, prepare_depth

            depth_t = prepare_depth(load_depth(depth), (c.height, c.width)).to(image.device)
        if isinstance(trajectory, Cameras):
            return image, trajectory, depth_t, 0.0
        from worldwarp.inputs import trajectory_for_scene

        geometry_s = 0.0
        if depth_t is None:  # the path is scaled to the scene: its depth is needed now
            t = time.perf_counter()
            depth_t = self.estimate_depth(image.to(self.device, torch.float32)[None])[0]
            geometry_s = time.perf_counter() - t
        valid = depth_t[torch.isfinite(depth_t) & (depth_t > 0)]
        if valid.numel() == 0:
            raise InputError("the start depth has no valid (positive) value")
        assert num_frames is not None
        cams = trajectory_for_scene(
            trajectory, num_frames, c.height, c.width, float(valid.median()), fov_x_deg=fov_x_deg, speed=speed,
            scale=scale,
        )  # fmt: skip
        return image, cams, depth_t, geometry_s

    def _keep_from(self, state: GenerationState) -> int | None:
        """First frame a released state must keep besides the history: a captioner describes the previous
        chunk's frames."""
        if self.captioner is None or self.config.fill != "diffusion" or not state.chunks:
            return None
        return state.chunks[-1].start

    def weights_digest(self) -> str:
        """Content digest of the denoiser's weights: every parameter and buffer
        (:func:`~worldwarp.diffusion.denoisers.digest.weights_digest`), unless a caller set :attr:`weights_id`
        (e.g. digests of the checkpoint files a large model was loaded from); ``"none"`` without a denoiser."""
        if self.weights_id is None:
            den = self.denoiser
            if den is None:
                self.weights_id = "none"
            elif callable(getattr(den, "state_dict", None)):
                from worldwarp.diffusion.denoisers.digest import weights_digest

                self.weights_id = f"{type(den).__name__}:{weights_digest(den)}"  # type: ignore[arg-type]
            else:
                self.weights_id = type(den).__name__
        return self.weights_id

    def fingerprint_parts(self, state: GenerationState) -> dict[str, str]:
        """Digests of everything that determines the frames, by kind: ``weights``, ``settings`` (the config,
        less presentation such as progress bars) and ``inputs`` (start image, depth, cameras)."""

        def digest(*chunks: bytes) -> str:
            h = hashlib.sha256()
            for c in chunks:
                h.update(len(c).to_bytes(8, "little"))
                h.update(c)
            return h.hexdigest()[:16]

        settings = self.config.to_dict()
        settings.pop("progress", None)
        if self.captioner is not None:
            settings["captioner"] = repr(getattr(self.captioner, "config", type(self.captioner).__name__))
        tensors = (state.frames[0], state.depths[0], state.cameras[: state.num_frames].c2w, state.cameras.K)
        return {
            "weights": self.weights_digest(),
            "settings": digest(json.dumps(settings, sort_keys=True, default=str).encode()),
            "inputs": digest(*(t.detach().float().cpu().contiguous().numpy().tobytes() for t in tensors)),
        }

    def _fingerprint(self, state: GenerationState) -> str:
        """One hash of :meth:`fingerprint_parts`."""
        return fingerprint_of(self.fingerprint_parts(state))


def _trim_heap() -> None:
    """Give freed memory back to the system (glibc's ``malloc_trim``; nothing elsewhere). Without it a long run's
    resident size creeps up chunk after chunk although what it holds does not grow: freed tensor buffers stay
    in the allocator's heap, fragmented."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def fingerprint_of(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


_PART_NAMES = {"weights": "weights", "settings": "settings", "inputs": "inputs (image, depth or cameras)"}


class ChunkStore:
    """Saves every finished chunk of a run atomically (``chunk_0000.pt`` ...) and restores them on resume.

    ``state.json`` records the run's fingerprint parts (weights, settings, inputs); a resume whose parts differ
    is refused with a message naming what differs. A damaged chunk file is one line that says how to continue
    from the last good chunk.
    """

    def __init__(self, root: Path, parts: dict[str, str] | str) -> None:
        self.root = Path(root)
        self.parts = dict(parts) if isinstance(parts, dict) else {"run": parts}
        self.fingerprint = fingerprint_of(self.parts)

    def reset(self) -> None:
        from worldwarp.io.atomic import make_dir

        make_dir(self.root)
        for f in self.root.glob("chunk_*.pt"):
            f.unlink()
        self._write_meta()

    def _write_meta(self) -> None:
        from worldwarp.io.atomic import atomic_write_text

        meta = {"version": STATE_VERSION, "fingerprint": self.fingerprint, "parts": self.parts}
        atomic_write_text(self.root / "state.json", json.dumps(meta, indent=2) + "\n")

    def chunk_path(self, k: int) -> Path:
        return self.root / f"chunk_{k:04d}.pt"

    def save(self, state: GenerationState, record: ChunkRecord) -> None:
        """Write chunk ``record`` (its new frames as 8-bit, depths, prior, mask) atomically. The payload is
        serialised in memory first, so a full disk is one :class:`InputError` and no partial file."""
        import io

        from worldwarp.io.atomic import atomic_write_bytes

        idx = [i - state.base for i in record.new_indices]
        payload = {
            "fingerprint": self.fingerprint,
            "record": {k: v for k, v in asdict_shallow(record).items() if k not in ("prior", "mask", "gaussians")},
            "frames": (state.frames[idx].cpu() * 255).round().to(torch.uint8),
            "depths": state.depths[idx].cpu(),
            "prior": (record.prior.cpu() * 255).round().to(torch.uint8),
            "mask": record.mask.cpu(),
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write_bytes(self.chunk_path(record.index), buf.getvalue())

    def load(self, k: int) -> dict[str, Any]:
        """The payload of chunk ``k``; a damaged file is an :class:`InputError` that says how to go on."""
        f = self.chunk_path(k)
        try:
            payload = torch.load(f, map_location="cpu", weights_only=True)
            r = payload["record"]
            n = len(r["new_indices"])
            ok = payload.get("fingerprint") == self.fingerprint and r["index"] == k
            ok = ok and payload["frames"].shape[0] == n and payload["frames"].dtype == torch.uint8
        except FileNotFoundError:
            raise
        except Exception as e:  # truncated zip, unpickling error, missing keys: all mean a damaged file
            raise InputError(
                f"{f} is damaged ({type(e).__name__}); delete it and run with --resume again to continue from "
                f"chunk {k} (the last good one is {k - 1}), or run without --resume to start over"
            ) from None
        if not ok:
            raise InputError(
                f"{f} does not belong to this run; delete it and run with --resume again to continue from chunk "
                f"{k}, or run without --resume to start over"
            )
        return payload

    def restore(
        self, state: GenerationState, *, release: bool = False, keep_from: Callable[[], int | None] | None = None
    ) -> None:
        """Append every saved chunk that belongs to this run, in order; a different run's state is an error."""
        meta = self.root / "state.json"
        if not meta.is_file():
            self.reset()
            return
        try:
            saved = json.loads(meta.read_text())
            saved_parts = saved.get("parts") or {}
            assert isinstance(saved_parts, dict)
        except (ValueError, AssertionError, AttributeError):
            raise InputError(f"{meta} is damaged; run without --resume to start over") from None
        if saved.get("fingerprint") != self.fingerprint:
            differ = [_PART_NAMES.get(k, k) for k in self.parts if saved_parts.get(k) != self.parts[k]]
            what = " and ".join(differ) if saved_parts and differ else "inputs or settings"
            raise InputError(
                f"{self.root}: the saved chunks belong to a run with other {what}; "
                "run without --resume to start over (or resume with the same ones)"
            )
        dev = state.frames.device
        for k in range(len(state.layout)):
            if not self.chunk_path(k).is_file():
                break
            payload = self.load(k)
            r = payload["record"]
            idx = r["new_indices"]
            first = r["start"] + r["history"] - state.base
            state.frames = torch.cat([state.frames[:first], payload["frames"].to(dev, torch.float32) / 255])
            state.depths = torch.cat([state.depths[:first], payload["depths"].to(dev, torch.float32)])
            assert state.length == (idx[-1] + 1 if idx else first + state.base)
            state.chunks.append(
                ChunkRecord(
                    index=r["index"],
                    start=r["start"],
                    history=r["history"],
                    end=r["end"],
                    new_indices=idx,
                    prior=payload["prior"].to(dev, torch.float32) / 255,
                    mask=payload["mask"].to(dev),
                    gaussians=None,
                    timings=r["timings"],
                    prompt=r.get("prompt", ""),
                )
            )
            if release and not state.done:
                state.release(keep_from() if keep_from is not None else None)

    def frames(self, num_chunks: int) -> Iterator[tuple[list[int], Tensor, Tensor, Tensor]]:
        """Chunk by chunk, what chunks ``0..num_chunks-1`` saved: ``(indices, frames uint8 (n, 3, H, W), prior
        uint8 (n, 3, H, W), mask bool (n, H, W))`` (one chunk in memory at a time)."""
        for k in range(num_chunks):
            p = self.load(k)
            yield p["record"]["new_indices"], p["frames"], p["prior"], p["mask"]


def asdict_shallow(record: ChunkRecord) -> dict[str, Any]:
    return {f: getattr(record, f) for f in record.__dataclass_fields__}
