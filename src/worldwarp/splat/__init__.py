"""3D Gaussian splatting: the parameter container, the rasteriser, the per-chunk cache, SSIM and the native kernels.

Submodules are imported on demand (``from worldwarp.splat.gaussians import Gaussians``,
``from worldwarp.splat.raster import rasterize``); importing this package does no work.
"""
