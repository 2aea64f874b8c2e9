"""A procedural world: primitives, materials, lights and the region a camera may move in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from worldwarp.errors import InputError
from worldwarp.scenes.geometry import Box, Cylinder, PackedGeometry, Plane, Sphere, pack_geometry, signed_distance
from worldwarp.scenes.textures import Texture

__all__ = ["Light", "Material", "Scene", "SceneKind", "WalkRegion"]

Vec3 = tuple[float, float, float]
SceneKind = Literal["room", "open", "custom"]


@dataclass(frozen=True)
class Material:
    """Surface appearance: a texture, and whether the surface emits its colour unlit (a sky)."""

    texture: Texture
    emissive: bool = False


@dataclass(frozen=True)
class Light:
    """A shadow-free light. ``kind="directional"``: ``vector`` is the direction *towards* the light;
    ``kind="point"``: ``vector`` is its position and intensity falls off as 1 / (1 + (d / falloff)^2)."""

    kind: Literal["directional", "point"]
    vector: Vec3
    color: Vec3 = (1.0, 1.0, 1.0)
    intensity: float = 1.0
    falloff: float = 3.0


@dataclass(frozen=True)
class WalkRegion:
    """Axis-aligned region for camera centres: x in [x0, x1], z in [z0, z1], height above ground in
    [h0, h1] (height = -y, since up is -y)."""

    x0: float
    x1: float
    z0: float
    z1: float
    h0: float
    h1: float

    def contains(self, points: Tensor, margin: float = 0.0) -> Tensor:
        """(P,) bool: points (P, 3) inside the region shrunk by ``margin`` horizontally."""
        x, h, z = points[:, 0], -points[:, 1], points[:, 2]
        return (
            (x >= self.x0 + margin)
            & (x <= self.x1 - margin)
            & (z >= self.z0 + margin)
            & (z <= self.z1 - margin)
            & (h >= self.h0)
            & (h <= self.h1)
        )


@dataclass
class Scene:
    """A world of analytic primitives with exact geometry.

    ``sky`` (optional) is a large sphere around the scene that rays from inside hit (every pixel then has a
    finite depth); it is drawn but ignored by :meth:`clearance`.
    """

    kind: SceneKind
    seed: int
    materials: list[Material]
    boxes: list[Box] = field(default_factory=list)
    spheres: list[Sphere] = field(default_factory=list)
    cylinders: list[Cylinder] = field(default_factory=list)
    planes: list[Plane] = field(default_factory=list)
    sky: Sphere | None = None
    lights: list[Light] = field(default_factory=list)
    ambient: float = 0.45
    region: WalkRegion = field(default_factory=lambda: WalkRegion(-1.0, 1.0, -1.0, 1.0, 0.5, 2.0))

    def __post_init__(self) -> None:
        n = len(self.materials)
        prims: list[Box | Sphere | Cylinder | Plane] = [*self.boxes, *self.spheres, *self.cylinders, *self.planes]
        if self.sky is not None:
            prims.append(self.sky)
        for p in prims:
            if not 0 <= p.material < n:
                raise InputError(f"primitive {p} uses material {p.material}, but the scene has {n} materials")

    @property
    def num_primitives(self) -> int:
        return len(self.boxes) + len(self.spheres) + len(self.cylinders) + len(self.planes) + (self.sky is not None)

    def pack(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> PackedGeometry:
        """All primitives (sky included, as a non-solid sphere) as tensors on ``device``."""
        spheres = list(self.spheres)
        non_solid: set[int] = set()
        if self.sky is not None:
            non_solid.add(len(self.boxes) + len(spheres))
            spheres.append(self.sky)
        return pack_geometry(
            self.boxes, spheres, self.cylinders, self.planes, non_solid=non_solid, device=device, dtype=dtype
        )

    def clearance(self, points: Tensor) -> Tensor:
        """(P,) distance of points (P, 3) to the nearest solid surface (negative inside geometry)."""
        return signed_distance(self.pack(points.device, points.dtype), points)
