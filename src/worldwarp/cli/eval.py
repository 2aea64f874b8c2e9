"""``worldwarp eval``: run the evaluation protocol, merge shard results, write a report, make a scene list.

    worldwarp eval --dataset D [--root DIR] --split S --method NAME --frames 50,200 --out results.json
                   [--shard i/n] [--size HxW] [--lpips DIR] [--fid FILE] [--cameras] [--save-frames DIR]
                   [--denoiser tiny|wan] [--checkpoint FILE] [--wan-model DIR] [--preset release|paper|cpu]
                   [--steps N] [--strength T] [--cfg G] [--chunk N] [--overlap N] [--seed S]
    worldwarp eval merge A.json B.json ... --out results.json
    worldwarp eval report A.json [B.json ...] --out DIR
    worldwarp eval list --dataset D --root DIR --split S [--count N] [--list-seed S] [--frames 50,200]
                   [--stride k] --out lists/D_S.txt

``eval list`` writes every scene under the root whose clip has more than max(frames) frames after the stride
(or N of them drawn with the seed), sorted by name, with its frames; evaluate it later with ``--list FILE``.

Under ``accelerate launch`` each process takes its shard of the scenes (round robin) unless --shard is given;
each shard writes ``<out>.shard<i>of<n>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _int_list(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    return vals


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 480x720), got {text!r}") from None
    return h, w


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard must satisfy 0 <= i < n, got {text!r}")
    return i, n


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a method on a dataset (PSNR, SSIM, LPIPS, FID, camera accuracy); merge; report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action", nargs="*", metavar="[merge|report] FILES | list", help="merge or report results files; make a list"
    )
    p.add_argument("--dataset", help="re10k, dl3dv, transforms or procedural")
    p.add_argument("--root", type=Path, help="dataset folder")
    p.add_argument("--split", default="test", help="split folder or scene list name (default: test)")
    p.add_argument("--list", dest="list_file", type=Path, help="scene list file (scene frames [start] per line)")
    p.add_argument("--method", default="inpaint", help="registered method name (default: inpaint)")
    p.add_argument("--frames", type=_int_list, help="frames to score, e.g. 50,200 (default: the list's/dataset's)")
    p.add_argument("--size", type=_size, help="evaluation resolution HxW (default: the source size)")
    p.add_argument("--stride", type=int, default=1, help="use every k-th source frame")
    p.add_argument("--max-scenes", type=int, help="evaluate only the first N scenes")
    p.add_argument(
        "--start-depth",
        choices=["given", "stereo", "auto"],
        default="given",
        help="start-frame depth: the dataset's (given), plane-sweep stereo against the next frames (stereo), "
        "or given where present else stereo (auto)",
    )
    p.add_argument("--stereo-sources", type=int, default=8, help="frames after the start used by stereo (default 8)")
    p.add_argument("--shard", type=_shard, help="i/n: evaluate every n-th scene starting at i")
    p.add_argument("--curve-stride", type=int, default=0, help="also score every k-th frame for the plots")
    p.add_argument("--cameras", action="store_true", help="measure camera accuracy with pycolmap (slow)")
    p.add_argument("--pose-stride", type=int, default=1, help="frame step of the pose estimation")
    p.add_argument("--no-control", action="store_true", help="skip the pose estimator on ground-truth frames")
    p.add_argument("--seeds", type=_int_list, default=(0, 1, 2), help="mapper seeds (default 0,1,2)")
    p.add_argument("--lpips", type=Path, help="folder with LPIPS weights (alex.pth + alexnet*.pth)")
    p.add_argument("--lpips-net", default="alex", choices=["alex", "vgg"])
    p.add_argument("--fid", type=Path, help="TorchScript feature network for FID (e.g. inception-2015-12-05.pt)")
    p.add_argument("--save-frames", type=Path, help="folder to save generated and ground-truth frames")
    p.add_argument("--device", default="cpu", help="device of the metric networks (default: cpu)")
    p.add_argument("--count", type=int, help="list: draw N of the scenes long enough (default: all of them)")
    p.add_argument("--list-seed", type=int, default=0, help="list: seed of the --count draw (default 0)")
    m = p.add_argument_group("pipeline methods (worldwarp and its ablations; as in 'worldwarp generate')")
    m.add_argument("--denoiser", choices=["tiny", "wan"], help="ST-Diff model (default: tiny, the embedded one)")
    m.add_argument("--checkpoint", help="tiny: checkpoint folder; wan: the WorldWarp ST-Diff state dict")
    m.add_argument("--wan-model", help="wan: base model folder or hub id (default: Wan-AI/Wan2.1-T2V-1.3B-Diffusers)")
    m.add_argument("--offload", choices=["none", "model", "sequential"], help="wan: offloading")
    m.add_argument("--vae-tiling", action="store_true", default=None, help="wan: tiled VAE")
    m.add_argument("--trust-checkpoint", action="store_true", default=None, help="wan: allow a pickled checkpoint")
    m.add_argument(
        "--preset", choices=["release", "paper", "cpu"], help="default: release with --denoiser wan, cpu otherwise"
    )
    m.add_argument("--steps", type=int, help="diffusion steps (preset default)")
    m.add_argument("--solver", choices=["euler", "renoise", "direct"], help="sampler solver (preset default)")
    m.add_argument("--strength", type=float, help="revise strength of warped regions (preset default)")
    m.add_argument("--cfg", type=float, help="classifier-free guidance scale (preset default)")
    m.add_argument("--chunk", type=int, help="frames per chunk, history included (preset default)")
    m.add_argument("--overlap", type=int, help="history frames carried between chunks (preset default)")
    m.add_argument("--seed", type=int, help="pipeline seed (default 0)")
    m.add_argument(
        "--pipeline-device", help="where the pipeline runs (default: cpu; cuda when available for --denoiser wan)"
    )
    p.add_argument("--out", type=Path, help="results file (run, merge), report folder (report) or list file (list)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from worldwarp.errors import InputError

    if args.out is None:
        raise InputError("--out is required")
    if args.action:
        verb, files = args.action[0], [Path(f) for f in args.action[1:]]
        if verb == "list":
            if files:
                raise InputError(f"eval list takes no files, got {' '.join(map(str, files))}")
            return _list(args)
        if verb not in ("merge", "report"):
            raise InputError(f"unknown eval action {verb!r}: use 'merge', 'report' or 'list' (or no action to run)")
        if not files:
            raise InputError(f"eval {verb} needs results files")
        return _merge(files, args.out) if verb == "merge" else _report(files, args.out)
    return _run(args)


def _merge(files: list[Path], out: Path) -> int:
    from worldwarp.eval.benchmark import merge_results, read_results, write_results

    doc, feats = merge_results([read_results(f) for f in files])
    write_results(out, doc, feats)
    print(f"merged {len(files)} files ({len(doc['scenes'])} scenes) into {out}")
    return 0


def _report(files: list[Path], out: Path) -> int:
    from worldwarp.eval.benchmark import read_results
    from worldwarp.eval.report import write_report

    paths = write_report([read_results(f) for f in files], out)
    print(f"wrote {paths[0]} and {len(paths) - 1} plots")
    return 0


def _list(args: argparse.Namespace) -> int:
    import shlex

    from worldwarp.errors import InputError
    from worldwarp.eval.datasets import DatasetConfig, make_scene_list, write_scene_list

    if args.dataset is None:
        raise InputError("--dataset is required (re10k, dl3dv or transforms)")
    config = DatasetConfig(name=args.dataset, root=args.root, split=args.split, frames=args.frames, stride=args.stride)
    entries, counts = make_scene_list(config, count=args.count, seed=args.list_seed)
    frames = ",".join(map(str, entries[0].frames or ()))
    out = args.out if not args.out.is_absolute() else Path(args.out.name)
    command = ["worldwarp", "eval", "list", "--dataset", args.dataset, "--root", "ROOT", "--split", args.split]
    if args.count is not None:
        command += ["--count", str(args.count), "--list-seed", str(args.list_seed)]
    command += ["--frames", frames, "--stride", str(args.stride), "--out", str(out)]
    root_name = Path(args.root).resolve().name if args.root is not None else "-"
    drawn = (
        f"{args.count} drawn by numpy.random.default_rng({args.list_seed}).choice without replacement"
        if args.count is not None
        else "all of them"
    )
    header = [
        "worldwarp scene list, made by:",
        "  " + shlex.join(command),
        f"dataset: {args.dataset}  split: {args.split}  root: {root_name} (folder name; ROOT above)",
        f"scenes: {counts['found']} found, {counts['too_short']} too short, {counts['kept']} listed"
        + (f" (seed {args.list_seed})" if args.count is not None else ""),
        f"frames: {frames}  stride: {args.stride}",
        f"rule: a clip is kept when it has more than {max(entries[0].frames or (0,))} frames after stride "
        f"{args.stride} (start frame 0); {drawn}; sorted by name",
        f"evaluate with: worldwarp eval --dataset {args.dataset} --root ROOT --split {args.split} "
        f"--stride {args.stride} --list {out} ...",
        "columns: scene  frames  start",
    ]
    write_scene_list(args.out, entries, header)
    print(f"wrote {counts['kept']} of {counts['found']} scenes found ({counts['too_short']} too short) to {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from worldwarp.errors import InputError
    from worldwarp.eval import pipeline_methods  # noqa: F401  (registers worldwarp, no-cache, point-cache, ...)
    from worldwarp.eval.benchmark import (
        METHODS,
        BenchmarkConfig,
        build_method,
        run_benchmark,
        shard_from_environment,
        shard_output_path,
        write_results,
    )
    from worldwarp.eval.datasets import DatasetConfig, load_dataset
    from worldwarp.eval.fid import FIDConfig
    from worldwarp.eval.lpips import LPIPSConfig
    from worldwarp.eval.poses import PoseEstimatorConfig

    if args.dataset is None:
        raise InputError("--dataset is required (re10k, dl3dv, transforms or procedural)")
    if args.method not in METHODS:
        raise InputError(f"unknown method {args.method!r}: choose one of {', '.join(sorted(METHODS))}")
    data = DatasetConfig(
        name=args.dataset,
        root=args.root,
        split=args.split,
        list_file=args.list_file,
        frames=args.frames,
        size=args.size,
        stride=args.stride,
        max_scenes=args.max_scenes,
        start_depth=args.start_depth,
        stereo_sources=args.stereo_sources,
    )
    bench = BenchmarkConfig(
        curve_stride=args.curve_stride,
        camera_accuracy=args.cameras,
        pose_stride=args.pose_stride,
        pose_control=not args.no_control,
        pose=PoseEstimatorConfig(seeds=tuple(args.seeds)),
        lpips=LPIPSConfig(args.lpips, args.lpips_net) if args.lpips else None,
        fid=FIDConfig(args.fid) if args.fid else None,
        save_frames=args.save_frames,
        device=args.device,
    )
    shard = args.shard or shard_from_environment()
    method_config = _method_config(args, METHODS[args.method].config_type)
    scenes = load_dataset(data)
    doc, feats = run_benchmark(
        scenes,
        build_method(args.method, method_config),
        args.method,
        bench,
        shard=shard,
        dataset=args.dataset,
        split=args.split,
        method_config=method_config,
        progress=not args.quiet,
    )
    out = shard_output_path(args.out, *shard)
    write_results(out, doc, feats)
    done = sum(1 for s in doc["scenes"] if not s.get("skipped"))
    print(f"evaluated {done} of {len(doc['scenes'])} scenes (shard {shard[0]}/{shard[1]}) -> {out}")
    return 0


# eval flag -> field of the method's config (the pipeline methods' PipelineMethodConfig)
_METHOD_FLAGS = {
    "preset": "preset",
    "steps": "steps",
    "solver": "solver",
    "strength": "strength",
    "cfg": "guidance_scale",
    "chunk": "chunk_frames",
    "overlap": "overlap",
    "seed": "seed",
    "pipeline_device": "device",
}
_DENOISER_FLAGS = ("denoiser", "checkpoint", "wan_model", "offload", "vae_tiling", "trust_checkpoint")


def _method_config(args: argparse.Namespace, config_type: type) -> object:
    """The method's config with the generation flags applied; flags a method does not take are an error."""
    from dataclasses import fields, replace

    from worldwarp.errors import InputError

    config = config_type()
    names = {f.name for f in fields(config_type)}
    over: dict[str, object] = {}
    given = [flag for flag in _METHOD_FLAGS if getattr(args, flag, None) is not None]
    given_denoiser = [flag for flag in _DENOISER_FLAGS if getattr(args, flag, None) is not None]
    for flag in given:
        if _METHOD_FLAGS[flag] not in names:
            raise InputError(f"--{flag.replace('_', '-')} does not apply to method {args.method!r}")
        over[_METHOD_FLAGS[flag]] = getattr(args, flag)
    if given_denoiser:
        if "denoiser" not in names:
            raise InputError(f"--{given_denoiser[0].replace('_', '-')} does not apply to method {args.method!r}")
        spec = config.denoiser  # type: ignore[attr-defined]
        spec_over = {("name" if flag == "denoiser" else flag): getattr(args, flag) for flag in given_denoiser}
        over["denoiser"] = replace(spec, **spec_over)
        if over["denoiser"].name == "wan" and "device" not in over:  # type: ignore[attr-defined]
            import torch

            over["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return replace(config, **over)
    except (TypeError, ValueError) as e:
        raise InputError(f"method {args.method!r}: {e}") from None
