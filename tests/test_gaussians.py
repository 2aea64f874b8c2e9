import math
from pathlib import Path

import numpy as np
import pytest
import torch

from worldwarp.errors import InputError
from worldwarp.splat.gaussians import SH_C0, Gaussians


def random_gaussians(g: int = 50, degree: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    return Gaussians(
        means=torch.randn(g, 3, generator=gen, dtype=dtype),
        quats=torch.randn(g, 4, generator=gen, dtype=dtype),
        log_scales=torch.randn(g, 3, generator=gen, dtype=dtype) - 3,
        opacity_logits=torch.randn(g, generator=gen, dtype=dtype),
        sh=torch.randn(g, k, 3, generator=gen, dtype=dtype),
    )


def assert_same(a: Gaussians, b: Gaussians) -> None:
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def ply_header(path: Path) -> list[str]:
    raw = path.read_bytes()
    return raw[: raw.index(b"end_header")].decode().splitlines()


# ---------------------------------------------------------------- container
def test_basic_properties() -> None:
    g = random_gaussians(7, degree=2)
    assert g.num == len(g) == 7 and g.sh_degree == 2
    assert torch.allclose(g.rgb, 0.5 + SH_C0 * g.sh[:, 0])
    assert torch.allclose(g.opacities, torch.sigmoid(g.opacity_logits))
    sub = g[torch.tensor([0, 3])]
    assert sub.num == 2 and torch.equal(sub.means[1], g.means[3])
    assert g[2].num == 1 and g[-1].num == 1
    both = Gaussians.cat([g, sub])
    assert both.num == 9 and torch.equal(both.sh[7:], sub.sh)
    d = g.to(dtype=torch.float64)
    assert d.dtype == torch.float64 and d.sh.dtype == torch.float64


def test_detach_and_requires_grad() -> None:
    g = random_gaussians(5).requires_grad_()
    assert g.means.requires_grad and g.sh.requires_grad
    d = g.detach()
    assert not d.means.requires_grad and d.means.data_ptr() == g.means.data_ptr()


def test_from_rgb() -> None:
    means = torch.zeros(4, 3)
    rgb = torch.tensor([[0.0, 0.5, 1.0], [0.2, 0.3, 0.4], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    g = Gaussians.from_rgb(means, rgb, scales=torch.tensor([0.1, 0.2, 0.3, 0.4]), opacities=0.25, sh_degree=1)
    assert g.sh_degree == 1 and torch.all(g.sh[:, 1:] == 0)
    assert torch.allclose(g.rgb, rgb, atol=1e-6)
    assert torch.allclose(g.opacities, torch.full((4,), 0.25), atol=1e-6)
    assert torch.allclose(g.scales[:, 2], torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=1e-7)
    assert torch.equal(g.quats, torch.tensor([[1.0, 0, 0, 0]]).expand(4, 4))
    # opacity 1 gives a finite logit
    assert torch.isfinite(Gaussians.from_rgb(means, rgb, 0.1, 1.0).opacity_logits).all()


def test_validation() -> None:
    g = random_gaussians(3, degree=0)
    with pytest.raises(InputError, match="means"):
        Gaussians(torch.zeros(3, 2), g.quats, g.log_scales, g.opacity_logits, g.sh)
    with pytest.raises(InputError, match="quats"):
        Gaussians(g.means, torch.zeros(3, 3), g.log_scales, g.opacity_logits, g.sh)
    with pytest.raises(InputError, match="K=2"):
        Gaussians(g.means, g.quats, g.log_scales, g.opacity_logits, torch.zeros(3, 2, 3))
    bad = g.means.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        Gaussians(bad, g.quats, g.log_scales, g.opacity_logits, g.sh)
    with pytest.raises(InputError, match="infinite"):
        Gaussians(g.means, g.quats, g.log_scales, torch.tensor([0.0, float("inf"), 0.0]), g.sh)
    with pytest.raises(InputError, match="dtype"):
        Gaussians(g.means, g.quats.double(), g.log_scales, g.opacity_logits, g.sh)


# ---------------------------------------------------------------- PLY
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_exact(tmp_path: Path, degree: int) -> None:
    g = random_gaussians(33, degree=degree)
    path = tmp_path / "scene.ply"
    g.save_ply(path)
    assert_same(Gaussians.load_ply(path), g)
    assert not [p for p in tmp_path.iterdir() if p.name != "scene.ply"]  # no temp file left behind


def test_ply_layout_is_standard_3dgs(tmp_path: Path) -> None:
    g = random_gaussians(5, degree=1)
    path = tmp_path / "s.ply"
    g.save_ply(path)
    header = ply_header(path)
    assert header[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 5"]
    names = [ln.split()[2] for ln in header if ln.startswith("property")]
    assert all(ln.startswith("property float ") for ln in header if ln.startswith("property"))
    assert names == (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(9)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )
    raw = path.read_bytes()
    body = np.frombuffer(raw[raw.index(b"end_header\n") + 11 :], dtype="<f4").reshape(5, len(names))
    col = {n: body[:, i] for i, n in enumerate(names)}
    # channel-major f_rest: all red coefficients (k = 1..3), then green, then blue
    for c in range(3):
        for k in range(3):
            assert np.array_equal(col[f"f_rest_{3 * c + k}"], g.sh[:, 1 + k, c].numpy())
    assert np.array_equal(col["rot_0"], g.quats[:, 0].numpy())  # w first
    assert np.array_equal(col["opacity"], g.opacity_logits.numpy())
    assert np.array_equal(col["scale_2"], g.log_scales[:, 2].numpy())


def _write_ply(path: Path, fmt: str, props: list[tuple[str, str]], rows: np.ndarray, pre: str = "") -> None:
    header = ["ply", f"format {fmt} 1.0", "comment written by a test", pre, f"element vertex {len(rows)}"]
    header += [f"property {t} {n}" for n, t in props]
    header += ["end_header"]
    text = "\n".join(h for h in header if h) + "\n"
    if fmt == "ascii":
        body = "\n".join(" ".join(repr(float(v)) for v in r) for r in rows).encode() + b"\n"
    else:
        end = "<" if fmt == "binary_little_endian" else ">"
        dt = np.dtype([(n, end + {"float": "f4", "double": "f8", "uchar": "u1"}[t]) for n, t in props])
        arr = np.zeros(len(rows), dtype=dt)
        for i, (n, _) in enumerate(props):
            arr[n] = rows[:, i]
        body = arr.tobytes()
    path.write_bytes(text.encode() + body)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_ply_reader_header_variations(tmp_path: Path, fmt: str) -> None:
    g = random_gaussians(6, degree=1, dtype=torch.float64)
    cols = {
        "x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2],
        **{f"f_dc_{c}": g.sh[:, 0, c] for c in range(3)},
        **{f"f_rest_{3 * c + k}": g.sh[:, 1 + k, c] for c in range(3) for k in range(3)},
        "opacity": g.opacity_logits,
        **{f"scale_{i}": g.log_scales[:, i] for i in range(3)},
        **{f"rot_{i}": g.quats[:, i] for i in range(4)},
        "confidence": torch.arange(6.0, dtype=torch.float64),  # an extra property
    }  # fmt: skip
    names = list(cols)[::-1]  # reversed property order
    props = [(n, "double" if i % 2 else "float") for i, n in enumerate(names)]
    if fmt != "ascii":
        props[0] = (names[0], "double")
    rows = np.stack([cols[n].numpy() for n in names], axis=1)
    path = tmp_path / "v.ply"
    _write_ply(path, fmt, props, rows)
    out = Gaussians.load_ply(path, dtype=torch.float64)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.allclose(getattr(out, name), getattr(g, name), atol=1e-6), name


def test_ply_skips_elements_before_vertex(tmp_path: Path) -> None:
    g = random_gaussians(4, degree=0)
    plain = tmp_path / "a.ply"
    g.save_ply(plain)
    raw = plain.read_bytes()
    i = raw.index(b"element vertex")
    j = raw.index(b"end_header\n") + 11
    patched = raw[:i] + b"element camera 2\nproperty double fx\nproperty uchar id\n" + raw[i:j]
    patched += np.zeros(2, dtype=[("fx", "<f8"), ("id", "u1")]).tobytes() + raw[j:]
    (tmp_path / "b.ply").write_bytes(patched)
    assert_same(Gaussians.load_ply(tmp_path / "b.ply"), g)


def test_ply_errors_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.ply"
    p.write_bytes(b"not a ply")
    with pytest.raises(InputError, match="broken.ply"):
        Gaussians.load_ply(p)
    g = random_gaussians(4, degree=0)
    g.save_ply(p)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(InputError, match="broken.ply: truncated"):
        Gaussians.load_ply(p)
    _write_ply(p, "binary_little_endian", [("x", "float"), ("y", "float"), ("z", "float")], np.zeros((2, 3)))
    with pytest.raises(InputError, match="colour"):
        Gaussians.load_ply(p)
    with pytest.raises(InputError, match="missing.ply"):
        Gaussians.load_ply(tmp_path / "missing.ply")


# ---------------------------------------------------------------- .splat
def _splat_bytes(pos: np.ndarray, scale: np.ndarray, rgba: np.ndarray, rot: np.ndarray) -> bytes:
    rec = np.dtype([("pos", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])
    a = np.zeros(len(pos), dtype=rec)
    a["pos"], a["scale"], a["rgba"], a["rot"] = pos, scale, rgba, rot
    assert rec.itemsize == 32
    return a.tobytes()


def test_splat_reader_synthetic(tmp_path: Path) -> None:
    pos = np.array([[1.0, -2.0, 3.5], [0.0, 0.0, 0.0]])
    scale = np.array([[0.01, 0.02, 0.5], [1.0, 1.0, 1.0]])
    rgba = np.array([[255, 0, 128, 255], [10, 20, 30, 64]], dtype=np.uint8)
    # identity (w=1) -> 255 (clipped from 256); 90 degrees about z: w = z = 1/sqrt(2)
    c = 1 / math.sqrt(2)
    rot = np.array([[255, 128, 128, 128], [round((c + 1) * 128), 128, 128, round((c + 1) * 128)]], dtype=np.uint8)
    path = tmp_path / "tiny.splat"
    path.write_bytes(_splat_bytes(pos, scale, rgba, rot))
    g = Gaussians.load_splat(path)
    assert g.num == 2 and g.sh_degree == 0 and g.dtype == torch.float32
    assert torch.allclose(g.means, torch.tensor(pos, dtype=torch.float32))
    assert torch.allclose(g.scales, torch.tensor(scale, dtype=torch.float32), rtol=1e-6)
    assert torch.allclose(g.rgb, torch.tensor(rgba[:, :3] / 255.0, dtype=torch.float32), atol=1e-6)
    assert torch.allclose(g.opacities, torch.tensor([1.0, 64 / 255.0]), atol=1e-6)
    assert torch.allclose(g.quats[0], torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(g.quats[1], torch.tensor([c, 0, 0, c]), atol=5e-3)
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(2))


def test_splat_reader_errors(tmp_path: Path) -> None:
    p = tmp_path / "odd.splat"
    p.write_bytes(b"\0" * 33)
    with pytest.raises(InputError, match="odd.splat.*multiple of 32"):
        Gaussians.load_splat(p)
    nan = _splat_bytes(np.array([[np.nan, 0, 0]]), np.ones((1, 3)), np.zeros((1, 4)), np.full((1, 4), 128))
    p.write_bytes(nan)
    with pytest.raises(InputError, match="Gaussian 0 has a NaN"):
        Gaussians.load_splat(p)


@pytest.mark.parametrize(
    "rel, count", [("teapot/teapot_10k.splat", 10_000), ("spot/spot_10k.splat", 10_000), ("plant/plant.splat", 113_648)]
)
def test_splat_reader_real_files(shared_data: Path, tmp_path: Path, rel: str, count: int) -> None:
    g = Gaussians.load_splat(shared_data / "splats" / rel)
    assert g.num == count
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh"):
        assert torch.isfinite(getattr(g, name)).all()
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(count), atol=1e-5)
    assert ((g.rgb >= -1e-6) & (g.rgb <= 1 + 1e-6)).all()
    extent = (g.means.amax(0) - g.means.amin(0)).max()
    assert 0.1 < float(extent) < 100  # an object-sized scene, not garbage
    assert float(g.scales.median()) < float(extent) / 10  # splats are small compared with the object
    # PLY round trip of real data is exact
    g[:500].save_ply(tmp_path / "real.ply")
    assert_same(Gaussians.load_ply(tmp_path / "real.ply"), g[:500])
