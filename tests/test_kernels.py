"""Native kernels: the guard in front of every ctypes call, the declared signatures against the C sources, camera
packing, building on first use, and the package data that ships the sources."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import torch

from worldwarp.splat.kernels import build, guard, ops
from worldwarp.splat.kernels.guard import KernelArgumentError, NativeFunction

ROOT = Path(__file__).resolve().parents[1]
KERNEL_DIR = Path(build.__file__).parent
FUNCTIONS = [f for f in vars(ops).values() if isinstance(f, NativeFunction)]


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if a call gets as far as loading (let alone running) a native library."""

    def reached(name: str) -> None:
        raise AssertionError(f"native library {name!r} was reached")

    monkeypatch.setattr(build, "load_library", reached)


def _scene(g: int = 5, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "means": torch.randn(g, 3, generator=gen).to(dtype),
        "quats": torch.randn(g, 4, generator=gen).to(dtype),
        "log_scales": torch.randn(g, 3, generator=gen).to(dtype),
        "logits": torch.randn(g, generator=gen).to(dtype),
        "colors": torch.rand(g, 3, generator=gen).to(dtype),
        "camera": torch.zeros(16, dtype=dtype),
    }


def _forward(**change: object) -> None:
    args = {**_scene(), **change}
    ops.raster_forward(*args.values(), 8, 12, 0.01, 1e-5, False)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- the guard
@pytest.mark.usefixtures("no_native")
def test_guard_rejects_wrong_dtype_device_shape_and_layout_before_native_code() -> None:
    s = _scene()
    with pytest.raises(KernelArgumentError, match=r"'quats' must be a C-contiguous float32 .* got dtype float64"):
        _forward(quats=s["quats"].double())
    with pytest.raises(KernelArgumentError, match="float type must be float32 or float64, got torch.float16"):
        _forward(**{k: v.half() for k, v in s.items()})
    with pytest.raises(KernelArgumentError, match=r"'colors' .* got a tensor on meta"):
        _forward(colors=torch.empty(5, 3, device="meta"))
    with pytest.raises(KernelArgumentError, match=r"'quats' .* of shape \(G, 4\) = \(5, 4\); got shape \(5, 3\)"):
        _forward(quats=s["quats"][:, :3].contiguous())
    with pytest.raises(KernelArgumentError, match=r"'log_scales' .* \(G, 3\) = \(5, 3\); got shape \(6, 3\)"):
        _forward(log_scales=torch.zeros(6, 3))  # one symbol, one size across the call
    with pytest.raises(KernelArgumentError, match=r"'camera' .* of shape \(16,\); got shape \(4, 4\)"):
        _forward(camera=torch.zeros(4, 4))
    with pytest.raises(KernelArgumentError, match=r"'means' .* got a non-contiguous tensor \(strides \(1, 5\)\)"):
        _forward(means=torch.zeros(3, 5).T)
    with pytest.raises(KernelArgumentError, match="'logits' must be a C-contiguous float32 CPU tensor .* got list"):
        _forward(logits=[0.0] * 5)
    with pytest.raises(KernelArgumentError, match="'means' must be a tensor, got ndarray"):
        _forward(means=s["means"].numpy())


