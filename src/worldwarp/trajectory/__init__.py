"""Camera paths: named presets and their composition, camera files in and out, resampling and extension.

* :mod:`~worldwarp.trajectory.presets` — ``trajectory_from_spec("orbit+zoom_in", 49)``;
* :mod:`~worldwarp.trajectory.io` — ``read_cameras`` / ``write_cameras`` for RealEstate10K, transforms.json,
  COLMAP, the release's npz and our cameras.json (one module per format in ``formats/``);
* :mod:`~worldwarp.trajectory.extend` — resample, change speed, extrapolate, loop, ping-pong;
* :mod:`~worldwarp.trajectory.load` — ``load_trajectory(spec_or_file, frames)``, the one entry for user input;
* :mod:`~worldwarp.trajectory.from_video` — ``extract_video_path("clip.mp4")``: a clip's camera motion (SfM);
* :mod:`~worldwarp.trajectory.preview` — ``render_preview(cameras, "p.png")`` (imports matplotlib lazily).
"""

from worldwarp.trajectory.extend import change_speed, extrapolate, fit_length, loop, pingpong, resample
from worldwarp.trajectory.from_video import VideoPath, VideoPathConfig, VideoPathError, extract_video_path
from worldwarp.trajectory.io import FORMATS, detect_format, read_cameras, write_cameras
from worldwarp.trajectory.load import load_trajectory
from worldwarp.trajectory.presets import PresetParams, parse_spec, preset_names, trajectory_from_spec
from worldwarp.trajectory.preview import render_preview, render_preview_array

__all__ = [
    "FORMATS",
    "PresetParams",
    "VideoPath",
    "VideoPathConfig",
    "VideoPathError",
    "change_speed",
    "detect_format",
    "extract_video_path",
    "extrapolate",
    "fit_length",
    "load_trajectory",
    "loop",
    "parse_spec",
    "pingpong",
    "preset_names",
    "read_cameras",
    "render_preview",
    "render_preview_array",
    "resample",
    "trajectory_from_spec",
    "write_cameras",
]
