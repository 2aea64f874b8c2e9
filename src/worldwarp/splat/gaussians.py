"""The 3D Gaussian parameter container and its file formats.

A :class:`Gaussians` holds G anisotropic 3D Gaussians in the parameterisation of 3D Gaussian Splatting
(Kerbl et al. 2023): means, rotation quaternions (wxyz, need not be normalised), log-scales, opacity logits and
spherical-harmonic colour coefficients. The colour of the DC term is ``rgb = 0.5 + SH_C0 * sh[:, 0]``.

File formats:

* PLY in the standard 3DGS layout (binary little endian; ``x y z nx ny nz f_dc_0..2 f_rest_* opacity
  scale_0..2 rot_0..3``; ``f_rest`` channel-major: all red coefficients, then green, then blue), which common
  3DGS viewers open. The reader accepts any property order, extra properties, float or double, either
  endianness and ASCII.
* antimatter15 ``.splat`` (read only; 32 bytes per Gaussian: position f32 x3, linear scale f32 x3, RGBA u8,
  quaternion u8 wxyz stored as ``(q + 1) * 128``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldwarp.errors import InputError

__all__ = ["SH_C0", "Gaussians", "num_sh_coeffs", "rgb_to_sh", "sh_to_rgb"]

SH_C0 = 0.28209479177387814
MAX_SH_DEGREE = 3

# probabilities are clamped into [OPACITY_EPS, 1 - OPACITY_EPS] before taking logits (finite logits)
OPACITY_EPS = 1e-6
# linear scales below this are clamped before taking logs (finite log-scales)
SCALE_EPS = 1e-12


def num_sh_coeffs(degree: int) -> int:
    """Number of SH coefficients per colour channel for ``degree``: (degree + 1)^2."""
    return (degree + 1) ** 2


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """DC SH coefficient (..., 3) whose colour is ``rgb`` (..., 3)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh_dc: Tensor) -> Tensor:
    """Colour (..., 3) of the DC SH coefficient ``sh_dc`` (..., 3)."""
    return 0.5 + SH_C0 * sh_dc


