"""Input and output: images (validation, EXIF, alpha, 16-bit), depth maps, videos, atomic writes.

Everything here raises :class:`~worldwarp.errors.InputError` (one line naming the file) for bad input and
writes outputs atomically (temporary file in the same folder, then ``os.replace``).
"""

from worldwarp.io.atomic import (
    atomic_directory,
    atomic_path,
    atomic_save_npy,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from worldwarp.io.depth import (
    DepthWarning,
    check_depth_matches,
    load_depth,
    prepare_depth,
    resize_depth,
    sanitize_depth,
    save_depth,
)
from worldwarp.io.images import (
    ImageInfo,
    ImagePrep,
    ImageResizedWarning,
    center_crop_to_aspect,
    load_image,
    plan_prepare,
    prepare_image,
    resize_image,
    save_image,
    to_uint8,
)
from worldwarp.io.video import frame_strip, read_video, side_by_side, to_uint8_frames, write_frames, write_video

__all__ = [
    "DepthWarning",
    "ImageInfo",
    "ImagePrep",
    "ImageResizedWarning",
    "atomic_directory",
    "atomic_path",
    "atomic_save_npy",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "center_crop_to_aspect",
    "check_depth_matches",
    "frame_strip",
    "load_depth",
    "load_image",
    "plan_prepare",
    "prepare_depth",
    "prepare_image",
    "read_video",
    "resize_depth",
    "resize_image",
    "sanitize_depth",
    "save_depth",
    "save_image",
    "side_by_side",
    "to_uint8",
    "to_uint8_frames",
    "write_frames",
    "write_video",
]
