"""worldwarp: one image and a camera path in, a long 3D-consistent fly-through video out.

Importing this package is cheap: it never compiles, downloads or touches CUDA.
"""

from worldwarp.cameras import CameraError, Cameras
from worldwarp.errors import InputError, WorldWarpError

__version__ = "0.1.0"

__all__ = ["CameraError", "Cameras", "InputError", "WorldWarpError", "__version__"]
