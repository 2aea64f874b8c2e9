"""ST-Diff: the spatio-temporal diffusion that fills and revises forward-warped priors.

* :mod:`.schedule` - the sigma grid (shifted linspace or diffusers' scheduler), strength -> start level, Euler step;
* :mod:`.latent_grid` - pixel mask -> latent cells -> patches, history latent frames, start levels (strict/release);
* :mod:`.sampler` - the fill-and-revise sampling loop over any :class:`~.denoisers.base.Denoiser`;
* :mod:`.denoisers` - the protocol and its backends (``tiny``, ``wan``);
* :mod:`.captions` - per-chunk prompts from an image-text-to-text model (as the release);
* :mod:`.training` - the paper's training recipe (warped-prior composite, per-frame noise pairs);
* :mod:`.training_data` - its clips (procedural worlds, transforms.json scenes with depth).

Submodules are imported on demand; importing this package is cheap.
"""