@pytest.mark.usefixtures("no_native")
def test_guard_checks_every_wrapper() -> None:
    a = torch.rand(2, 9, 9)
    taps = torch.full((11,), 1 / 11)
    with pytest.raises(KernelArgumentError, match="at least as large as the window"):
        ops.ssim_planes(a, a, taps, 1e-4, 9e-4, True)
    with pytest.raises(KernelArgumentError, match=r"'b' .* \(P, H, W\) = \(2, 9, 9\); got shape \(2, 9, 8\)"):
        ops.ssim_planes(a, a[..., :8].contiguous(), taps[:3].contiguous(), 1e-4, 9e-4, False)
    with pytest.raises(KernelArgumentError, match="'taps' .* got dtype float64"):
        ops.ssim_planes(a, a, taps[:3].double(), 1e-4, 9e-4, False)
    h, w = 6, 7
    color, alpha, target = torch.rand(h, w, 3), torch.rand(h, w), torch.rand(3, h, w)
    ok = torch.ones(h, w, dtype=torch.bool)
    args = (color, alpha, alpha, torch.zeros(3), target, ok, alpha, taps)
    with pytest.raises(KernelArgumentError, match="with an SSIM term the image must be at least as large"):
        ops.fit_loss(*args, (0.8, 0.2, 0.0), 1e-3, 1e-6, 1e-4, 9e-4)
    with pytest.raises(KernelArgumentError, match="'depth_ok' must be a C-contiguous bool CPU tensor.*uint8"):
        ops.fit_loss(*args[:5], ok.to(torch.uint8), *args[6:], (0.8, 0.0, 0.0), 1e-3, 1e-6, 1e-4, 9e-4)
    with pytest.raises(KernelArgumentError, match=r"'target' .* \(3, H, W\) = \(3, 6, 7\); got shape \(6, 7, 3\)"):
        ops.fit_loss(*args[:4], color, *args[5:], (0.8, 0.0, 0.0), 1e-3, 1e-6, 1e-4, 9e-4)
    depth, cams, hdepth = torch.ones(h, w), torch.zeros(2, 16), torch.ones(2, 4, 5)
    with pytest.raises(KernelArgumentError, match="'valid' must be a C-contiguous bool CPU tensor"):
        ops.reproject(depth, torch.ones(h, w), cams[0], cams, hdepth, 0.1, 0.01, False, 1)
    with pytest.raises(KernelArgumentError, match=r"'history_depths' .* \(V, Hh, Wh\) = \(2, \?, \?\); got shape"):
        ops.reproject(depth, ok, cams[0], cams, hdepth[:1].contiguous(), 0.1, 0.01, False, 1)
    with pytest.raises(KernelArgumentError, match="window must be >= 1"):
        ops.reproject(depth, ok, cams[0], cams, hdepth, 0.1, 0.01, False, 0)
    with pytest.raises(KernelArgumentError, match="'window' must be an int that fits a C int, got 3.0"):
        ops.reproject(depth, ok, cams[0], cams, hdepth, 0.1, 0.01, False, 3.0)  # type: ignore[arg-type]
    with pytest.raises(KernelArgumentError, match="'bilinear' must be a bool, got 1"):
        ops.reproject(depth, ok, cams[0], cams, hdepth, 0.1, 0.01, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(KernelArgumentError, match="'near' must be a number, got nan"):
        ops.reproject(depth, ok, cams[0], cams, hdepth, 0.1, float("nan"), False, 1)


@pytest.mark.usefixtures("no_native")
def test_guard_backward_sizes_come_from_the_forward_context() -> None:
    context = ops.RasterContext(1234, torch.float32, {"G": 5, "H": 8, "W": 12})  # a fake handle: never freed
    g = torch.zeros(8, 12)
    try:
        with pytest.raises(KernelArgumentError, match=r"'g_color' .* = \(8, 12, 3\); got shape \(8, 11, 3\)"):
            ops.raster_backward(context, torch.zeros(5, 4), torch.zeros(8, 11, 3), g, g)
        with pytest.raises(KernelArgumentError, match=r"'quats' .* \(G, 4\) = \(5, 4\); got shape \(6, 4\)"):
            ops.raster_backward(context, torch.zeros(6, 4), torch.zeros(8, 12, 3), g, g)
    finally:
        context.handle = None  # as after free()
    with pytest.raises(RuntimeError, match="already freed"):
        ops.raster_backward(context, torch.zeros(5, 4), torch.zeros(8, 12, 3), g, g)


def test_guard_declarations_and_call_arguments(no_native: None) -> None:
    fn = NativeFunction(
        "raster", "ww_test", (guard.Dim("N"), guard.Array("x", ("N", 2)), guard.Num("scale"), guard.Threads())
    )
    with pytest.raises(KernelArgumentError, match=r"missing arguments \['scale'\], unexpected \['scal'\]"):
        fn(torch.float32, x=torch.zeros(3, 2), scal=1.0)
    with pytest.raises(AssertionError, match="native library 'raster' was reached"):  # valid arguments go through
        fn(torch.float32, x=torch.zeros(3, 2), scale=1.0)
    with pytest.raises(ValueError, match="appear in no array shape"):
        NativeFunction("raster", "ww_bad", (guard.Dim("N"), guard.Array("x", ("M",))))
    with pytest.raises(ValueError, match="duplicate parameter names"):
        NativeFunction("raster", "ww_bad", (guard.Num("a"), guard.Num("a")))


def _c_params(source: str, name: str) -> list[str]:
    """The parameter types of ``name##SUFFIX`` in an export macro of ``source`` (macro line ends removed)."""
    text = source.replace("\\\n", " ")
    m = re.search(rf"\b{name}_##SUFFIX\(([^)]*)\)", text)
    assert m, f"{name} not exported"
    return [" ".join(p.split()[:-1]) for p in m.group(1).split(",")]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_declarations_match_the_c_sources(fn: NativeFunction) -> None:
    c_types = _c_params((KERNEL_DIR / f"{fn.library}.cpp").read_text(), fn.name)
    assert len(c_types) == len(fn.params), (c_types, fn.params)
    for p, c in zip(fn.params, c_types, strict=True):
        if isinstance(p, (guard.Array, guard.Handle)):
            assert c.endswith("*"), (p, c)
        elif isinstance(p, guard.Num):
            assert c == "double", (p, c)
        elif isinstance(p, guard.Dim) and p.ctype is not guard.Dim("x").ctype:
            assert c == "int64_t", (p, c)
        else:
            assert isinstance(p, (guard.Dim, guard.Int, guard.Flag, guard.Threads)) and c == "int", (p, c)
    if build.kernels_available(fn.library):
        lib = build.load_library(fn.library)
        for suffix in ("f32", "f64"):
            assert hasattr(lib, f"{fn.name}_{suffix}")


# ---------------------------------------------------------------------------------------------- cameras
def test_pack_cameras_layout() -> None:
    R = torch.arange(9, dtype=torch.float64).reshape(3, 3)
    t = torch.tensor([10.0, 11.0, 12.0], dtype=torch.float64)
    K = torch.tensor([[100.0, 0, 30.5], [0, 90.0, 20.5], [0, 0, 1]], dtype=torch.float64)
    one = ops.pack_cameras(R, t, K, torch.float32)
    assert one.dtype == torch.float32 and one.is_contiguous()
    assert one.tolist() == [*range(9), 10, 11, 12, 100, 90, 30.5, 20.5]
    many = ops.pack_cameras(R.expand(2, 3, 3), t.expand(2, 3), K.expand(2, 3, 3), torch.float64)
    assert many.shape == (2, 16) and torch.equal(many[1], one.double())


# ---------------------------------------------------------------------------------------------- building
def _run(code: str, env: dict[str, str]) -> str:
    import os

    res = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_built_on_first_use_into_the_cache_dir(tmp_path: Path) -> None:
    code = (
        "import worldwarp, worldwarp.splat.kernels.ops, worldwarp.splat.cache, worldwarp.warp\n"
        "from pathlib import Path\n"
        "from worldwarp.splat.kernels import build\n"
        "print(build.cache_dir().exists())\n"
        "print(build.kernels_available('reproject'))\n"
        "print(sorted(p.name.split('_')[1] for p in build.cache_dir().glob('*.so')))\n"
    )
    out = _run(code, {"WORLDWARP_CACHE": str(tmp_path)}).split("\n")
    if out[1] != "True":
        pytest.skip("no working C++ compiler here")
    assert out[0] == "False"  # importing built nothing
    assert out[2] == "['reproject']"  # the first use built that library only
    assert (tmp_path / "kernels").is_dir()


def test_no_compiler_is_a_build_error(tmp_path: Path) -> None:
    code = (
        "from worldwarp.splat.kernels import KernelBuildError, build\n"
        "print(build.kernels_available('losses'))\n"
        "try:\n    build.load_library('losses')\nexcept KernelBuildError as e:\n    print(e)\n"
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    out = _run(code, {"WORLDWARP_CACHE": str(tmp_path), "PATH": str(empty), "CXX": ""}).split("\n")
    assert out[:2] == ["False", "no C++ compiler found (set $CXX)"]
    with pytest.raises(ValueError, match="unknown kernel library 'opengl'"):
        build.load_library("opengl")


def test_package_data_ships_every_kernel_source() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["worldwarp"]
    package = ROOT / "src" / "worldwarp"
    sources = [p.relative_to(package).as_posix() for p in KERNEL_DIR.iterdir() if p.suffix in (".cpp", ".h")]
    assert {f"{name}.cpp" for name in build.LIBRARIES} | {"common.h"} == {Path(s).name for s in sources}
    for s in sources:
        assert any(fnmatch.fnmatch(s, g) for g in globs), s
