"""``ProceduralRoom``: a seeded, fully known 3D room to train and test on.

A room is a box (floor at z = 0) with textured walls, floor and ceiling;
windows that show the sky, a door, paintings and baseboards drawn on the
walls; 3-8 pieces of furniture (tables, shelves, beds, sofas, cabinets as
axis-aligned boxes; stools, barrels and plant pots as cylinders; balls as
spheres) standing on the floor without overlapping; and 1-3 moving objects
(bouncing or rolling balls, a walking figure) on smooth periodic paths in
free space. Everything comes from ``np.random.default_rng(seed)``: the same
seed gives the same room, bit for bit. Seeds from ``HELD_OUT_SEED_START`` on
are reserved for evaluation.

Rendering is exact ray casting (see :mod:`.raycast`), so depth is true
z-depth and the ``static`` mask is exact: False on sky and moving objects.
Poses and intrinsics follow :mod:`mirage_gym.geometry` (OpenCV cameras,
camera-to-world, pixel centres at +0.5).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import limits
from ..geometry import check_intrinsics, check_pose, check_size, intrinsics_from_fov, pose_from_yaw_pitch, scale_intrinsics
from . import textures as tx
from .layout import (GOAL_RGB, GOAL_STREAM, WALL_NORMALS, MovingObject, NoSpaceForGoals, ObjectGoalLayout, Piece, RoomLayout, SceneObject,
                     WallFixture, movers_clear_of, place_goal_objects)
from .raycast import (
    DECAL_CELL, DecalGrid, Lighting, Primitives, Rays, Surface, SurfaceTable, curved_uv, depth_static, planar_uv,
    round_normal, shade, trace, visible_mask,
)

HELD_OUT_SEED_START = 1_000_000
_ROOMS: dict = {}  # ProceduralRoom.cached: (seed, goal_objects) -> room, least recently used first

__all__ = ["HELD_OUT_SEED_START", "MovingObject", "NoSpaceForGoals", "ObjectGoalLayout", "ProceduralRoom", "SceneObject",
           "WallFixture"]


class ProceduralRoom:
    """A procedural room with exact ground truth; see the module docstring.

    Args:
        seed: non-negative int; the room is a pure function of it.
        fov_deg: default horizontal field of view for :meth:`intrinsics`.
        goal_objects: 0 (default: the plain room) or 3-4: also place that
            many plain coloured goal objects (cube, sphere, pillar) in view of
            a start pose, for the object-goal task (``object_goal``, an
            :class:`ObjectGoalLayout`; the objects are in ``objects`` too).
            They come from a second generator seeded by (seed, GOAL_STREAM)
            after the room is complete, so the furniture, looks and movers
            are those of ``ProceduralRoom(seed)``; the goal objects are
            added (and walked around), and movers whose path crosses them are
            left out.

    Attributes:
        seed, bounds ((2, 3): min and max xyz of the interior), size, eye_height,
        objects (static :class:`SceneObject` list, unique names such as
        "red table"), movers (:class:`MovingObject` list, named like "bouncing
        blue ball"; ``center_at(t)``), fixtures (:class:`WallFixture` list:
        door, windows, paintings), surface_area (m^2 of static surface, for
        coverage), is_held_out, has_ground_truth (True, unlike a photo).

    Methods: ``render``, ``render_batch``, ``is_free``, ``sample_pose``,
    ``sample_position``, ``intrinsics``, ``object_named``.

    A camera outside the room, or inside a piece of furniture, renders
    without error but not meaningfully; ``is_free`` keeps agents out of both.
    """

    has_ground_truth = True
    eye_height = 1.5
    CACHE_SIZE = 16  # rooms kept by :meth:`cached`

    @classmethod
    def cached(cls, seed: int, goal_objects: int = 0) -> "ProceduralRoom":
        """The room of ``seed`` built once per process (the last CACHE_SIZE
        used are kept): a room is a pure function of its seed, and building
        one costs 20-120 ms, so an env that returns to a seed (a list of
        training rooms, sub-envs sharing seeds, set_state) reuses it. Raises
        NoSpaceForGoals as the constructor does (not cached)."""
        key = (int(seed), int(goal_objects))
        room = _ROOMS.pop(key, None)
        if room is None:
            room = cls(seed, goal_objects=goal_objects)
        _ROOMS[key] = room  # most recently used last
        while len(_ROOMS) > cls.CACHE_SIZE:
            _ROOMS.pop(next(iter(_ROOMS)))
        return room

    def __init__(self, seed: int, fov_deg: float = 90.0, goal_objects: int = 0):
        limits.bounded_int("seed", seed, 0, None)
        if not limits.is_int(goal_objects) or not (goal_objects == 0 or 3 <= goal_objects <= 4):
            raise ValueError(f"goal_objects must be 0 or an integer from 3 to 4, got {goal_objects!r}")
        self.seed = int(seed)
        self.goal_objects = int(goal_objects)
        self.fov_deg = float(fov_deg)
        intrinsics_from_fov(self.fov_deg, 8, 8)  # validates
        rng = np.random.default_rng(self.seed)
        self.layout = RoomLayout(rng)  # geometry first, then looks, all from the one generator
        self.object_goal: ObjectGoalLayout | None = None
        goal_pieces: list[Piece] = []
        if self.goal_objects:  # first, so that a room without space for them fails fast (its own generator)
            grng = np.random.default_rng([self.seed, GOAL_STREAM])
            self.object_goal, goal_pieces = place_goal_objects(self.layout, grng, self.goal_objects, self.eye_height)
        self.bounds = self.layout.bounds
        self.objects: list[SceneObject] = self.layout.objects
        self.movers: list[MovingObject] = self.layout.movers
        self.fixtures: list[WallFixture] = self.layout.fixtures
        self._tiles: list[np.ndarray] = []
        self._table = SurfaceTable()
        self._style(rng)
        for piece in self.layout.pieces:
            self._dress(piece, rng)
        if self.goal_objects:
            self._add_goal_objects(goal_pieces, grng)
        self._build(rng)
        if self.goal_objects:  # movers in the goal objects' way are not drawn (built all the same: the draws stay the room's)
            keep = movers_clear_of(self.object_goal, self.movers)
            self.movers = self.layout.movers = [m for m, k in zip(self.movers, keep) if k]
            self._mover_sids = [s for s, k in zip(self._mover_sids, keep) if k]
        self._ray_cache: dict = {}
        self._time_cache: tuple | None = None
        self._known_K: dict = {}  # K bytes -> validated K (_check_K)

    def __reduce__(self):
        """Pickle as (seed, fov, goal objects): the room is a pure function of them."""
        return (ProceduralRoom, (self.seed, self.fov_deg, self.goal_objects))

    def _add_goal_objects(self, pieces: list[Piece], grng: np.random.Generator) -> None:
        """Dress the placed goal objects with their own generator (the room's is not touched) and add them."""
        for piece, obj in zip(pieces, self.object_goal.objects):
            tile = (self._tex(tx.solid(grng, np.asarray(GOAL_RGB[piece.color]), 0.02)), 1.0, 1.0)
            piece.skins = {"body": tile, "box": {"front": tile, "side": tile, "top": tile}}
            piece.boxes = [(lo, hi, "box") for lo, hi, _ in piece.boxes]
            self.layout.pieces.append(piece)
            self.layout.objects.append(obj)  # walked around like furniture (is_free)

    def __repr__(self) -> str:
        (x0, y0, _), (x1, y1, z1) = self.bounds
        return (f"ProceduralRoom(seed={self.seed}, {x1 - x0:.1f}x{y1 - y0:.1f}x{z1:.1f} m, "
                f"{len(self.objects)} objects, {len(self.movers)} movers)")

    # ------------------------------------------------------------ properties

    @property
    def is_held_out(self) -> bool:
        """Seeds from 1,000,000 up are for evaluation only (docs/design.md)."""
        return self.seed >= HELD_OUT_SEED_START

    @property
    def size(self) -> np.ndarray:
        return self.bounds[1] - self.bounds[0]

    def intrinsics(self, height: int, width: int) -> torch.Tensor:
        """Pinhole intrinsics at this scene's default field of view."""
        return intrinsics_from_fov(self.fov_deg, height, width)

    def object_named(self, name: str) -> SceneObject | MovingObject:
        for o in list(self.objects) + list(self.movers):
            if o.name == name:
                return o
        raise KeyError(f"no object named {name!r}; have {[o.name for o in self.objects + self.movers]}")

    # -------------------------------------------------------------- textures

    def _tex(self, img: np.ndarray) -> int:
        self._tiles.append(img)
        return len(self._tiles) - 1

    def _style(self, rng: np.random.Generator) -> None:
        """Wall, floor and ceiling looks, light colour, sky."""
        wall = tx.random_pastel(rng)
        accent = tx.random_pastel(rng, sat=(0.25, 0.55), val=(0.55, 0.8))
        kind = rng.choice(["plaster", "stripes", "diamonds", "bricks", "panels", "tiles"], p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
        if kind == "plaster":
            tile, tile_m = tx.plaster(rng, wall), 1.5
        elif kind == "stripes":
            tile, tile_m = tx.stripes(rng, wall, wall * rng.uniform(0.75, 0.9), count=int(rng.integers(2, 5))), 1.2
        elif kind == "diamonds":
            tile, tile_m = tx.diamonds(rng, wall, accent, count=int(rng.integers(2, 4))), 1.0
        elif kind == "bricks":
            tile, tile_m = tx.bricks(rng, tx.jitter(rng, (0.62, 0.32, 0.24), 0.1), (0.78, 0.76, 0.72)), 1.2
        elif kind == "panels":
            tile, tile_m = tx.planks(rng, tx.jitter(rng, (0.72, 0.55, 0.38), 0.12), rows=4), 1.2
        else:
            tile, tile_m = tx.tiles(rng, wall, wall * 0.8, per_side=4), 1.0
        self._wall_tex = [(self._tex(tile), tile_m)] * 4
        if rng.uniform() < 0.4:  # one accent wall
            k = int(rng.integers(4))
            self._wall_tex[k] = (self._tex(tx.plaster(rng, accent)), 1.5)
        floor = rng.choice(["wood", "tiles", "checker", "carpet"], p=[0.4, 0.2, 0.15, 0.25])
        if floor == "wood":
            base = tx.hsv_to_rgb(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.75))
            self._floor_tex = (self._tex(tx.planks(rng, base, rows=int(rng.integers(4, 7)))), 1.4)
        elif floor == "tiles":
            base = tx.random_pastel(rng, sat=(0.0, 0.25), val=(0.55, 0.85))
            self._floor_tex = (self._tex(tx.tiles(rng, base, base * 0.6, per_side=2)), 1.2)
        elif floor == "checker":
            a, b = tx.random_pastel(rng, val=(0.75, 0.9)), tx.random_pastel(rng, sat=(0.2, 0.5), val=(0.25, 0.45))
            self._floor_tex = (self._tex(tx.tiles(rng, a, a * 0.5, per_side=2, alt=b)), 1.0)
        else:
            base = tx.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.6))
            self._floor_tex = (self._tex(tx.carpet(rng, base)), 2.0)
        self._ceiling_tex = (self._tex(tx.plaster(rng, tx.random_pastel(rng, sat=(0.0, 0.06), val=(0.85, 0.95)))), 1.5)
        trim = np.array([0.93, 0.92, 0.9]) if rng.uniform() < 0.6 else tx.jitter(rng, (0.45, 0.3, 0.18), 0.15)
        self._trim_tex = self._tex(tx.solid(rng, trim, 0.01))
        self._light_tint = np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.78, 0.95)])
        # Sky: below the horizon a distant ground, above it a gradient to the zenith.
        zenith = tx.hsv_to_rgb(rng.uniform(0.55, 0.64), rng.uniform(0.45, 0.75), rng.uniform(0.75, 0.95))
        horizon = tx.hsv_to_rgb(rng.uniform(0.52, 0.62), rng.uniform(0.05, 0.2), 0.97)
        ground = tx.hsv_to_rgb(rng.uniform(0.18, 0.3), rng.uniform(0.35, 0.6), rng.uniform(0.35, 0.55))
        e = np.linspace(-1, 1, 256)[:, None]
        sky = np.where(e < 0, ground * (0.85 + 0.15 * (1 + e)), horizon + (zenith - horizon) * np.sqrt(np.clip(e, 0, 1)) ** 0.8)
        self._sky_lut = np.clip(sky * 255, 0, 255).astype(np.uint8)

    # ------------------------------------------------------------- furniture

    def _dress(self, piece: Piece, rng: np.random.Generator) -> None:
        """Textures for an accepted piece: ``piece.skins[name]`` is, for box
        skins, {face role: (tile id, tile size u, tile size v)} with roles
        front / side / top, and for cylinder and sphere skins one such triple."""
        color = tx.jitter(rng, tx.PALETTE[piece.color])
        wood = tx.hsv_to_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.7))
        kind, (w, _, h) = piece.kind, piece.dims
        body = (self._tex(tx.solid(rng, color)), 1.0, 1.0)
        skins: dict = {}
        if kind == "bookshelf":
            skins["body"] = {"front": (self._tex(tx.books(rng, color)), 0.8, 0.8), "side": body, "top": body}
        elif kind == "cabinet":
            front = self._tex(tx.drawers(rng, color, cols=2 if w > 0.8 else 1, rows=3 if h > 0.9 else 2))
            skins["body"] = {"front": (front, w, h), "side": body, "top": (self._tex(tx.planks(rng, wood, rows=4)), 1.0, 1.0)}
        elif kind in ("bed", "sofa"):
            fab = (self._tex(tx.fabric(rng, color, color * 0.7 + 0.3 * np.array([1.0, 1.0, 0.95]))), 0.8, 0.8)
            skins["body"] = {"front": fab, "side": fab, "top": fab}
            planks = (self._tex(tx.planks(rng, wood, rows=3)), 1.0, 1.0)
            skins["frame"] = {"front": planks, "side": planks, "top": planks}
            pillow = (self._tex(tx.solid(rng, np.array([0.95, 0.95, 0.93]), 0.02)), 1.0, 1.0)
            skins["pillow"] = {"front": pillow, "side": pillow, "top": pillow}
        elif kind == "table":
            top = (self._tex(tx.planks(rng, color, rows=4)), 1.2, 1.2) if rng.uniform() < 0.5 else body
            skins["body"] = {"front": body, "side": body, "top": top}
        elif kind == "barrel":
            r = 0.5 * w
            hoops = tx.stripes(rng, color, color * 0.6, count=1).transpose(1, 0, 2)  # bands up the side
            skins["side"] = (self._tex(hoops), 2 * np.pi * r / 3, h / 2)
            skins["cap"] = (self._tex(tx.solid(rng, color * 0.85)), 1.0, 1.0)
        elif kind == "stool":
            skins["side"] = body
            skins["cap"] = (self._tex(tx.planks(rng, color, rows=3)), w, w)
        elif kind == "plant":
            skins["pot"] = body
            skins["leaves"] = (self._tex(tx.foliage(rng, tx.jitter(rng, (0.2, 0.5, 0.18), 0.2))), 0.6, 0.6)
        else:  # ball
            other = tx.PALETTE[["white", "yellow", "blue", "red"][int(rng.integers(4))]]
            skins["ball"] = (self._tex(tx.ball(rng, color, other)), 2 * w, 2 * w)
        piece.skins = skins

    # ------------------------------------------------------------ build step

    def _build(self, rng: np.random.Generator) -> None:
        """Freeze the room into renderer arrays: surfaces, primitives,
        decal grid, texture atlas, light."""
        lo = self.bounds[0]
        T = tx.TEX
        table = self._table
        # Room surfaces 0..5: walls (x-lo, x-hi, y-lo, y-hi), floor, ceiling.
        hi = self.bounds[1]
        for wall in range(4):
            tex, tile_m = self._wall_tex[wall]
            au, av = planar_uv(1 if wall < 2 else 0, 2, lo, T / tile_m)
            on = lo if wall % 2 == 0 else hi
            table.add(Surface(normal=WALL_NORMALS[wall], point=tuple(on), au=au, av=av, tex=tex, name=f"wall{wall}"))
        au, av = planar_uv(0, 1, lo, T / self._floor_tex[1])
        table.add(Surface(normal=(0, 0, 1), point=tuple(lo), au=au, av=av, tex=self._floor_tex[0], name="floor"))
        au, av = planar_uv(0, 1, lo, T / self._ceiling_tex[1])
        table.add(Surface(normal=(0, 0, -1), point=tuple(hi), au=au, av=av, tex=self._ceiling_tex[0], name="ceiling"))
        self._sky_sid = table.add(Surface(normal=(0, 0, 1), static=False, name="sky"))
        self._build_decals(rng)
        self._static_prims = self._build_furniture_prims()
        self._build_mover_surfaces(rng)
        self._lighting = self._make_lighting(rng)
        self._surf = table.freeze(self._lighting)
        self._atlas = tx.build_atlas(self._tiles, scale=self._light_tint)
        self._decals = self._decal_lookup()
        self._room_planes = np.ascontiguousarray(self.bounds.T, dtype=np.float32)  # (3, 2)
        self.surface_area = self._static_surface_area()

    def _build_decals(self, rng: np.random.Generator) -> None:
        """Paint wall items and baseboards into the per-wall id grid (see
        :class:`DecalGrid`; cell (i, j) covers along-wall u in
        [(i - PAD) cell, (i - PAD + 1) cell) and likewise z)."""
        lo = self.bounds[0]
        H = self.size[2]
        T = tx.TEX
        pad = DecalGrid.PAD
        table = self._table
        nu = int(math.ceil((self.size[0] + self.size[1]) / DECAL_CELL)) + 2 * pad + 2  # x + y spans any surface
        nz = int(math.ceil(H / DECAL_CELL)) + 2 * pad + 2
        grid = np.zeros((5, nu, nz), np.uint8)  # block 4 stays empty: non-wall surfaces read it

        def cells(a, b):
            i0 = int(round(a / DECAL_CELL)) + pad
            return i0, max(int(round(b / DECAL_CELL)) + pad, i0 + 1)

        def wall_surface(wall, tex, name, origin_u=0.0, origin_z=0.0, tile_u=1.0, tile_v=1.0):
            axis_u = 1 if wall < 2 else 0
            origin = lo.copy()
            origin[axis_u] += origin_u
            origin[2] = origin_z
            au, av = planar_uv(axis_u, 2, origin, T / tile_u, T / tile_v)
            on = self.bounds[wall % 2]  # walls 0, 2 at the low bound, 1, 3 at the high
            return table.add(Surface(normal=WALL_NORMALS[wall], point=tuple(on), au=au, av=av, tex=tex, name=name))

        for wall in range(4):
            sid = wall_surface(wall, self._trim_tex, f"baseboard{wall}")
            grid[wall, :, :cells(0, 0.1)[1]] = sid
        frame_tex = self._tex(tx.solid(rng, np.array([0.95, 0.95, 0.94]), 0.01))
        for it in self.layout.wall_items:
            wall, u0, u1, z0, z1, fw = it["wall"], it["u0"], it["u1"], it["z0"], it["z1"], it["frame"]
            (a0, a1), (b0, b1) = cells(u0, u1), cells(z0, z1)
            (i0, i1), (j0, j1) = cells(u0 + fw, u1 - fw), cells(z0 + fw, z1 - fw)
            if it["kind"] == "window":
                frame = wall_surface(wall, frame_tex, "window frame")
                grid[wall, a0:a1, b0:b1] = frame
                grid[wall, i0:i1, j0:j1] = self._sky_sid
                um, zm = 0.5 * (u0 + u1), z0 + 0.6 * (z1 - z0)  # mullion and transom
                grid[wall, slice(*cells(um - 0.02, um + 0.02)), j0:j1] = frame
                grid[wall, i0:i1, slice(*cells(zm - 0.02, zm + 0.02))] = frame
            elif it["kind"] == "door":
                wood = (tx.hsv_to_rgb(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.8))
                        if rng.uniform() < 0.6 else tx.random_pastel(rng))
                grid[wall, a0:a1, :b1] = wall_surface(wall, self._trim_tex, "door frame")
                leaf = self._tex(tx.door(rng, wood))
                grid[wall, i0:i1, :j1] = wall_surface(wall, leaf, "door", u0 + fw, 0.0, u1 - u0 - 2 * fw, z1 - fw)
            else:
                frame_color = tx.jitter(rng, (0.3, 0.2, 0.1) if rng.uniform() < 0.6 else (0.8, 0.65, 0.3), 0.2)
                grid[wall, a0:a1, b0:b1] = wall_surface(wall, self._tex(tx.solid(rng, frame_color, 0.02)), "painting frame")
                art = self._tex(tx.painting(rng))
                canvas = wall_surface(wall, art, "painting", u0 + fw, z0 + fw, u1 - u0 - 2 * fw, z1 - z0 - 2 * fw)
                grid[wall, i0:i1, j0:j1] = canvas
        self._decal_grid = grid

    def _decal_lookup(self) -> DecalGrid:
        """Row offsets: on wall w, x + y - offset = along-wall position + (w NU + PAD) cells;
        every other surface reads block 4 (empty)."""
        lo, hi = self.bounds
        _, nu, nz = self._decal_grid.shape
        shift = (np.array([0, 1, 2, 3, 4]) * nu + DecalGrid.PAD) * DECAL_CELL
        offset = np.full(len(self._table), lo[0] + lo[1] - shift[4])
        offset[:4] = np.array([lo[0] + lo[1], hi[0] + lo[1], lo[0] + lo[1], lo[0] + hi[1]]) - shift[:4]
        return DecalGrid(self._decal_grid.reshape(-1), nz, offset.astype(np.float32))

    def _furniture_surfaces(self, lo, hi, tex: dict, wall: int | None) -> list[int]:
        """Six surfaces of a box, a (low, high) pair across each axis; returns
        the three (even) low-side ids. Which faces get the "front" texture
        depends on the wall the piece stands against."""
        T = tx.TEX
        front_axis = None if wall is None else (0 if wall < 2 else 1)
        sids = []
        self._table.align_even()
        for axis in range(3):
            if axis == 2:
                role = "top"
            elif front_axis is None:
                role = "side" if axis == 0 else "front"
            else:
                role = "front" if axis == front_axis else "side"
            tid, tile_u, tile_v = tex[role]
            ua, va = [(1, 2), (0, 2), (0, 1)][axis]
            au, av = planar_uv(ua, va, lo, T / tile_u, T / tile_v)
            for side, at in ((-1.0, lo), (1.0, hi)):
                normal = [0.0, 0.0, 0.0]
                normal[axis] = side
                sid = self._table.add(Surface(normal=tuple(normal), point=tuple(at), au=au, av=av, tex=tid, name=role))
                if side < 0:
                    sids.append(sid)
        return sids

    def _build_furniture_prims(self) -> Primitives:
        T = tx.TEX
        blo, bhi, bsid, cxy, cr, cz, csid, sc, sr, ssid = ([] for _ in range(10))
        for piece in self.layout.pieces:
            for lo, hi, skin in piece.boxes:
                blo.append(lo), bhi.append(hi)
                bsid.append(self._furniture_surfaces(lo, hi, piece.skins[skin], piece.against_wall))
            for x, y, r, z0, z1, side_skin, cap_skin in piece.cylinders:
                (side, su, sv), (cap, cu, cv) = piece.skins[side_skin], piece.skins[cap_skin]
                au, av = curved_uv((x, y, z0), T / su, T / sv)
                s_side = self._table.add(Surface(**round_normal((x, y, 0.0), r, vertical=True), au=au, av=av, tex=side,
                                                 name="cylinder"))
                au, av = planar_uv(0, 1, (x - r, y - r, 0.0), T / cu, T / cv)
                s_cap = self._table.add(Surface(normal=(0, 0, 1), point=(x, y, z1), au=au, av=av, tex=cap, name="cap"))
                cxy.append((x, y)), cr.append(r), cz.append((z0, z1)), csid.append((s_side, s_cap))
            for c, r, skin in piece.spheres:
                tid, su, sv = piece.skins[skin]
                au, av = curved_uv(c, T / su, T / sv)
                s = self._table.add(Surface(**round_normal(c, r), au=au, av=av, tex=tid, name="sphere"))
                sc.append(c), sr.append(r), ssid.append(s)
        return Primitives(blo, bhi, bsid, cxy, cr, cz, csid, sc, sr, ssid)

    def _build_mover_surfaces(self, rng: np.random.Generator) -> None:
        """Surfaces for movers, with the texture scale fixed here; centres and
        texture origins are rewritten for every time t (:meth:`_at_time`)."""
        T = tx.TEX
        self._mover_sids = []
        for m in self.movers:
            color = tx.jitter(rng, tx.PALETTE[m.color])
            zero = (0.0, 0.0, 0.0)
            if m.kind == "ball":
                tid = self._tex(tx.ball(rng, color, np.array([0.86, 0.86, 0.83])))
                au, av = curved_uv(zero, T / (4 * m.radius))
                s = self._table.add(Surface(**round_normal(zero, m.radius), au=au, av=av, tex=tid, static=False, name=m.name))
                self._mover_sids.append((s,))
            else:
                skin = tx.hsv_to_rgb(rng.uniform(0.04, 0.09), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.9))
                trousers = tx.jitter(rng, tx.PALETTE[["blue", "black", "grey", "brown"][int(rng.integers(4))]])
                body = self._tex(tx.clothes(rng, color, trousers, skin))
                cap = self._tex(tx.solid(rng, color))
                head = self._tex(tx.face(rng, skin, tx.jitter(rng, (0.15, 0.1, 0.06), 0.3)))
                rh = self._head_radius(m)
                au, av = curved_uv(zero, T / 0.6, T / m.height)
                s_body = self._table.add(Surface(**round_normal(zero, m.radius, vertical=True), au=au, av=av, tex=body,
                                                 static=False, name=m.name))
                au, av = planar_uv(0, 1, zero, T)
                s_cap = self._table.add(Surface(normal=(0, 0, 1), point=(0.0, 0.0, m.height), au=au, av=av, tex=cap,
                                                static=False, name=m.name))
                au, av = curved_uv(zero, T / (4 * rh), T / (2 * rh))
                s_head = self._table.add(Surface(**round_normal(zero, rh), au=au, av=av, tex=head, static=False, name=m.name))
                self._mover_sids.append((s_body, s_cap, s_head))

    @staticmethod
    def _head_radius(m: MovingObject) -> float:
        return 0.65 * m.radius

    def _make_lighting(self, rng: np.random.Generator) -> Lighting:
        lo, hi = self.bounds
        pos = rng.uniform(lo[:2] + 0.3 * self.size[:2], hi[:2] - 0.3 * self.size[:2])
        a = rng.uniform(0, 2 * np.pi)
        fill = np.array([0.13 * np.cos(a), 0.13 * np.sin(a), 0.06], np.float32)
        return Lighting(ambient=float(rng.uniform(0.42, 0.5)), fill=fill,
                        light=np.array([pos[0], pos[1], hi[2] - 0.3], np.float32),
                        power=float(rng.uniform(1.0, 1.3)), falloff=float(rng.uniform(2.5, 3.5)))

    def _static_surface_area(self) -> float:
        """Static surface in m^2: room (minus window openings) plus furniture
        (boxes without their bottoms, cylinder sides and tops, spheres).
        Touching or overlapping parts are not subtracted: an upper bound of
        what can be seen, used to normalise exploration coverage."""
        sx, sy, H = self.size
        area = 2 * (sx + sy) * H + 2 * sx * sy
        for it in self.layout.wall_items:
            if it["kind"] == "window":
                area -= (it["u1"] - it["u0"] - 2 * it["frame"]) * (it["z1"] - it["z0"] - 2 * it["frame"])
        p = self._static_prims
        e = (p.box_hi - p.box_lo).astype(np.float64)
        area += float((2 * e[:, 2] * (e[:, 0] + e[:, 1]) + e[:, 0] * e[:, 1]).sum())
        r, hz = p.cyl_r.astype(np.float64), (p.cyl_z[:, 1] - p.cyl_z[:, 0]).astype(np.float64)
        area += float((2 * np.pi * r * hz + np.pi * r * r).sum())
        area += float((4 * np.pi * p.sph_r.astype(np.float64) ** 2).sum())
        return area

    # ---------------------------------------------------------------- time

    def _at_time(self, t: float):
        """Primitives and surface parameters with the movers at time t
        (cached for the last t: a batch or a repeated t costs nothing)."""
        cache = self._time_cache
        if cache is not None and cache[0] == t:
            return cache[1], cache[2]
        cxy, cr, cz, csid, sc, sr, ssid = ([] for _ in range(7))
        sids, centers, origins = [], [], []
        for m, ms in zip(self.movers, self._mover_sids):
            c = m.center_at(t)
            if m.kind == "ball":
                sc.append(c), sr.append(m.radius), ssid.append(ms[0])
                sids.append(ms[0]), centers.append(c), origins.append(c)
            else:
                foot = np.array([c[0], c[1], 0.0])
                rh = self._head_radius(m)
                head = np.array([c[0], c[1], m.height + 0.8 * rh + 0.02 * math.sin(2 * m.omega * t)])
                cxy.append(foot[:2]), cr.append(m.radius), cz.append((0.0, m.height)), csid.append(ms[:2])
                sc.append(head), sr.append(rh), ssid.append(ms[2])
                sids += list(ms)
                centers += [foot, foot, head]
                origins += [foot, foot, head - np.array([0.0, 0.0, rh])]
        surf = self._surf.copy()
        if sids:
            surf.move(sids, np.array(centers), np.array(origins))
        prims = self._static_prims.with_round(cxy, cr, cz, csid, sc, sr, ssid)
        self._time_cache = (t, prims, surf)
        return prims, surf

    # -------------------------------------------------------------- rendering

    def _rays(self, K: np.ndarray, height: int, width: int) -> Rays:
        key = (K.tobytes(), height, width)
        rays = self._ray_cache.get(key)
        if rays is None:
            if len(self._ray_cache) > 16:
                self._ray_cache.clear()
            rays = self._ray_cache[key] = Rays.from_intrinsics(K, height, width)
        return rays

    def _joined_rays(self, K: np.ndarray, height: int, width: int, geometry) -> Rays:
        """The rays of the image followed by those of a ``geometry`` view (K, h, w), cached."""
        Kg, hg, wg = geometry
        key = (K.tobytes(), height, width, Kg.tobytes(), hg, wg)
        rays = self._ray_cache.get(key)
        if rays is None:
            rays = self._ray_cache[key] = Rays.joined(self._rays(K, height, width), self._rays(Kg, hg, wg))
        return rays

    def _render_core(self, c2w: np.ndarray, K: np.ndarray, height: int, width: int, t: float, rgb: bool = True,
                     geometry=None):
        """c2w (B, 4, 4) float32 -> rgb (B, H, W, 3) (None without ``rgb``), depth (B, H, W), static (B, H, W);
        with ``geometry`` (K, h, w) also the depth and static of that view, traced in the same pass."""
        if geometry is not None:  # one trace for both ray sets: per ray the same bits as two renders
            image_rays = self._rays(K, height, width)
            rays = self._joined_rays(K, height, width, geometry)
            n = height * width
        else:
            image_rays = rays = self._rays(K, height, width)
        B = c2w.shape[0]
        R = np.ascontiguousarray(c2w[:, :3, :3], dtype=np.float32)
        o = np.ascontiguousarray(c2w[:, :3, 3], dtype=np.float32)
        # World ray directions (3, B, N), elementwise rather than a matmul so
        # that a pose renders bit-identically alone or inside any batch.
        x, y = rays.dcam[0], rays.dcam[1]
        Rt = R.transpose(1, 2, 0)[..., None]  # (3, 3, B, 1): Rt[k, j] = R[:, k, j]
        d = Rt[:, 0] * x + Rt[:, 1] * y + Rt[:, 2]
        prims, surf = self._at_time(t)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            vis = visible_mask(prims, o, R, rays.planes)
            win = trace(prims, self._room_planes, o, d, rays.norm2, vis)
            extra = ()
            if geometry is not None:
                _, hg, wg = geometry
                gd, gs = depth_static(win[:, n:], o, d[:, :, n:], surf, self._decals, self._sky_sid)
                extra = (gd.reshape(B, hg, wg), gs.reshape(B, hg, wg))
                win, d = win[:, :n], d[:, :, :n]
            if not rgb:  # geometry only: no texturing or lighting
                depth, static = depth_static(win, o, d, surf, self._decals, self._sky_sid)
                return (None, depth.reshape(B, height, width), static.reshape(B, height, width)) + extra
            colour, depth, static = shade(win, o, d, image_rays, surf, self._atlas, self._decals, self._lighting,
                                          self._sky_sid, self._sky_lut)
        return (np.ascontiguousarray(colour).reshape(B, height, width, 3), depth.reshape(B, height, width),
                static.reshape(B, height, width)) + extra

    @staticmethod
    def _check_time(t) -> float:
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"t must be a finite time in seconds, got {t!r}")
        return t

    def _check_K(self, K) -> np.ndarray:
        """K as float64 numpy (3, 3); validated by geometry.check_intrinsics the
        first time each distinct K is seen (the last few are remembered)."""
        Kn = np.asarray(K.detach().cpu().numpy() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
        key = Kn.tobytes() if Kn.shape == (3, 3) else None
        known = self._known_K.get(key)
        if known is not None:
            return known
        Kn = check_intrinsics(Kn).numpy().astype(np.float64)
        if len(self._known_K) >= 8:
            self._known_K.clear()
        self._known_K[key] = Kn
        return Kn

    @staticmethod
    def _check_poses(c2w, batched: bool) -> np.ndarray:
        """Poses as float32 numpy (B, 4, 4); bad input raises geometry.check_pose's ValueError."""
        arr = np.asarray(c2w.detach().cpu().numpy() if isinstance(c2w, torch.Tensor) else c2w)
        want = 3 if batched else 2
        if arr.dtype.kind not in "fiu" or arr.ndim != want or arr.shape[-2:] != (4, 4) or not np.isfinite(arr).all():
            checked = check_pose(c2w)  # raises for a wrong shape or non-finite values
            if checked.ndim != want:
                want_text = "render_batch takes poses shaped (B, 4, 4)" if batched else \
                    "render takes one 4x4 pose (use render_batch for a batch)"
                raise ValueError(f"{want_text}, got shape {tuple(checked.shape)}")
            arr = checked.numpy()
        arr = arr.astype(np.float32, copy=False)
        return arr if batched else arr[None]

    def render(self, c2w, K, height: int, width: int, t: float = 0.0, supersample: int = 1, geometry=None) -> dict:
        """Render one view.

        Args:
            c2w: (4, 4) camera-to-world pose (OpenCV axes), numpy or torch.
            K: (3, 3) intrinsics in pixels of a ``height`` x ``width`` image.
            t: time in seconds (moves the movers).
            supersample: s > 1 averages s x s rays per pixel for ``rgb`` (slower,
                off by default); depth and static always come from the pixel centre.
            geometry: optional (K, h, w) of a second, geometry-only view from the
                same pose, traced in the same pass (the env's coverage view):
                the values of ``render_batch(..., rgb=False)`` at less cost.

        Returns:
            dict with ``rgb`` uint8 (H, W, 3), ``depth`` float32 (H, W) z-depth in
            metres (inf on sky), ``static`` bool (H, W) (False on sky and movers);
            with ``geometry`` also ``geometry_depth`` and ``geometry_static`` (h, w).
        """
        poses = self._check_poses(c2w, batched=False)
        if geometry is not None:
            Kg, hg, wg = geometry
            if supersample != 1:
                raise ValueError("render(geometry=...) traces both views in one pass at supersample=1; "
                                 "render the geometry view with render_batch(..., rgb=False) instead")
            Kg, (hg, wg) = self._check_K(Kg), check_size(hg, wg)
            rgb, depth, static, gd, gs = self._render_core(poses, self._check_K(K), *check_size(height, width),
                                                           self._check_time(t), geometry=(Kg, hg, wg))
            return {"rgb": rgb[0], "depth": depth[0], "static": static[0], "geometry_depth": gd[0], "geometry_static": gs[0]}
        out = self._render(poses, K, height, width, np.array([self._check_time(t)]), supersample)
        return {k: v[0] for k, v in out.items()}

    def render_batch(self, c2w, K, height: int, width: int, t=0.0, supersample: int = 1, rgb: bool = True) -> dict:
        """Render B views in one pass: ``c2w`` (B, 4, 4); ``t`` a scalar or (B,)
        times (one pass per distinct time). Returns the arrays of
        :meth:`render` with a leading B; ``rgb=False`` skips texturing and
        lighting and returns only ``depth`` and ``static`` (the same values)."""
        poses = self._check_poses(c2w, batched=True)
        B = poses.shape[0]
        if np.ndim(t) == 0:
            times = np.full(B, self._check_time(t))
        else:
            times = np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
            if times.shape != (B,) or not np.isfinite(times).all():
                raise ValueError(f"t must be a finite scalar or one finite time per pose ({B}), got shape {times.shape}")
        return self._render(poses, K, height, width, times, supersample, rgb=bool(rgb))

    def _render(self, poses: np.ndarray, K, height, width, times: np.ndarray, supersample: int, rgb: bool = True) -> dict:
        Kn = self._check_K(K)
        height, width = check_size(height, width)
        limits.bounded_int("supersample", supersample, 1, None)
        if len(times) == 0:
            return {"rgb": np.zeros((0, height, width, 3), np.uint8), "depth": np.zeros((0, height, width), np.float32),
                    "static": np.zeros((0, height, width), bool)}
        B = poses.shape[0]
        if not rgb:
            depth = np.empty((B, height, width), np.float32)
            static = np.empty((B, height, width), bool)
            for sel, tu in self._chunks(times, height * width):
                _, depth[sel], static[sel] = self._render_core(poses[sel], Kn, height, width, tu, rgb=False)
            return {"depth": depth, "static": static}
        if B == 1:  # the common case, without copies
            rgb, depth, static = self._render_core(poses, Kn, height, width, float(times[0]))
        else:
            rgb = np.empty((B, height, width, 3), np.uint8)
            depth = np.empty((B, height, width), np.float32)
            static = np.empty((B, height, width), bool)
            for sel, tu in self._chunks(times, height * width):
                rgb[sel], depth[sel], static[sel] = self._render_core(poses[sel], Kn, height, width, tu)
        if supersample > 1:
            s = int(supersample)
            Ks = scale_intrinsics(Kn, (height, width), (height * s, width * s)).numpy().astype(np.float64)
            for sel, tu in self._chunks(times, height * width * s * s):
                big = self._render_core(poses[sel], Ks, height * s, width * s, tu)[0]
                small = big.reshape(-1, height, s, width, s, 3).astype(np.float32).mean(axis=(2, 4))
                rgb[sel] = np.round(small).astype(np.uint8)
        return {"rgb": rgb, "depth": depth, "static": static}

    @staticmethod
    def _chunks(times: np.ndarray, pixels_per_view: int, max_pixels: int = 1 << 17):
        """(indices, time) groups: one time each (movers are placed once per
        pass), at most ``max_pixels`` rays each (bounded memory, warm caches)."""
        per = max(1, max_pixels // pixels_per_view)
        for tu in np.unique(times):
            sel = np.flatnonzero(times == tu)
            for i in range(0, len(sel), per):
                yield sel[i:i + per], float(tu)

    # -------------------------------------------------------------- free space

    def is_free(self, xyz, radius: float = 0.2):
        """True where a point is inside the room (0 < z < height), at least
        ``radius`` from every wall and from every furniture footprint (a 2D
        check: furniture counts at any height; movers are ignored). ``xyz``
        is (3,) -> bool, or (N, 3) -> bool array."""
        p = np.asarray(xyz.detach().cpu().numpy() if isinstance(xyz, torch.Tensor) else xyz, dtype=np.float64)
        if p.shape[-1:] != (3,) or p.ndim not in (1, 2):
            raise ValueError(f"xyz must be shaped (3,) or (N, 3), got {p.shape}")
        if not np.isfinite(p).all():
            raise ValueError("xyz must be finite")
        if not (math.isfinite(radius) and radius >= 0):
            raise ValueError(f"radius must be finite and >= 0, got {radius!r}")
        ok = self.layout.is_free(p.reshape(-1, 3), float(radius))
        return bool(ok[0]) if p.ndim == 1 else ok

    def sample_position(self, rng: np.random.Generator, radius: float = 0.3) -> np.ndarray:
        """A free position at eye height, (3,) float64."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        return self.layout.sample_position(rng, float(radius), self.eye_height)

    def sample_pose(self, rng: np.random.Generator, radius: float = 0.3) -> torch.Tensor:
        """A level (pitch 0) camera-to-world pose at eye height, at a free
        position, with a random heading: float32 torch (4, 4)."""
        pos = self.sample_position(rng, radius)
        yaw = float(rng.uniform(-np.pi, np.pi))
        return pose_from_yaw_pitch(pos, yaw, 0.0)
