"""Per-user state of the web UI: one :class:`UISession` per browser tab, wrapping the public API.

Nothing here implements the method. Every action calls the library's public functions
(:func:`worldwarp.inputs.prepare_inputs`, :class:`worldwarp.pipeline.WorldWarpPipeline` ``start`` / ``step``,
:meth:`worldwarp.pipeline.GenerationState.rollback`, :func:`worldwarp.io.video.write_video`,
:func:`worldwarp.trajectory.io.write_cameras`, :meth:`worldwarp.splat.gaussians.Gaussians.save_ply`) and
returns a plain description of what the page should show (:class:`SessionView`, :class:`PathPreview`).
User errors (:class:`~worldwarp.errors.WorldWarpError`, :class:`~worldwarp.cameras.CameraError`, a missing
file) become a one-line message in the view, never an exception, so the Gradio layer stays a thin mapping.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from worldwarp.cameras import CameraError
from worldwarp.diffusion.denoisers.base import Denoiser
from worldwarp.diffusion.denoisers.registry import DenoiserSpec, load_denoiser
from worldwarp.errors import InputError, WorldWarpError
from worldwarp.examples import Example, examples_dir, list_examples, load_example
from worldwarp.pipeline import GenerationState, PipelineConfig, WorldWarpPipeline

__all__ = [
    "Example",
    "InputSpec",
    "PathPreview",
    "SessionView",
    "SharedModel",
    "UIConfig",
    "UISession",
    "compose_spec",
    "default_examples_dir",
    "list_examples",
    "load_example",
    "preview_path",
    "user_message",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
USER_ERRORS = (WorldWarpError, CameraError, FileNotFoundError)


def default_examples_dir() -> Path:
    """The bundled examples folder (``worldwarp/assets/examples``; it may not exist in a source checkout)."""
    return examples_dir()


@dataclass
class UIConfig:
    """Everything the web UI is built from (tests inject tiny settings here).

    Attributes:
        checkpoint: tiny model checkpoint folder (None: the one shipped with the package) or, with
            ``denoiser="wan"``, the WorldWarp ST-Diff state dict.
        pipeline: the method's settings; the page overrides ``sampler.strength`` and ``seed`` per generation.
        examples_dir: folder of examples (``<name>/image.png``, ``depth.png``, ``example.json``); None: bundled.
        denoiser: ``"tiny"`` or ``"wan"``.
        wan_model: Wan2.1 base model folder or hub id (``denoiser="wan"`` only).
        device: torch device of the model and the pipeline.
        work_dir: parent of every session's scratch folder (None: the system's temp folder).
        fps: frame rate of the exported video.
        default_frames, default_trajectory: initial values of the page's controls.
        default_strength: initial strength (None: the pipeline preset's, see :meth:`strength`).
        max_frames: the largest trajectory length the page accepts.
    """

    checkpoint: str | None = None
    pipeline: PipelineConfig = field(default_factory=PipelineConfig.cpu)
    examples_dir: Path | None = None
    denoiser: str = "tiny"
    wan_model: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    device: str = "cpu"
    work_dir: Path | None = None
    fps: float = 16.0
    default_frames: int = 49
    default_trajectory: str = "move_forward+pan_left"
    default_strength: float | None = None
    max_frames: int = 1000

    def strength(self) -> float:
        """The page's initial strength: ``default_strength``, else the pipeline preset's."""
        return self.pipeline.sampler.strength if self.default_strength is None else float(self.default_strength)

    def examples_folder(self) -> Path:
        return Path(self.examples_dir) if self.examples_dir is not None else default_examples_dir()

    def denoiser_spec(self) -> DenoiserSpec:
        return DenoiserSpec(name=self.denoiser, checkpoint=self.checkpoint, wan_model=self.wan_model)


class SharedModel:
    """The denoiser, loaded once on first use and shared by every session of one app (thread-safe)."""

    def __init__(self, config: UIConfig) -> None:
        self.config = config
        self._model: Denoiser | None = None
        self._lock = threading.Lock()

    def get(self) -> Denoiser:
        with self._lock:
            if self._model is None:
                self._model = load_denoiser(self.config.denoiser_spec(), device=self.config.device)
            return self._model


# ---------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class InputSpec:
    """What the page's input controls say (file paths as the browser upload left them).

    Attributes:
        image: start image file (None: nothing uploaded yet).
        depth: z-depth of the image (.png 16-bit mm, .npy, .exr, .pfm); None: the weight-free prior.
        trajectory: preset spec (e.g. ``move_forward+pan_left``); ignored when ``camera_file`` is given.
        camera_file: a camera file (re10k .txt, transforms.json, cameras.json, .npz) that replaces the spec.
        frames: trajectory length (frame 0 is the image).
        fov_x_deg: horizontal field of view of the image (presets only).
        speed, scale: trajectory speed and scale (relative to the scene).
        camera_video: a reference video whose camera motion replaces the spec and the camera file
            (:mod:`worldwarp.trajectory.from_video`; extracted once, then cached by content).
    """

    image: str | None
    depth: str | None
    trajectory: str
    camera_file: str | None
    frames: int
    fov_x_deg: float = 60.0
    speed: float = 1.0
    scale: float = 1.0
    camera_video: str | None = None

    def path_source(self) -> str:
        """The reference video when there is one, else the camera file when there is one, else the preset spec."""
        return self.camera_video or self.camera_file or self.trajectory


_ABS_PATH = re.compile(r"""(?<![\w.~])/(?:[^\s/:'"(),;]+/)+([^\s/:'"(),;]+)""")


def hide_paths(text: str) -> str:
    """``text`` with every absolute file path shortened to its file name (the page never shows server paths:
    uploads live in the server's temp folders, and the user knows the file by its name)."""
    return _ABS_PATH.sub(lambda m: m.group(1), text)


def user_message(error: BaseException) -> str:
    """One line for the page: the message of a user error, or a short note for an unexpected one; file paths
    are shown by their file names only."""
    if isinstance(error, FileNotFoundError):
        return hide_paths(f"file not found: {error.filename or error}")
    if isinstance(error, USER_ERRORS):
        return hide_paths(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    text = str(error).strip().splitlines()
    return hide_paths(
        f"unexpected error ({type(error).__name__}: {text[0] if text else 'no message'}); see the server log"
    )


def _check_spec(spec: InputSpec, max_frames: int) -> None:
    if not isinstance(spec.frames, int) or not 2 <= spec.frames <= max_frames:
        raise InputError(f"frames must be a whole number from 2 to {max_frames}, got {spec.frames}")
    for name, value in (("speed", spec.speed), ("scale", spec.scale)):
        if not value > 0:
            raise InputError(f"{name} must be > 0, got {value}")
    if not 0 < spec.fov_x_deg < 180:
        raise InputError(f"field of view must lie in (0, 180) degrees, got {spec.fov_x_deg}")
    if not spec.camera_video and not spec.camera_file and not spec.trajectory.strip():
        raise InputError("no camera path: compose a preset spec or upload a camera file (or a video)")


def _video_path(spec: InputSpec, progress: ProgressFn | None):  # -> VideoPath | None
    """The camera path of the spec's reference video (extracted with progress, or from the cache)."""
    if not spec.camera_video:
        return None
    from worldwarp.trajectory.from_video import extract_video_path

    return extract_video_path(spec.camera_video, progress=progress)


@dataclass
class PathPreview:
    """The picture of a camera path (H, W, 3) uint8 (None when the path is invalid) and a one-line message."""

    image: np.ndarray | None
    message: str
    error: str | None = None


def preview_path(
    spec: InputSpec, height: int, width: int, max_frames: int = 1000, progress: ProgressFn | None = None
) -> PathPreview:
    """Draw the path ``spec`` describes with the CLI's preview code (scaled to the image's depth when given).

    Without an image the path is drawn in scene units (median depth 1). A reference video's path is extracted
    first (``progress(fraction, message)`` reports it) or read from the cache.
    """
    from worldwarp.inputs import prepare_inputs, trajectory_for_scene
    from worldwarp.trajectory.preview import render_preview_array

    try:
        _check_spec(spec, max_frames)
        video = _video_path(spec, progress)
        if spec.image:
            cams = prepare_inputs(
                spec.image, spec.path_source(), spec.frames, height, width, depth_path=spec.depth,
                fov_x_deg=spec.fov_x_deg, speed=spec.speed, scale=spec.scale,
            ).cameras  # fmt: skip
        else:
            cams = trajectory_for_scene(
                spec.path_source(), spec.frames, height, width, 1.0, fov_x_deg=spec.fov_x_deg, speed=spec.speed,
                scale=spec.scale,
            )  # fmt: skip
        title = Path(spec.path_source()).name if spec.camera_video or spec.camera_file else spec.trajectory.strip()
        image = render_preview_array(cams, f"{title}  ({len(cams)} frames)")
        if video is not None:
            from worldwarp.trajectory.from_video import speed_note

            notes = [video.summary(), speed_note(video, spec.frames, spec.speed), *video.warnings]
            return PathPreview(image, f"{len(cams)} cameras from the video: " + "; ".join(notes))
        return PathPreview(image, f"{len(cams)} cameras")
    except Exception as e:  # every failure becomes a message on the page
        if not isinstance(e, USER_ERRORS):
            log.exception("path preview failed")
        return PathPreview(None, "", user_message(e))


def compose_spec(spec: str, name: str, mode: Literal["with", "then"]) -> str:
    """Add preset ``name`` to ``spec``: ``"with"`` moves at the same time (``+``), ``"then"`` afterwards (``,``).

    >>> compose_spec("move_forward", "pan_left", "with")
    'move_forward+pan_left'
    """
    from worldwarp.trajectory.presets import preset_names

    name = name.strip()
    if name not in preset_names(include_aliases=True):
        raise InputError(f"unknown camera preset {name!r}")
    if mode not in ("with", "then"):
        raise InputError(f"mode must be 'with' or 'then', got {mode!r}")
    spec = spec.strip().rstrip("+,").strip()
    if not spec:
        return name
    return f"{spec}{'+' if mode == 'with' else ','}{name}"


# ---------------------------------------------------------------------------------------------- session
@dataclass
class SessionView:
    """What the page shows after an action.

    Attributes:
        status: one markdown line (progress, result or the error).
        error: the user-facing error of the last action (None when it succeeded).
        video: mp4 of every frame so far (None before the first generation).
        cameras: cameras.json of those frames.
        ply: the 3DGS cache of the latest chunk (None without one).
        panel: (H, W, 3) uint8 "warped prior | valid mask | result" of the latest chunk's last frame.
        chunks_done, chunks_total: chunks generated and chunks in the trajectory (0 before a start).
        frames_done: frames in the video (the start image included).
    """

    status: str
    error: str | None = None
    video: Path | None = None
    cameras: Path | None = None
    ply: Path | None = None
    panel: np.ndarray | None = None
    chunks_done: int = 0
    chunks_total: int = 0
    frames_done: int = 0


class UISession:
    """One user's generation: the inputs it was started from, the growing video and its exported files.

    Args:
        config: the app's :class:`UIConfig`.
        model: the app's :class:`SharedModel` (a private one is made when None).
    """

    def __init__(self, config: UIConfig, model: SharedModel | None = None) -> None:
        self.config = config
        self.model = model or SharedModel(config)
        self.state: GenerationState | None = None
        self.spec: InputSpec | None = None
        self.notes: list[str] = []
        base = Path(config.work_dir) if config.work_dir is not None else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="worldwarp-ui-", dir=base))
        self._exports: SessionView = SessionView(status="")

    # ------------------------------------------------------------------ housekeeping
    def close(self) -> None:
        """Delete the session's scratch folder (Gradio calls this when the tab's state is dropped)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def example_files(self, name: str) -> Example:
        """The example ``name`` with its files copied into this session's folder (so Gradio may serve them)."""
        ex = load_example(self.config.examples_folder(), name)
        dest = self.folder / "examples" / name
        dest.mkdir(parents=True, exist_ok=True)
        image = Path(shutil.copy2(ex.image, dest / ex.image.name))
        depth = Path(shutil.copy2(ex.depth, dest / ex.depth.name)) if ex.depth is not None else None
        return replace(ex, image=image, depth=depth)

    def pipeline_config(self, strength: float, seed: int) -> PipelineConfig:
        """The app's pipeline settings with the page's strength and seed."""
        from worldwarp.settings import Overrides, apply_overrides

        return apply_overrides(self.config.pipeline, Overrides(strength=float(strength), seed=int(seed)))

    def _pipeline(self, strength: float, seed: int) -> WorldWarpPipeline:
        return WorldWarpPipeline(self.model.get(), self.pipeline_config(strength, seed), device=self.config.device)

    # ------------------------------------------------------------------ actions
    def generate(
        self,
        spec: InputSpec,
        chunks: int = 1,
        strength: float | None = None,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> Iterator[SessionView]:
        """Generate up to ``chunks`` more chunks, yielding the view after each one.

        A new generation starts from ``spec`` when there is none yet or the inputs changed since it started;
        otherwise the current one continues (with this call's strength and seed). Errors end the iteration
        with a view whose ``error`` says what went wrong.
        """
        strength = self.config.strength() if strength is None else strength
        try:
            if not isinstance(chunks, int) or chunks < 1:
                raise InputError(f"number of chunks must be a whole number >= 1, got {chunks}")
            if not spec.image:
                raise InputError("no start image: upload one or pick an example")
            _check_spec(spec, self.config.max_frames)
            if progress is not None:
                progress(0.0, "preparing inputs")
            if self.state is None or spec != self.spec:  # a new video's path first, with its own progress
                _video_path(spec, None if progress is None else lambda f, m: progress(0.0, f"camera path: {m}"))
            pipe = self._pipeline(strength, seed)
            started = ""
            if self.state is None or spec != self.spec:
                self._start(pipe, spec)
                started = "started a new video" + (f" ({'; '.join(self.notes)})" if self.notes else "") + "; "
            state = self.state
            assert state is not None
            if state.done:
                raise InputError("every chunk of this trajectory is generated: roll back, or change the inputs")
            todo = min(chunks, len(state.layout) - len(state.chunks))
            for i in range(todo):
                if progress is not None:
                    progress(i / todo, f"chunk {state.next_chunk + 1} of {len(state.layout)}")
                record = pipe.step(state)
                self._export()
                secs = record.timings.get("total", 0.0)
                msg = f"{started}chunk {record.index + 1} of {len(state.layout)} done in {secs:.1f} s"
                started = ""
                yield self.view(msg)
            if progress is not None:
                progress(1.0, "done")
        except Exception as e:  # the page shows a message, never a traceback
            if not isinstance(e, USER_ERRORS):
                log.exception("generation failed")
            yield self.view(error=user_message(e))

    def _start(self, pipe: WorldWarpPipeline, spec: InputSpec) -> None:
        from worldwarp.inputs import prepare_inputs

        c = pipe.config
        inputs = prepare_inputs(
            spec.image, spec.path_source(), spec.frames, c.height, c.width, depth_path=spec.depth,  # type: ignore[arg-type]
            fov_x_deg=spec.fov_x_deg, speed=spec.speed, scale=spec.scale,
        )  # fmt: skip
        dev = torch.device(self.config.device)
        self.state = pipe.start(inputs.image.to(dev), inputs.cameras, inputs.depth.to(dev))
        self.spec = spec
        self.notes = [hide_paths(n) for n in inputs.notes]
        self._export()

    def run_all(self, spec: InputSpec, chunks: int = 1, **kwargs: object) -> SessionView:
        """:meth:`generate` to the end and return the last view."""
        last = self.view()
        for last in self.generate(spec, chunks, **kwargs):  # type: ignore[arg-type]  # noqa: B007
            pass
        return last

    def rollback(self, k: int) -> SessionView:
        """Keep chunks ``0..k-1`` (k = 0 keeps only the start image) and re-export."""
        try:
            if self.state is None:
                raise InputError("nothing to roll back: generate a chunk first")
            if not isinstance(k, int):
                raise InputError(f"chunk to roll back to must be a whole number, got {k}")
            self.state.rollback(k)
            self._export()
            return self.view(f"rolled back: kept {k} chunk{'s' if k != 1 else ''}")
        except Exception as e:
            if not isinstance(e, USER_ERRORS):
                log.exception("rollback failed")
            return self.view(error=user_message(e))

    # ------------------------------------------------------------------ views and exports
    def view(self, status: str = "", error: str | None = None) -> SessionView:
        """The current state as a :class:`SessionView` (``status`` defaults to a summary)."""
        s = self.state
        done = len(s.chunks) if s is not None else 0
        total = len(s.layout) if s is not None else 0
        frames = int(s.frames.shape[0]) if s is not None else 0
        if error is not None:
            status = f"**Error:** {error}"
        elif not status:
            status = f"{done} of {total} chunks, {frames} frames" if s is not None else "nothing generated yet"
        ex = self._exports
        return SessionView(status, error, ex.video, ex.cameras, ex.ply, ex.panel, done, total, frames)

    def _export(self) -> None:
        """Write the video, the cameras and the latest cache into the session folder (each atomically)."""
        from worldwarp.io.video import write_video
        from worldwarp.trajectory.io import write_cameras

        s = self.state
        assert s is not None
        for old in (self._exports.video, self._exports.cameras, self._exports.ply):
            if old is not None:
                old.unlink(missing_ok=True)
        n, k = int(s.frames.shape[0]), len(s.chunks)
        stem = f"worldwarp_{k}chunks_{n}frames"
        video = write_video(self.folder / f"{stem}.mp4", s.frames.detach().cpu(), fps=self.config.fps)
        cameras = self.folder / f"{stem}_cameras.json"
        write_cameras(cameras, s.cameras[:n].to("cpu", torch.float64), "cameras")
        ply = None
        last = s.chunks[-1] if s.chunks else None
        if last is not None and last.gaussians is not None:
            ply = self.folder / f"worldwarp_chunk{last.index}_cache.ply"
            last.gaussians.detach().to("cpu").save_ply(ply)
        self._exports = SessionView("", None, video, cameras, ply, self._panel(), k, len(s.layout), n)

    def _panel(self, min_height: int = 240) -> np.ndarray | None:
        """(H, W, 3) uint8 prior | mask | result of the latest chunk's last frame, enlarged to ``min_height``."""
        import torch.nn.functional as F

        from worldwarp.io.video import side_by_side, to_uint8_frames

        s = self.state
        if s is None or not s.chunks or not s.chunks[-1].new_indices:
            return None
        rec = s.chunks[-1]
        prior = rec.prior[-1:].detach().float().cpu()  # (1, 3, H, W)
        mask = rec.mask[-1:].detach().float().cpu()[:, None].expand(-1, 3, -1, -1)
        result = s.frames[rec.new_indices[-1]][None].detach().float().cpu()
        f = max(1, -(-min_height // prior.shape[-2]))
        up = [F.interpolate(x, scale_factor=f, mode="nearest") for x in (prior, mask, result)]
        frame = rec.new_indices[-1]
        labels = ["warped prior", "valid mask", f"result (frame {frame})"]
        panel = side_by_side(*up, labels=labels, gap=6, label_height=max(28, up[0].shape[-2] // 8))
        return to_uint8_frames(panel)[0]
