"""Where things are in a procedural room: its size, the door, windows and
paintings on its walls, the furniture on its floor and the paths of its
moving objects. Geometry and names only; :mod:`.procedural` gives them
their looks and renders them.

Frame: metres, +z up, floor at z = 0, the room centred on the origin in x
and y. Walls are numbered 0..3: x = min, x = max, y = min, y = max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .textures import PALETTE

MAX_BOXES = 24  # the renderer gives each box 6 surface ids out of 255
FURNITURE_KINDS = ("table", "bookshelf", "cabinet", "bed", "sofa", "stool", "barrel", "plant", "ball")
WALL_NORMALS = [(1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0)]  # inward, walls 0..3


# ------------------------------------------------------------------- objects


@dataclass(frozen=True)
class SceneObject:
    """A named static piece of furniture. ``center`` is the centre of its
    bounding box (world, metres), ``size`` the box's full extents (x, y, z);
    ``footprint`` "box" or "circle" (radius ``size[0] / 2``)."""

    name: str
    kind: str
    color: str
    center: np.ndarray
    size: np.ndarray
    footprint: str = "box"

    def distance_xy(self, xy) -> np.ndarray:
        """Horizontal distance from points (..., 2) to the footprint (0 inside)."""
        q = np.asarray(xy, dtype=np.float64)[..., :2] - self.center[:2]
        if self.footprint == "circle":
            return np.maximum(np.hypot(q[..., 0], q[..., 1]) - 0.5 * self.size[0], 0.0)
        e = np.maximum(np.abs(q) - 0.5 * self.size[:2], 0.0)
        return np.hypot(e[..., 0], e[..., 1])


@dataclass(frozen=True)
class MovingObject:
    """A named object on a periodic path: an ellipse in the floor plane
    (centre ``path_center``, radii ``path_radii``, angular speed ``omega``
    rad/s, phase ``phase``) plus, for balls, a bounce ``|sin|`` of height
    ``bounce`` and period ``bounce_period`` s. ``kind`` is "ball" (sphere of
    ``radius``) or "figure" (an upright cylinder body of ``radius`` and
    ``height`` with a head on top)."""

    name: str
    kind: str
    color: str
    radius: float
    height: float
    path_center: np.ndarray
    path_radii: np.ndarray
    omega: float
    phase: float
    bounce: float = 0.0
    bounce_period: float = 1.0

    def xy_at(self, t) -> np.ndarray:
        a = self.omega * np.asarray(t, dtype=np.float64) + self.phase
        return np.stack([self.path_center[0] + self.path_radii[0] * np.cos(a),
                         self.path_center[1] + self.path_radii[1] * np.sin(a)], -1)

    def center_at(self, t: float) -> np.ndarray:
        """Centre of the object's bounding box at time t (seconds), (3,)."""
        x, y = self.xy_at(t)
        if self.kind == "ball":
            z = self.radius + self.bounce * abs(math.sin(math.pi * t / self.bounce_period))
        else:
            z = 0.5 * self.height
        return np.array([x, y, z])

    @property
    def period(self) -> float:
        return 2 * math.pi / abs(self.omega)


@dataclass(frozen=True)
class WallFixture:
    """A door, window or painting on a wall. ``wall`` 0..3 is the wall at
    x = min, x = max, y = min, y = max; ``center`` the world centre of its
    rectangle (on the wall plane), ``width`` x ``height`` its size in metres
    including the frame; ``normal`` points into the room."""

    kind: str
    wall: int
    center: np.ndarray
    width: float
    height: float
    normal: np.ndarray


@dataclass
class Piece:
    """A piece of furniture in world coordinates: boxes, cylinders and
    spheres, each naming a *skin* that :mod:`.procedural` turns into
    textures (``skins``)."""

    kind: str
    color: str
    boxes: list = field(default_factory=list)  # (lo, hi, skin name)
    cylinders: list = field(default_factory=list)  # (x, y, r, z0, z1, side skin, cap skin)
    spheres: list = field(default_factory=list)  # (center, r, skin)
    footprint: str = "box"
    against_wall: int | None = None
    wall_span: tuple | None = None  # (u0, u1, top) along the wall it stands against
    dims: tuple = (0.0, 0.0, 0.0)  # (width, depth, height)
    skins: dict = field(default_factory=dict)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        los, his = [], []
        for lo, hi, _ in self.boxes:
            los.append(lo), his.append(hi)
        for x, y, r, z0, z1, *_ in self.cylinders:
            los.append(np.array([x - r, y - r, z0])), his.append(np.array([x + r, y + r, z1]))
        for c, r, _ in self.spheres:
            los.append(np.asarray(c) - r), his.append(np.asarray(c) + r)
        return np.min(los, 0), np.max(his, 0)