def _logit(p: Tensor) -> Tensor:
    p = p.clamp(OPACITY_EPS, 1.0 - OPACITY_EPS)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class Gaussians:
    """G 3D Gaussians.

    Attributes:
        means: (G, 3) centres in world coordinates.
        quats: (G, 4) rotations as quaternions wxyz (normalised on use, need not be unit).
        log_scales: (G, 3) natural log of the standard deviations along the rotated axes.
        opacity_logits: (G,) logits of the opacities (opacity = sigmoid(logit)).
        sh: (G, K, 3) spherical-harmonic coefficients, K = (degree + 1)^2 with degree <= 3.

    Construction checks shapes, one dtype and device for all fields, and finite values; a violation raises
    :class:`~worldwarp.errors.InputError`.
    """

    means: Tensor
    quats: Tensor
    log_scales: Tensor
    opacity_logits: Tensor
    sh: Tensor

    def __post_init__(self) -> None:
        g = self.means.shape[0] if self.means.ndim == 2 else -1
        expected = {
            "means": (g, 3),
            "quats": (g, 4),
            "log_scales": (g, 3),
            "opacity_logits": (g,),
        }
        for name, shape in expected.items():
            t = getattr(self, name)
            if not isinstance(t, Tensor):
                raise InputError(f"Gaussians.{name} must be a torch.Tensor, got {type(t).__name__}")
            if tuple(t.shape) != shape:
                raise InputError(f"Gaussians.{name} must have shape {_fmt_shape(shape)}, got {tuple(t.shape)}")
        if not isinstance(self.sh, Tensor) or self.sh.ndim != 3 or self.sh.shape[0] != g or self.sh.shape[2] != 3:
            shape = tuple(self.sh.shape) if isinstance(self.sh, Tensor) else type(self.sh).__name__
            raise InputError(f"Gaussians.sh must have shape (G={g}, K, 3), got {shape}")
        k = self.sh.shape[1]
        degree = math.isqrt(k) - 1
        if num_sh_coeffs(degree) != k or not 0 <= degree <= MAX_SH_DEGREE:
            raise InputError(f"Gaussians.sh has K={k} coefficients; K must be (degree+1)^2 with degree 0..3")
        for f in fields(self):
            t = getattr(self, f.name)
            if not t.is_floating_point():
                raise InputError(f"Gaussians.{f.name} must be a floating-point tensor, got {t.dtype}")
            if t.dtype != self.means.dtype or t.device != self.means.device:
                raise InputError(
                    f"Gaussians.{f.name} is {t.dtype} on {t.device}, but means are {self.means.dtype} on "
                    f"{self.means.device}; all fields must share dtype and device"
                )
            if not bool(torch.isfinite(t.detach()).all()):
                raise InputError(f"Gaussians.{f.name} has a NaN or infinite value")

    # ------------------------------------------------------------------ basics
    @property
    def num(self) -> int:
        """Number of Gaussians G."""
        return self.means.shape[0]

    def __len__(self) -> int:
        return self.num

    @property
    def sh_degree(self) -> int:
        """SH degree (0..3) of the colour coefficients."""
        return math.isqrt(self.sh.shape[1]) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def scales(self) -> Tensor:
        """(G, 3) linear standard deviations."""
        return self.log_scales.exp()

    @property
    def opacities(self) -> Tensor:
        """(G,) opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def rgb(self) -> Tensor:
        """(G, 3) colour of the DC SH term (view-independent part)."""
        return sh_to_rgb(self.sh[:, 0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        """A copy on ``device`` with floating-point ``dtype`` (None keeps the current one)."""
        return Gaussians(*(getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)))

    def detach(self) -> Gaussians:
        """The same values without autograd history."""
        return Gaussians(*(getattr(self, f.name).detach() for f in fields(self)))

    def clone(self) -> Gaussians:
        return Gaussians(*(getattr(self, f.name).clone() for f in fields(self)))

    def requires_grad_(self, flag: bool = True) -> Gaussians:
        """Set ``requires_grad`` on every field in place; returns self."""
        for f in fields(self):
            getattr(self, f.name).requires_grad_(flag)
        return self

    def __getitem__(self, idx: int | slice | Tensor | list[int]) -> Gaussians:
        """A subset (index, slice, index tensor or boolean mask over G)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        return Gaussians(*(getattr(self, f.name)[idx] for f in fields(self)))

    @staticmethod
    def cat(items: list[Gaussians]) -> Gaussians:
        """Concatenate Gaussians of one SH degree."""
        if not items:
            raise InputError("cannot concatenate an empty list of Gaussians")
        if len({g.sh_degree for g in items}) != 1:
            raise InputError("cannot concatenate Gaussians of different SH degrees")
        return Gaussians(*(torch.cat([getattr(g, f.name) for g in items]) for f in fields(Gaussians)))

    @classmethod
    def from_rgb(
        cls,
        means: Tensor,
        rgb: Tensor,
        scales: Tensor | float,
        opacities: Tensor | float,
        sh_degree: int = 0,
    ) -> Gaussians:
        """Gaussians with identity rotation from colours and linear parameters.

        Args:
            means: (G, 3) centres.
            rgb: (G, 3) colours in [0, 1] (the DC term; higher SH coefficients start at 0).
            scales: (G, 3), (G,) or a float: linear standard deviations (isotropic when (G,) or float).
            opacities: (G,) or a float in (0, 1); clamped to [1e-6, 1 - 1e-6] before the logit.
            sh_degree: SH degree 0..3 of the result.
        """
        if not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise InputError(f"sh_degree must be 0..{MAX_SH_DEGREE}, got {sh_degree}")
        if means.ndim != 2 or means.shape[1] != 3:
            raise InputError(f"means must have shape (G, 3), got {tuple(means.shape)}")
        g = means.shape[0]
        dtype, device = means.dtype, means.device
        if rgb.shape != (g, 3):
            raise InputError(f"rgb must have shape ({g}, 3), got {tuple(rgb.shape)}")
        scales = torch.as_tensor(scales, dtype=dtype, device=device)
        if scales.ndim == 0 or scales.shape == (g,):
            scales = scales.reshape(-1, 1).expand(g, 3)
        if scales.shape != (g, 3):
            raise InputError(f"scales must have shape ({g}, 3), ({g},) or be a number, got {tuple(scales.shape)}")
        opacities = torch.as_tensor(opacities, dtype=dtype, device=device).expand(g)
        quats = torch.zeros(g, 4, dtype=dtype, device=device)
        quats[:, 0] = 1.0
        sh = torch.zeros(g, num_sh_coeffs(sh_degree), 3, dtype=dtype, device=device)
        sh[:, 0] = rgb_to_sh(rgb.to(dtype))
        return cls(
            means=means,
            quats=quats,
            log_scales=scales.clamp_min(SCALE_EPS).log(),
            opacity_logits=_logit(opacities),
            sh=sh,
        )

    # ------------------------------------------------------------------ PLY
    def save_ply(self, path: str | os.PathLike) -> None:
        """Write the standard 3DGS PLY (binary little endian, float32), atomically."""
        path = Path(path)
        g, k = self.num, self.sh.shape[1]
        d = self.detach().to("cpu", torch.float32)
        names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        names += [f"f_rest_{i}" for i in range(3 * (k - 1))]
        names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
        rest = d.sh[:, 1:].transpose(1, 2).reshape(g, -1)  # (G, 3*(K-1)) channel-major
        cols = [d.means, torch.zeros(g, 3), d.sh[:, 0], rest, d.opacity_logits[:, None], d.log_scales, d.quats]
        data = torch.cat(cols, dim=1).numpy().astype("<f4")
        assert data.shape == (g, len(names))
        header = ["ply", "format binary_little_endian 1.0", f"element vertex {g}"]
        header += [f"property float {n}" for n in names]
        header += ["end_header"]
        blob = ("\n".join(header) + "\n").encode("ascii") + data.tobytes()
        _atomic_write(path, blob)

    @classmethod
    def load_ply(cls, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Gaussians:
        """Read a 3DGS PLY (any property order, extra properties, float/double, binary or ASCII)."""
        path = Path(path)
        cols = _read_ply_vertices(path)
        missing = [n for n in ("x", "y", "z") if n not in cols]
        if missing:
            raise InputError(f"{path}: PLY vertex element lacks properties {', '.join(missing)}")
        g = len(cols["x"])

        def stack(names: list[str]) -> np.ndarray:
            absent = [n for n in names if n not in cols]
            if absent:
                raise InputError(f"{path}: PLY vertex element lacks properties {', '.join(absent)}")
            return np.stack([cols[n].astype(np.float64) for n in names], axis=1).reshape(g, len(names))

        means = stack(["x", "y", "z"])
        if "f_dc_0" in cols:
            dc = stack(["f_dc_0", "f_dc_1", "f_dc_2"])
        elif "red" in cols:  # plain coloured point cloud
            rgb = stack(["red", "green", "blue"])
            rgb = rgb / (255.0 if cols["red"].dtype == np.uint8 else 1.0)
            dc = (rgb - 0.5) / SH_C0
        else:
            raise InputError(f"{path}: PLY has neither f_dc_0..2 nor red/green/blue colour properties")
        n_rest = sum(1 for n in cols if n.startswith("f_rest_"))
        k = 1 + n_rest // 3
        degree = math.isqrt(k) - 1
        if n_rest % 3 or num_sh_coeffs(degree) != k or degree > MAX_SH_DEGREE:
            raise InputError(f"{path}: {n_rest} f_rest_* properties do not form SH of degree 1..3")
        sh = np.zeros((g, k, 3))
        sh[:, 0] = dc
        if n_rest:
            rest = stack([f"f_rest_{i}" for i in range(n_rest)])  # channel-major
            sh[:, 1:] = rest.reshape(g, 3, k - 1).transpose(0, 2, 1)
        opacity = stack(["opacity"])[:, 0]
        log_scales = stack(["scale_0", "scale_1", "scale_2"])
        quats = stack(["rot_0", "rot_1", "rot_2", "rot_3"])
        arrays = [means, quats, log_scales, opacity, sh]
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(dtype) for a in arrays]
        try:
            return cls(*tensors)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None

    # ------------------------------------------------------------------ .splat
    @classmethod
    def load_splat(cls, path: str | os.PathLike, dtype: torch.dtype = torch.float32) -> Gaussians:
        """Read an antimatter15 ``.splat`` file (SH degree 0 result).

        Layout per Gaussian (32 bytes, little endian): position f32 x3, linear scale f32 x3, RGBA u8 (alpha =
        opacity), quaternion u8 wxyz with value ``(q + 1) * 128``, normalised after decoding. Scales become
        log-scales (clamped at 1e-12), opacities logits (clamped into [1e-6, 1 - 1e-6]).
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror})") from None
        if len(raw) % 32:
            raise InputError(f"{path}: size {len(raw)} bytes is not a multiple of 32 (not a .splat file)")
        rec = np.dtype([("pos", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])
        a = np.frombuffer(raw, dtype=rec)
        pos = a["pos"].astype(np.float64)
        scale = a["scale"].astype(np.float64)
        for name, v in (("position", pos), ("scale", scale)):
            bad = ~np.isfinite(v).all(axis=1)
            if bad.any():
                raise InputError(f"{path}: Gaussian {int(np.argmax(bad))} has a NaN or infinite {name}")
        if (scale < 0).any():
            raise InputError(f"{path}: Gaussian {int(np.argmax((scale < 0).any(axis=1)))} has a negative scale")
        rgba = a["rgba"].astype(np.float64) / 255.0
        q = (a["rot"].astype(np.float64) - 128.0) / 128.0
        norm = np.linalg.norm(q, axis=1, keepdims=True)
        q = np.where(norm > 0, q / np.maximum(norm, 1e-12), np.array([1.0, 0.0, 0.0, 0.0]))
        t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).to(dtype)  # noqa: E731
        return cls(
            means=t(pos),
            quats=t(q),
            log_scales=t(np.log(np.maximum(scale, SCALE_EPS))),
            opacity_logits=_logit(torch.from_numpy(rgba[:, 3])).to(dtype),
            sh=t((rgba[:, None, :3] - 0.5) / SH_C0),
        )


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join("G" if s < 0 else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _atomic_write(path: Path, blob: bytes) -> None:
    from worldwarp.io.atomic import atomic_write_bytes

    atomic_write_bytes(path, blob)


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _read_ply_vertices(path: Path) -> dict[str, np.ndarray]:
    """Columns of the ``vertex`` element of a PLY file, by property name."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file (missing 'ply' magic or 'end_header')")
    nl = raw.find(b"\n", end)
    body_start = len(raw) if nl < 0 else nl + 1
    lines = raw[:end].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str | None]]]] = []  # name, count, [(prop, type|None=list)]
    for lineno, line in enumerate(lines, start=1):
        tok = line.split()
        if not tok or tok[0] in ("ply", "comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
        elif tok[0] == "element" and len(tok) == 3:
            try:
                elements.append((tok[1], int(tok[2]), []))
            except ValueError:
                raise InputError(f"{path}:{lineno}: bad element count {tok[2]!r}") from None
        elif tok[0] == "property" and elements:
            if len(tok) == 3 and tok[1] in _PLY_TYPES:
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
            elif len(tok) == 5 and tok[1] == "list":
                elements[-1][2].append((tok[4], None))
            else:
                raise InputError(f"{path}:{lineno}: unsupported property line {line.strip()!r}")
        else:
            raise InputError(f"{path}:{lineno}: unexpected header line {line.strip()!r}")
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise InputError(f"{path}: unsupported PLY format {fmt!r}")
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise InputError(f"{path}: PLY has no 'vertex' element")
    body = raw[body_start:]
    if fmt == "ascii":
        text = body.decode("ascii", errors="replace").split("\n")
        skip = 0
        for name, count, _ in elements:
            if name == "vertex":
                break
            skip += count
        _, count, props = elements[names.index("vertex")]
        if any(t is None for _, t in props):
            raise InputError(f"{path}: list properties in the vertex element are not supported")
        try:
            rows = [list(map(float, ln.split())) for ln in text[skip : skip + count]]
            arr = np.asarray(rows, dtype=np.float64).reshape(count, len(props))
        except ValueError:
            raise InputError(f"{path}: malformed ASCII vertex data") from None
        return {p: arr[:, i].astype(np.dtype(t)) for i, (p, t) in enumerate(props)}
    endian = "<" if fmt == "binary_little_endian" else ">"
    offset = 0
    for name, count, props in elements:
        if any(t is None for _, t in props):
            raise InputError(f"{path}: list property in element {name!r} before/in the vertex data is not supported")
        dt = np.dtype([(p, endian + t) for p, t in props])  # type: ignore[operator]
        if name == "vertex":
            if len(body) < offset + count * dt.itemsize:
                raise InputError(
                    f"{path}: truncated: {count} vertices need {count * dt.itemsize} bytes, "
                    f"file has {len(body) - offset}"
                )
            arr = np.frombuffer(body, dtype=dt, count=count, offset=offset)
            return {p: arr[p].astype(arr[p].dtype.newbyteorder("=")) for p, _ in props}
        offset += count * dt.itemsize
    raise AssertionError("unreachable")
