"""3D Gaussian splatting: the parameter container, the rasteriser and the per-chunk cache.

Submodules are imported on demand (``from worldwarp.splat.gaussians import Gaussians``,
``from worldwarp.splat.raster import rasterize``); importing this package does no work.
"""
