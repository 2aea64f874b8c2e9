"""ST-Diff: the spatio-temporal diffusion that fills and revises forward-warped priors.

* :mod:`.schedule` - shifted flow-matching sigmas, strength -> start level, per-token noise maps, Euler step;
* :mod:`.sampler` - the fill-and-revise sampling loop over any :class:`~.denoisers.base.Denoiser`;
* :mod:`.denoisers` - the protocol and its backends (``tiny``, ``wan``);
* :mod:`.training` - the paper's training recipe (warped-prior composite, per-frame noise pairs).

Submodules are imported on demand; importing this package is cheap.
"""