# -------------------------------------------------------------------- layout


class RoomLayout:
    """The geometry of one room, drawn from ``rng``: ``bounds`` (2, 3),
    ``wall_items`` (dicts: kind, wall, u0, u1 along the wall, z0, z1, frame
    width), ``fixtures``, ``pieces``, ``objects`` (one per piece) and
    ``movers``."""

    def __init__(self, rng: np.random.Generator):
        sx, sy, h = rng.uniform(4.0, 8.0), rng.uniform(4.0, 8.0), rng.uniform(2.6, 3.2)
        self.bounds = np.array([[-sx / 2, -sy / 2, 0.0], [sx / 2, sy / 2, h]])
        self.wall_items: list[dict] = []
        self._place_wall_items(rng)
        self.fixtures = [self._fixture(it) for it in self.wall_items]
        self.pieces = self._place_furniture(rng)
        self.objects = []
        for p in self.pieces:
            lo, hi = p.bounds()
            self.objects.append(SceneObject(f"{p.color} {p.kind}", p.kind, p.color, 0.5 * (lo + hi), hi - lo, p.footprint))
        self.movers = self._make_movers(rng)

    @property
    def size(self) -> np.ndarray:
        return self.bounds[1] - self.bounds[0]

    def is_free(self, q: np.ndarray, radius: float) -> np.ndarray:
        """q (N, 3) -> bool (N,): inside the room (0 < z < height), at least
        ``radius`` from the walls and from every furniture footprint."""
        lo, hi = self.bounds
        ok = np.all(q[:, :2] >= lo[:2] + radius, 1) & np.all(q[:, :2] <= hi[:2] - radius, 1)
        ok &= (q[:, 2] > lo[2]) & (q[:, 2] < hi[2])
        if self.objects:
            ok &= (self._footprint_distances(q[:, :2]) >= radius).all(1)
        return ok

    def _footprint_distances(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) -> (N, O): :meth:`SceneObject.distance_xy` of every object
        at once (the same arithmetic per element; the env checks every move)."""
        key = tuple(map(id, self.objects))
        cache = getattr(self, "_footprints", None)
        if cache is None or cache[0] != key:
            centres = np.array([o.center[:2] for o in self.objects], dtype=np.float64)
            halves = np.array([0.5 * o.size[:2] for o in self.objects], dtype=np.float64)
            circles = np.array([o.footprint == "circle" for o in self.objects])
            cache = self._footprints = (key, centres, halves, circles)
        _, centres, halves, circles = cache
        q = xy[:, None, :] - centres  # (N, O, 2)
        e = np.maximum(np.abs(q) - halves, 0.0)
        box = np.hypot(e[..., 0], e[..., 1])
        circle = np.maximum(np.hypot(q[..., 0], q[..., 1]) - halves[:, 0], 0.0)
        return np.where(circles, circle, box)

    def sample_position(self, rng: np.random.Generator, radius: float, z: float) -> np.ndarray:
        """A free position at height z, (3,) float64 (rejection sampling)."""
        lo, hi = self.bounds
        for _ in range(100):
            xy = rng.uniform(lo[:2] + radius, hi[:2] - radius, size=(32, 2))
            pts = np.concatenate([xy, np.full((32, 1), z)], 1)
            ok = np.flatnonzero(self.is_free(pts, radius))
            if ok.size:
                return pts[ok[0]]
        raise RuntimeError("no free position found in this room")

    # ------------------------------------------------------------ wall items

    def wall_length(self, wall: int) -> float:
        """Walls 0, 1 (x = const) run along y; walls 2, 3 along x."""
        return float(self.size[1] if wall < 2 else self.size[0])

    def _wall_free(self, wall: int, u0: float, u1: float, gap: float) -> bool:
        if u0 < 0.25 or u1 > self.wall_length(wall) - 0.25:
            return False
        return all(it["wall"] != wall or u1 + gap <= it["u0"] or u0 >= it["u1"] + gap for it in self.wall_items)

    def _place_wall_items(self, rng: np.random.Generator) -> None:
        """A door, 1-3 windows and 0-2 paintings on random walls, not overlapping."""
        H = self.size[2]
        specs = []
        if rng.uniform() < 0.9:
            w = rng.uniform(0.8, 0.95)
            specs.append(dict(kind="door", width=w, z0=0.0, z1=rng.uniform(2.0, 2.1), frame=0.07))
        for _ in range(int(rng.integers(1, 4))):
            z0 = rng.uniform(0.75, 1.0)
            z1 = min(H - 0.3, rng.uniform(2.0, 2.3))
            specs.append(dict(kind="window", width=rng.uniform(0.8, 1.6), z0=z0, z1=z1, frame=0.06))
        for _ in range(int(rng.integers(0, 3))):
            ph, zc = rng.uniform(0.4, 0.75), rng.uniform(1.45, 1.7)
            specs.append(dict(kind="painting", width=rng.uniform(0.5, 1.1), z0=zc - ph / 2, z1=zc + ph / 2, frame=0.04))
        for spec in specs:
            for _ in range(30):
                wall = int(rng.integers(4))
                L = self.wall_length(wall)
                u0 = rng.uniform(0.25, max(0.26, L - 0.25 - spec["width"]))
                if self._wall_free(wall, u0, u0 + spec["width"], gap=0.35):
                    self.wall_items.append(dict(spec, wall=wall, u0=u0, u1=u0 + spec["width"]))
                    break
        if not any(it["kind"] == "window" for it in self.wall_items):  # every room shows some sky
            spec = specs[1] if specs[0]["kind"] == "door" else specs[0]
            wall = int(np.argmax([self.wall_length(w) for w in range(4)]))
            u0 = 0.5 * (self.wall_length(wall) - spec["width"])
            self.wall_items = [it for it in self.wall_items if it["wall"] != wall]
            self.wall_items.append(dict(spec, kind="window", z0=0.9, z1=min(H - 0.3, 2.1), wall=wall, u0=u0,
                                        u1=u0 + spec["width"]))

    def _fixture(self, it: dict) -> WallFixture:
        origin, inward = self.to_world(it["wall"], 0.5 * (it["u0"] + it["u1"]))
        center = origin + np.array([0.0, 0.0, 0.5 * (it["z0"] + it["z1"])])
        return WallFixture(it["kind"], it["wall"], center, it["u1"] - it["u0"], it["z1"] - it["z0"], inward)

    # ------------------------------------------------------------- furniture

    def to_world(self, wall: int, u: float) -> tuple[np.ndarray, np.ndarray]:
        """Frame of a piece standing against ``wall`` at along-wall position
        ``u``: returns origin (on the wall, floor level) and the inward unit
        vector; local x runs along the wall."""
        lo, hi = self.bounds
        if wall == 0:
            return np.array([lo[0], lo[1] + u, 0.0]), np.array([1.0, 0.0, 0.0])
        if wall == 1:
            return np.array([hi[0], lo[1] + u, 0.0]), np.array([-1.0, 0.0, 0.0])
        if wall == 2:
            return np.array([lo[0] + u, lo[1], 0.0]), np.array([0.0, 1.0, 0.0])
        return np.array([lo[0] + u, hi[1], 0.0]), np.array([0.0, -1.0, 0.0])

    @staticmethod
    def _local_box(origin, inward, x0, x1, y0, y1, z0, z1):
        """World AABB of a box given in a piece frame (x along the wall,
        y away from it). ``inward`` is axis aligned, so the box stays aligned."""
        along = np.array([-inward[1], inward[0], 0.0])  # horizontal, perpendicular to inward
        corners = [origin + along * x + inward * y + np.array([0, 0, z]) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]
        return np.min(corners, 0), np.max(corners, 0)

    def _make_piece(self, rng, kind: str, color_name: str) -> Piece | None:
        """Geometry of one piece at a random position (None if the draw does
        not fit the room). Boxes, cylinders and spheres name a *skin*;
        skins get textures only once a piece is accepted."""
        lo, hi = self.bounds
        p = Piece(kind, color_name)
        if kind in ("bookshelf", "cabinet", "bed", "sofa"):
            dims = {"bookshelf": ((0.8, 1.4), (0.32, 0.4), (1.5, 2.0)), "cabinet": ((0.6, 1.2), (0.45, 0.55), (0.8, 1.1)),
                    "bed": ((0.9, 1.6), (1.9, 2.1), (0.45, 0.55)), "sofa": ((1.5, 2.1), (0.8, 0.9), (0.42, 0.45))}[kind]
            w, d, h = (rng.uniform(*r) for r in dims)
            wall = int(rng.integers(4))
            L = self.wall_length(wall)
            if L < w + 0.6:
                return None
            u = rng.uniform(0.3 + w / 2, L - 0.3 - w / 2)
            origin, inward = self.to_world(wall, u)
            box = lambda *a: self._local_box(origin, inward, *a)  # noqa: E731
            if kind in ("bookshelf", "cabinet"):
                p.boxes.append((*box(-w / 2, w / 2, 0.01, d, 0.0, h), "body"))
            elif kind == "bed":
                p.boxes.append((*box(-w / 2, w / 2, 0.01, 0.07, 0.0, rng.uniform(0.9, 1.1)), "frame"))
                p.boxes.append((*box(-w / 2, w / 2, 0.07, d, 0.0, h), "body"))
                p.boxes.append((*box(-w / 2 + 0.08, w / 2 - 0.08, 0.12, 0.5, h, h + 0.12), "pillow"))
            else:  # sofa: seat, back, two arms
                p.boxes.append((*box(-w / 2, w / 2, 0.01, d, 0.0, h), "body"))
                p.boxes.append((*box(-w / 2, w / 2, 0.01, 0.22, h, 0.82), "body"))
                for x0 in (-w / 2, w / 2 - 0.18):
                    p.boxes.append((*box(x0, x0 + 0.18, 0.22, d, h, 0.62), "body"))
            p.against_wall = wall
            p.wall_span = (u - w / 2, u + w / 2, float(p.bounds()[1][2]))
            p.dims = (w, d, h)
            return p
        margin = 0.45
        if kind == "table":
            w, d, h = rng.uniform(0.9, 1.6), rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.78)
            if rng.uniform() < 0.5:
                w, d = d, w
            c = rng.uniform(lo[:2] + margin + np.array([w, d]) / 2, hi[:2] - margin - np.array([w, d]) / 2)
            x0, y0, x1, y1 = c[0] - w / 2, c[1] - d / 2, c[0] + w / 2, c[1] + d / 2
            p.boxes.append((np.array([x0, y0, h - 0.05]), np.array([x1, y1, h]), "body"))
            if w >= d:  # two panel legs at the short ends
                p.boxes.append((np.array([x0 + 0.04, y0 + 0.06, 0.0]), np.array([x0 + 0.1, y1 - 0.06, h - 0.05]), "body"))
                p.boxes.append((np.array([x1 - 0.1, y0 + 0.06, 0.0]), np.array([x1 - 0.04, y1 - 0.06, h - 0.05]), "body"))
            else:
                p.boxes.append((np.array([x0 + 0.06, y0 + 0.04, 0.0]), np.array([x1 - 0.06, y0 + 0.1, h - 0.05]), "body"))
                p.boxes.append((np.array([x0 + 0.06, y1 - 0.1, 0.0]), np.array([x1 - 0.06, y1 - 0.04, h - 0.05]), "body"))
            p.dims = (w, d, h)
            return p
        p.footprint = "circle"
        if kind in ("stool", "barrel"):
            if kind == "stool":
                r, h = rng.uniform(0.2, 0.28), rng.uniform(0.45, 0.6)
            else:
                r, h = rng.uniform(0.26, 0.34), rng.uniform(0.8, 0.95)
            c = rng.uniform(lo[:2] + margin + r, hi[:2] - margin - r)
            p.cylinders.append((c[0], c[1], r, 0.0, h, "side", "cap"))
            p.dims = (2 * r, 2 * r, h)
            return p
        if kind == "plant":
            r, h = rng.uniform(0.15, 0.22), rng.uniform(0.3, 0.45)
            rf = rng.uniform(0.3, 0.42)
            c = rng.uniform(lo[:2] + margin + rf, hi[:2] - margin - rf)
            p.cylinders.append((c[0], c[1], r, 0.0, h, "pot", "pot"))
            p.spheres.append((np.array([c[0], c[1], h + 0.75 * rf]), rf, "leaves"))
            p.dims = (2 * rf, 2 * rf, h + 1.75 * rf)
            return p
        r = rng.uniform(0.2, 0.32)  # a ball
        c = rng.uniform(lo[:2] + margin + r, hi[:2] - margin - r)
        p.spheres.append((np.array([c[0], c[1], r]), r, "ball"))
        p.dims = (2 * r, 2 * r, 2 * r)
        return p

    def _fits(self, piece: Piece, placed: list[Piece], clearance: float = 0.35) -> bool:
        lo, hi = piece.bounds()
        if np.any(lo[:2] < self.bounds[0, :2] - 1e-9) or np.any(hi[:2] > self.bounds[1, :2] + 1e-9):
            return False
        for other in placed:
            olo, ohi = other.bounds()
            if np.all(lo[:2] < ohi[:2] + clearance) and np.all(olo[:2] < hi[:2] + clearance):
                return False
        if piece.against_wall is not None:  # keep doors clear, and windows/paintings above the piece
            u0, u1, top = piece.wall_span
            for it in self.wall_items:
                if it["wall"] == piece.against_wall and u0 < it["u1"] + 0.1 and it["u0"] - 0.1 < u1:
                    if it["kind"] == "door" or top > it["z0"] - 0.05:
                        return False
        else:  # free-standing pieces stay out of the door's swing
            for it in self.wall_items:
                if it["kind"] == "door":
                    o, inward = self.to_world(it["wall"], 0.5 * (it["u0"] + it["u1"]))
                    door_c = o[:2] + inward[:2] * 0.5
                    if np.all(np.abs(np.clip(door_c, lo[:2], hi[:2]) - door_c) < 0.6):
                        return False
        return True

    def _place_furniture(self, rng: np.random.Generator) -> list[Piece]:
        """3-8 pieces, each a distinct colour (so names are unique), placed
        by rejection sampling without overlap."""
        kinds = list(FURNITURE_KINDS)
        weights = np.array([3, 2, 2, 1, 1, 2, 1, 2, 1], dtype=float)
        colors = list(PALETTE)
        area = float(self.size[0] * self.size[1])
        target = min(int(rng.integers(3, 9)), max(3, int(area / 3.5)))  # small rooms get fewer pieces
        placed: list[Piece] = []
        used_colors: set[str] = set()
        for _ in range(300):
            if len(placed) >= target:
                break
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            if kind == "bed" and any(p.kind == "bed" for p in placed):
                continue
            free = [c for c in colors if c not in used_colors]
            color = free[int(rng.integers(len(free)))]
            piece = self._make_piece(rng, kind, color)
            if piece is None or sum(len(q.boxes) for q in placed) + len(piece.boxes) > MAX_BOXES:
                continue
            if self._fits(piece, placed) and self._free_fraction(placed + [piece]) >= 0.45:
                placed.append(piece)
                used_colors.add(color)
        for _ in range(len(placed), 3):  # a crowded draw: top up with small stools
            for _ in range(200):
                free = [c for c in colors if c not in used_colors]
                piece = self._make_piece(rng, "stool", free[int(rng.integers(len(free)))])
                if self._fits(piece, placed, clearance=0.2):
                    placed.append(piece)
                    used_colors.add(piece.color)
                    break
        return placed

    def _free_fraction(self, pieces: list[Piece], radius: float = 0.3) -> float:
        """Share of the floor where a camera of ``radius`` fits, on a 10 cm
        grid: keeps rooms walkable."""
        lo, hi = self.bounds
        xs = np.arange(lo[0] + 0.05, hi[0], 0.1)
        ys = np.arange(lo[1] + 0.05, hi[1], 0.1)
        X, Y = np.meshgrid(xs, ys)
        ok = (X >= lo[0] + radius) & (X <= hi[0] - radius) & (Y >= lo[1] + radius) & (Y <= hi[1] - radius)
        for p in pieces:
            plo, phi = p.bounds()
            ex = np.maximum(np.maximum(plo[0] - X, X - phi[0]), 0.0)
            ey = np.maximum(np.maximum(plo[1] - Y, Y - phi[1]), 0.0)
            ok &= np.hypot(ex, ey) >= radius
        return float(ok.mean())

    def _named_objects(self) -> list[SceneObject]:
        out = []
        for p in self._pieces:
            lo, hi = p.bounds()
            out.append(SceneObject(f"{p.color} {p.kind}", p.kind, p.color, 0.5 * (lo + hi), hi - lo, p.footprint))
        return out

    # ---------------------------------------------------------------- movers

    def _make_movers(self, rng: np.random.Generator) -> list[MovingObject]:
        """1-3 movers on ellipses whose whole path is free (checked at 64
        points with the object's radius plus a margin) and whose swept
        rectangles do not overlap (so movers never pass through each other)."""
        movers: list[MovingObject] = []
        swept: list[tuple[np.ndarray, np.ndarray]] = []
        taken = {o.color for o in self.objects}
        for i in range(int(rng.integers(1, 4))):
            kind = "figure" if (rng.uniform() < 0.35 and not any(m.kind == "figure" for m in movers)) else "ball"
            free = [c for c in PALETTE if c not in taken] or list(PALETTE)
            color = free[int(rng.integers(len(free)))]
            radius = rng.uniform(0.12, 0.22) if kind == "ball" else rng.uniform(0.17, 0.21)
            height = 0.0 if kind == "ball" else rng.uniform(1.15, 1.4)
            bounce = float(rng.uniform(0.2, 0.7)) if (kind == "ball" and rng.uniform() < 0.6) else 0.0
            speed = rng.uniform(0.4, 0.9) if kind == "figure" else rng.uniform(0.6, 1.6)
            attempts = 120
            for k in range(attempts):
                small = i == 0 and k >= attempts // 2  # the first mover must fit: try small circles late
                half = 0.5 * self.size[:2] - radius - 0.3
                top = np.minimum(0.5 if small else 2.0, half - 0.2)
                if np.any(top < 0.25):
                    break
                radii = rng.uniform(0.25, top)
                center = rng.uniform(self.bounds[0, :2] + radii + radius + 0.3, self.bounds[1, :2] - radii - radius - 0.3)
                m = MovingObject(
                    name=f"{'walking' if kind == 'figure' else ('bouncing' if bounce else 'rolling')} {color} {kind}",
                    kind=kind, color=color, radius=float(radius), height=float(height), path_center=center,
                    path_radii=radii, omega=float(speed / np.mean(radii) * (1 if rng.uniform() < 0.5 else -1)),
                    phase=float(rng.uniform(0, 2 * np.pi)), bounce=bounce, bounce_period=float(rng.uniform(0.6, 1.2)))
                lo, hi = center - radii - radius - 0.1, center + radii + radius + 0.1
                if any(np.all(lo < b_hi) and np.all(b_lo < hi) for b_lo, b_hi in swept):
                    continue
                xy = m.xy_at(np.linspace(0, m.period, 64, endpoint=False))
                if self.is_free(np.concatenate([xy, np.full((64, 1), 0.5)], 1), radius + 0.1).all():
                    movers.append(m)
                    swept.append((lo, hi))
                    taken.add(color)
                    break
        if not movers:  # a crowded room: a ball rolling on a small circle at the roomiest spot
            pts = np.stack([self.sample_position(rng, 0.45, 0.5) for _ in range(32)])
            center = max(pts, key=lambda q: min(float(o.distance_xy(q)) for o in self.objects))[:2]
            color = next(c for c in PALETTE if c not in taken)
            movers.append(MovingObject(f"rolling {color} ball", "ball", color, radius=0.12, height=0.0, path_center=center,
                                       path_radii=np.array([0.15, 0.15]), omega=3.0, phase=0.0))
        return movers


# --------------------------------------------------------------- object goals
#
# Opt-in (``ProceduralRoom(seed, goal_objects=N)``, the object-goal task only):
# N plain coloured objects stand in the view of a start pose, drawn from a
# second generator seeded by (seed, GOAL_STREAM), after the room itself is
# complete. The room's own draws are untouched, so the same seed without
# goal objects is the same room, bit for bit.

GOAL_STREAM = 0x0B1EC7
GOAL_COLORS = ("red", "green", "blue", "yellow")
GOAL_KINDS = ("cube", "sphere", "pillar")
GOAL_SHAPES = {"cube": 0.22, "sphere": 0.24, "pillar": 0.2}  # footprint half-width / radius (m)
GOAL_STAND_M = 0.05  # radius of the stand a goal cube or sphere sits on
# plain, saturated colours (the furniture's palette colours of the same names are duller and jittered)
GOAL_RGB = {"red": (0.88, 0.1, 0.08), "green": (0.1, 0.72, 0.16), "blue": (0.1, 0.26, 0.95), "yellow": (0.96, 0.84, 0.08)}
GOAL_BEARING_DEG = 38.0  # objects stand within this bearing of the start heading (the view is +-45 deg)
GOAL_DISTANCE_M = (1.4, 3.6)  # centre distance from the start position
GOAL_TARGET_DISTANCE_M = (2.2, 3.6)  # the target's: far enough that walking blind rarely runs into it
GOAL_MIN_SEPARATION_DEG = 6.0  # bearing between any two objects, as seen from the start


class NoSpaceForGoals(RuntimeError):
    """A room too crowded for the goal objects (the object-goal env skips to another room)."""


@dataclass(frozen=True)
class ObjectGoalLayout:
    """Where the goal objects stand: ``objects`` (:class:`SceneObject`, kinds
    from GOAL_KINDS, colours from GOAL_COLORS, all distinct (colour, kind)
    pairs), ``target`` (index into ``objects``) and ``start`` ((x, y, yaw in
    radians) at eye height). From ``start`` every object is in view with a
    clear line of sight, and no furniture stands on the straight line to the
    target (a distractor may: then the way is round it). Each object has its
    own colour (kinds are drawn at random); the target's bearing is uniform
    over the view, and it stands 2.2-3.6 m away."""

    objects: tuple
    target: int
    start: tuple


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from point p to the segment a-b (2D)."""
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.hypot(*(p - (a + t * ab))))


