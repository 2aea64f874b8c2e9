"""Evaluation: image metrics, camera accuracy, datasets, the benchmark runner and its report.

Modules (import the one you need; nothing heavy is imported here):

* :mod:`worldwarp.eval.metrics`: PSNR, masked PSNR, SSIM;
* :mod:`worldwarp.eval.lpips`: LPIPS network (weights from a local folder);
* :mod:`worldwarp.eval.fid`: Fréchet distance and features from a user-provided network;
* :mod:`worldwarp.eval.poses`: Rdist/Tdist, Sim(3)-aligned errors, pycolmap pose estimation;
* :mod:`worldwarp.eval.datasets`: RealEstate10K, DL3DV / transforms.json scenes, procedural suites;
* :mod:`worldwarp.eval.benchmark`: the Method protocol, the METHODS registry, the runner, shards and merging;
* :mod:`worldwarp.eval.report`: markdown tables and metric-vs-frame plots.

The protocol and the commands are described in docs/evaluation.md.
"""
