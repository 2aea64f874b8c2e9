"""Native C++ kernels of the splatting layers, compiled at first use and called through one checked entry.

Three sources, one job each, each built into its own library (``common.h`` holds what they share):

* ``raster.cpp``: the fast CPU rasteriser, forward (four numbered stages) and backward
  (:mod:`worldwarp.splat.raster.cpu`);
* ``losses.cpp``: SSIM with its analytic gradient (:func:`worldwarp.splat.ssim.ssim_fused`) and the fused loss of the
  3DGS cache fit (:mod:`worldwarp.splat.cache`);
* ``reproject.cpp``: the reprojection check of the forward warp (:func:`worldwarp.warp.reprojection_mask_cpu`).

Modules: :mod:`.build` compiles and loads a library (nothing happens at import); :mod:`.guard` is the one place that
calls into native code, after checking every tensor's dtype, device, contiguity and shape against the declared
signature; :mod:`.ops` declares each native function and wraps it in a typed Python function, and packs cameras
into the layout every kernel reads (:func:`.ops.pack_cameras`).
"""

from worldwarp.splat.kernels.build import KernelBuildError, kernels_available, load_library

__all__ = ["KernelBuildError", "kernels_available", "load_library"]