def goal_piece(kind: str, color: str, xy) -> Piece:
    """The geometry of one goal object standing on the floor at ``xy``: a
    cube or a sphere on a thin stand (tops at about 0.95 m, above most
    furniture), or a pillar 1.3 m tall."""
    x, y = float(xy[0]), float(xy[1])
    r = GOAL_SHAPES[kind]
    p = Piece(kind, color)
    p.footprint = "box" if kind == "cube" else "circle"
    if kind == "pillar":
        p.cylinders.append((x, y, r, 0.0, 1.3, "body", "body"))
        p.dims = (2 * r, 2 * r, 1.3)
        return p
    top = 0.5 if kind == "cube" else 0.5 - 0.5 * r  # the stand's top; the sphere sits a little into it
    p.cylinders.append((x, y, GOAL_STAND_M, 0.0, top, "body", "body"))
    if kind == "cube":
        p.boxes.append((np.array([x - r, y - r, top]), np.array([x + r, y + r, top + 2 * r]), "body"))
    else:
        p.spheres.append((np.array([x, y, top + r]), r, "body"))
    p.dims = (2 * r, 2 * r, top + 2 * r)
    return p


def _draw_goal_pairs(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """n (colour, kind) pairs, the first being the target: every object has
    its own colour, kinds are drawn at random (so some share the target's).
    Among the goal objects the colour finds the target; the room's furniture
    comes in the same palette, and the kind tells the target from a red
    table or a blue bed."""
    colors = rng.permutation(len(GOAL_COLORS))[:n]
    return [(GOAL_COLORS[int(c)], GOAL_KINDS[int(rng.integers(len(GOAL_KINDS)))]) for c in colors]


def place_goal_objects(layout: RoomLayout, rng: np.random.Generator, n: int, eye_height: float,
                       attempts: int = 40, candidates: int = 64) -> tuple[ObjectGoalLayout, list[Piece]]:
    """Draw a start pose and ``n`` (3 or 4) goal objects in its view (see
    :class:`ObjectGoalLayout`); returns the layout and the pieces to render.

    The start stands in free space facing the one of 8 headings whose view
    has the most free floor. The view (+-GOAL_BEARING_DEG) is cut into n
    equal bearing sectors, one object per sector in random order; each
    object takes the first of ``candidates`` random spots in its sector
    that passes every check. Movers are not looked at: :func:`movers_clear_of`
    says which of them keep out of the objects' way. Raises
    :class:`NoSpaceForGoals` when a room is too crowded (about one in six
    rooms, mostly the smaller ones)."""
    if not 3 <= n <= len(GOAL_COLORS):
        raise ValueError(f"goal_objects must be between 3 and {len(GOAL_COLORS)}, got {n}")
    half = math.radians(GOAL_BEARING_DEG)
    min_sep = math.radians(GOAL_MIN_SEPARATION_DEG)
    pairs = _draw_goal_pairs(rng, n)  # once: which objects a room gets does not depend on where they fit
    # the target's bearing too, uniform over the view: where it fits best (straight ahead, where the most
    # floor is) must not be where it is most often, or walking straight ahead blind would find it
    target_bearing = float(rng.uniform(-half, half))
    width = 2 * half / n
    target_sector = min(n - 1, int((target_bearing + half) // width))
    for _ in range(attempts):
        start = layout.sample_position(rng, 0.5, eye_height)[:2]
        # of 8 headings, the one whose view holds the most free floor for the objects
        yaws = rng.uniform(-math.pi, math.pi) + np.arange(8) * (math.pi / 4)
        b = rng.uniform(-half, half, (8, candidates))
        d = rng.uniform(*GOAL_DISTANCE_M, (8, candidates))
        spots = start + d[..., None] * np.stack([np.cos(yaws[:, None] + b), np.sin(yaws[:, None] + b)], -1)
        free = layout.is_free(np.concatenate([spots.reshape(-1, 2), np.full((8 * candidates, 1), 0.5)], 1), 0.6)
        yaw = float(yaws[int(np.argmax(free.reshape(8, candidates).sum(1)))])
        placed: list[tuple[np.ndarray, float, float]] = []  # (centre xy, radius, bearing)
        others = [k for k in range(n) if k != target_sector]
        sectors = [target_sector] + [others[int(i)] for i in rng.permutation(n - 1)]  # one bearing sector per object
        for (color, kind), sector in zip(pairs, sectors):
            r = GOAL_SHAPES[kind]
            if not placed:
                b = np.full(candidates, target_bearing)
            else:
                b = -half + width * (sector + rng.uniform(0.0, 1.0, candidates))
            d = rng.uniform(*(GOAL_TARGET_DISTANCE_M if not placed else GOAL_DISTANCE_M), candidates)
            cs = start + d[:, None] * np.stack([np.cos(yaw + b), np.sin(yaw + b)], 1)
            # walls and furniture: room to walk up to it from every side
            ok = layout.is_free(np.concatenate([cs, np.full((candidates, 1), 0.5)], 1), r + 0.3)
            found = None
            for i in np.flatnonzero(ok):
                c, bi, di = cs[i], float(b[i]), float(d[i])
                if any(abs(bi - pb) < min_sep or np.hypot(*(c - pc)) < r + pr + 0.45 for pc, pr, pb in placed):
                    continue
                # in sight: no other goal object on the line of sight to it, nor it on theirs
                if any(_segment_distance(pc, start, c) < pr + 0.05 or _segment_distance(c, start, pc) < r + 0.05
                       for pc, pr, _ in placed):
                    continue
                # the line of sight (for the target: the straight walk) is clear of furniture; another goal
                # object may stand in the way of the walk (not of the view): then the way is round it
                walk = start[None] + np.linspace(0.0, di - r - 0.3, 12)[:, None] * ((c - start) / di)
                if not layout.is_free(np.concatenate([walk, np.full((12, 1), 0.5)], 1), 0.1 if placed else 0.3).all():
                    continue
                found = (c, r, bi)
                break
            if found is None:
                break
            placed.append(found)
        if len(placed) < n:
            continue
        order = rng.permutation(n)  # the target is not always first on the list
        objects, pieces = [], []
        for i in order:
            (color, kind), (c, _, _) = pairs[int(i)], placed[int(i)]
            piece = goal_piece(kind, color, c)
            lo, hi = piece.bounds()
            objects.append(SceneObject(f"{color} {kind}", kind, color, 0.5 * (lo + hi), hi - lo, piece.footprint))
            pieces.append(piece)
        target = int(np.flatnonzero(order == 0)[0])
        return ObjectGoalLayout(tuple(objects), target, (float(start[0]), float(start[1]), yaw)), pieces
    raise NoSpaceForGoals(f"no space for {n} goal objects in view of a start pose after {attempts} draws")


def movers_clear_of(goal: ObjectGoalLayout, movers: list[MovingObject]) -> list[bool]:
    """Which movers keep out of the goal objects' way: their whole path (64
    points) passes every goal object at least 0.15 m apart, and at t = 0 they
    hide no goal object from the start pose. The room drops the others."""
    start = np.asarray(goal.start[:2])
    keep = []
    for m in movers:
        xy = m.xy_at(np.linspace(0, m.period, 64, endpoint=False))
        r = m.radius * (1.2 if m.kind == "figure" else 1.0)
        clear = all(float(o.distance_xy(xy).min()) >= r + 0.15 for o in goal.objects)
        at0 = m.center_at(0.0)[:2]
        clear = clear and all(_segment_distance(at0, start, o.center[:2]) >= r + 0.1 for o in goal.objects)
        keep.append(bool(clear))
    return keep
