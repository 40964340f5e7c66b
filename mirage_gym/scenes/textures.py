"""Procedural surface textures for the ground-truth rooms.

Every texture is a small periodic RGB tile (``TEX`` x ``TEX`` texels, float32
in [0, 1], indexed ``[v, u]`` with v pointing *up* the surface), generated
once per scene from the scene's numpy Generator. The renderer never evaluates
a pattern per pixel: it looks texels up in one atlas, so the cost of a frame
does not depend on how many kinds of pattern a room uses.

Aliasing: a 64x64 render sees a far wall at a few centimetres per pixel, finer
than grout lines and wood grain. Each tile therefore carries a small stack of
pre-blurred copies (``LEVELS`` mip levels, periodic Gaussian blur of 0, 1, 2,
4 texels); the renderer picks the level from the pixel's footprint on the
surface. The levels keep full resolution (blurred, not shrunk) so one index
formula serves all of them.
"""

from __future__ import annotations

import numpy as np

TEX = 64  # texels per tile side; a power of two so wrapping is a bit mask
LEVELS = 4  # mip levels per tile

# Named colours (sRGB-ish, [0, 1]) for furniture and movers: objects are named
# after these so a task can say "go to the red table".
PALETTE = {
    "red": (0.78, 0.16, 0.13),
    "orange": (0.92, 0.50, 0.12),
    "yellow": (0.92, 0.80, 0.20),
    "green": (0.22, 0.62, 0.26),
    "teal": (0.10, 0.56, 0.56),
    "blue": (0.16, 0.32, 0.78),
    "purple": (0.50, 0.26, 0.66),
    "pink": (0.92, 0.52, 0.66),
    "brown": (0.48, 0.30, 0.16),
    "white": (0.90, 0.90, 0.88),
    "black": (0.13, 0.13, 0.14),
    "grey": (0.52, 0.52, 0.54),
}


# --------------------------------------------------------------------- helpers


def _uv(n: int = TEX) -> tuple[np.ndarray, np.ndarray]:
    """Texel-centre coordinates u (columns) and v (rows) in [0, 1), shaped (n, n)."""
    c = (np.arange(n) + 0.5) / n
    v, u = np.meshgrid(c, c, indexing="ij")
    return u, v


def periodic_noise(rng: np.random.Generator, cells: float, n: int = TEX) -> np.ndarray:
    """Smooth tileable noise (n, n), zero mean, unit std, with blobs about
    ``n / cells`` texels across (white noise low-passed in Fourier space, so
    it wraps seamlessly)."""
    white = rng.standard_normal((n, n))
    f = np.fft.fftfreq(n) * n  # cycles per tile
    fy, fx = np.meshgrid(f, f, indexing="ij")
    gain = np.exp(-0.5 * (fx**2 + fy**2) / max(cells, 0.5) ** 2)
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * gain))
    return (out - out.mean()) / (out.std() + 1e-8)


def jitter(rng: np.random.Generator, color, amount: float = 0.06) -> np.ndarray:
    """A colour nudged per scene so equal names do not give equal pixels."""
    c = np.asarray(color, dtype=np.float64) * (1.0 + rng.uniform(-amount, amount, 3))
    return np.clip(c, 0.0, 1.0)


def random_pastel(rng: np.random.Generator, sat=(0.08, 0.35), val=(0.70, 0.90)) -> np.ndarray:
    """A wall-like colour: low saturation, fairly light."""
    h = rng.uniform(0, 1)
    s = rng.uniform(*sat)
    v = rng.uniform(*val)
    return hsv_to_rgb(h, s, v)


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _mix(a, b, w) -> np.ndarray:
    """Blend colours a, b (3,) by weight w (n, n) -> (n, n, 3)."""
    w = np.asarray(w)[..., None]
    return np.asarray(a) * (1 - w) + np.asarray(b) * w


def _shade(img: np.ndarray, factor) -> np.ndarray:
    return img * np.asarray(factor)[..., None]


def _band(x: np.ndarray, width: float) -> np.ndarray:
    """1 within ``width`` (in tile units) of an integer value of x, else 0."""
    d = np.abs(x - np.round(x))
    return (d < width).astype(np.float64)


# ------------------------------------------------------------------- patterns
# Each pattern: (rng, ...colours) -> (TEX, TEX, 3) float in [0, 1].


def plaster(rng, base) -> np.ndarray:
    """Painted wall / ceiling: flat colour with a faint mottle."""
    u, _ = _uv()
    noise = 0.035 * periodic_noise(rng, 3) + 0.015 * periodic_noise(rng, 12)
    return _shade(np.broadcast_to(np.asarray(base), u.shape + (3,)).copy(), 1 + noise)


def tiles(rng, base, grout, per_side: int = 2, alt=None) -> np.ndarray:
    """Square tiles (``per_side`` per tile edge), grout lines, per-tile tone
    jitter, optionally a checkerboard with ``alt``."""
    u, v = _uv()
    iu, iv = np.floor(u * per_side).astype(int), np.floor(v * per_side).astype(int)
    tone = rng.uniform(0.93, 1.07, (per_side, per_side))[iv, iu]
    img = np.broadcast_to(np.asarray(base), u.shape + (3,)).copy()
    if alt is not None:
        img = np.where(((iu + iv) % 2 == 1)[..., None], np.asarray(alt), img)
    img = _shade(img, tone * (1 + 0.03 * periodic_noise(rng, 8)))
    g = np.maximum(_band(u * per_side, 0.035), _band(v * per_side, 0.035))
    return _mix(img, grout, g)


def planks(rng, base, rows: int = 5) -> np.ndarray:
    """Wood planks along u, ``rows`` across v, staggered end seams, grain."""
    u, v = _uv()
    row = np.floor(v * rows).astype(int)
    local_v = v * rows - row
    offset = rng.uniform(0, 1, rows)[row]
    tone = rng.uniform(0.82, 1.12, rows)[row]
    warp = 0.25 * periodic_noise(rng, 4)
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * (local_v * 2.5 + warp))
    img = _shade(np.broadcast_to(np.asarray(base), u.shape + (3,)).copy(), tone * (0.9 + 0.12 * grain))
    seams = np.maximum(_band(v * rows, 0.03), _band(u + offset, 0.008))
    return _mix(img, np.asarray(base) * 0.45, seams)


def stripes(rng, c1, c2, count: int = 4) -> np.ndarray:
    """Wallpaper stripes along u: two colours, with a thin accent line."""
    u, _ = _uv()
    phase = (u * count) % 1.0
    img = _mix(c1, c2, (phase > 0.5).astype(float))
    accent = np.abs(phase - 0.25) < 0.03
    img = np.where(accent[..., None], np.asarray(c2) * 0.8, img)
    return _shade(img, 1 + 0.02 * periodic_noise(rng, 6))


def diamonds(rng, base, accent, count: int = 4) -> np.ndarray:
    """Wallpaper with a lattice of soft diamonds."""
    u, v = _uv()
    fu, fv = (u * count) % 1.0 - 0.5, (v * count) % 1.0 - 0.5
    d = np.abs(fu) + np.abs(fv)
    w = np.clip((0.28 - d) / 0.06, 0, 1)
    return _shade(_mix(base, accent, w), 1 + 0.02 * periodic_noise(rng, 6))


def carpet(rng, base) -> np.ndarray:
    """Carpet: soft low-frequency tone variation."""
    n = 0.10 * periodic_noise(rng, 3) + 0.06 * periodic_noise(rng, 10)
    u, _ = _uv()
    return _shade(np.broadcast_to(np.asarray(base), u.shape + (3,)).copy(), 1 + n)


def bricks(rng, brick, mortar, rows: int = 8, per_row: int = 4) -> np.ndarray:
    """Running-bond bricks with mortar lines and per-brick tone."""
    u, v = _uv()
    r = np.floor(v * rows).astype(int)
    shifted = u * per_row + 0.5 * (r % 2)
    col = np.floor(shifted).astype(int) % per_row
    tone = rng.uniform(0.8, 1.15, (rows, per_row))[r, col]
    img = _shade(np.broadcast_to(np.asarray(brick), u.shape + (3,)).copy(), tone * (1 + 0.04 * periodic_noise(rng, 10)))
    m = np.maximum(_band(v * rows, 0.07), _band(shifted, 0.025))
    return _mix(img, mortar, m)


def books(rng, wood, rows: int = 2) -> np.ndarray:
    """A bookcase front: shelf boards and rows of coloured spines."""
    u, v = _uv()
    img = np.broadcast_to(np.asarray(wood) * 0.35, u.shape + (3,)).copy()  # shadowed back panel
    names = list(PALETTE)
    row_h = TEX // rows
    for r in range(rows):
        x = 0
        while x < TEX - 2:
            w = int(rng.integers(2, 6))
            h = int(row_h * rng.uniform(0.55, 0.85))
            col = np.asarray(PALETTE[names[int(rng.integers(len(names)))]]) * rng.uniform(0.7, 1.0)
            y0 = r * row_h + 3
            img[y0:y0 + h, x:x + w] = col
            x += w + int(rng.integers(0, 2))
        img[r * row_h:r * row_h + 3, :] = wood  # the shelf board at the bottom of the row
    return img


def drawers(rng, base, cols: int = 2, rows: int = 3) -> np.ndarray:
    """A cabinet front: a grid of drawers with gaps and dark handles."""
    u, v = _uv()
    img = _shade(np.broadcast_to(np.asarray(base), u.shape + (3,)).copy(), 1 + 0.03 * periodic_noise(rng, 6))
    gaps = np.maximum(_band(u * cols, 0.02), _band(v * rows, 0.03))
    img = _mix(img, np.asarray(base) * 0.4, gaps)
    fu, fv = (u * cols) % 1.0, (v * rows) % 1.0
    handle = (np.abs(fu - 0.5) < 0.12) & (np.abs(fv - 0.7) < 0.06)
    return np.where(handle[..., None], np.array([0.15, 0.15, 0.16]), img)


def fabric(rng, c1, c2) -> np.ndarray:
    """Plaid fabric for beds and sofas: crossed soft bands of two colours."""
    u, v = _uv()
    k = int(rng.integers(2, 4))
    w = 0.5 * (0.5 + 0.5 * np.cos(2 * np.pi * k * u)) + 0.5 * (0.5 + 0.5 * np.cos(2 * np.pi * k * v))
    return _shade(_mix(c1, c2, 0.6 * w**2), 1 + 0.03 * periodic_noise(rng, 12))


def solid(rng, base, mottle: float = 0.03) -> np.ndarray:
    """Plain colour with a very faint mottle (painted furniture, frames)."""
    u, _ = _uv()
    return _shade(np.broadcast_to(np.asarray(base), u.shape + (3,)).copy(), 1 + mottle * periodic_noise(rng, 5))


def foliage(rng, base) -> np.ndarray:
    """Leaves: high-contrast green blobs."""
    n = periodic_noise(rng, 6) + 0.5 * periodic_noise(rng, 14)
    u, _ = _uv()
    img = _shade(np.broadcast_to(np.asarray(base), u.shape + (3,)).copy(), 0.75 + 0.25 * np.tanh(n))
    return img


def ball(rng, c1, c2) -> np.ndarray:
    """A beach-ball pattern: broad bands of two colours with a white band."""
    u, v = _uv()
    band = np.floor(u * 3).astype(int) % 3
    img = np.stack([np.asarray(c1), np.asarray(c2), np.array([0.95, 0.95, 0.92])])[band]
    return img


def clothes(rng, shirt, trousers, skin) -> np.ndarray:
    """A walking figure's body, bottom to top over one tile: trousers, shirt
    (the renderer maps the tile once over the body's height)."""
    u, v = _uv()
    img = np.where((v < 0.48)[..., None], np.asarray(trousers), np.asarray(shirt))
    img = np.where((v > 0.94)[..., None], np.asarray(skin), img)  # neck
    return _shade(img, 1 + 0.03 * periodic_noise(rng, 8))


def face(rng, skin, hair) -> np.ndarray:
    """A head: hair on top, skin below (mapped once over the head's height)."""
    u, v = _uv()
    img = np.where((v > 0.62)[..., None], np.asarray(hair), np.asarray(skin))
    return img


def door(rng, wood) -> np.ndarray:
    """A door leaf over one tile: four recessed panels and a handle."""
    u, v = _uv()
    img = _shade(np.broadcast_to(np.asarray(wood), u.shape + (3,)).copy(), 1 + 0.04 * periodic_noise(rng, 8))
    pu = (np.abs(u - 0.5) > 0.05) & (np.abs(u - 0.5) < 0.38)
    pv = ((v > 0.08) & (v < 0.42)) | ((v > 0.52) & (v < 0.92))
    img = np.where((pu & pv)[..., None], img * 0.86, img)
    handle = (np.abs(u - 0.88) < 0.035) & (np.abs(v - 0.47) < 0.025)
    return np.where(handle[..., None], np.array([0.82, 0.72, 0.35]), img)


def painting(rng) -> np.ndarray:
    """An abstract landscape over one tile: sky, hills, a sun. Each painting is
    a distinct landmark, which a memory can be checked against on revisits."""
    u, v = _uv()
    sky_top = hsv_to_rgb(rng.uniform(0.5, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.7, 1.0))
    sky_low = hsv_to_rgb(rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.6), rng.uniform(0.8, 1.0))
    img = _mix(sky_low, sky_top, v)
    sun = (u - rng.uniform(0.2, 0.8)) ** 2 + (v - rng.uniform(0.6, 0.85)) ** 2 < rng.uniform(0.006, 0.015)
    img = np.where(sun[..., None], hsv_to_rgb(rng.uniform(0.05, 0.15), 0.8, 1.0), img)
    for k in range(int(rng.integers(2, 4))):
        h = rng.uniform(0.2, 0.55) - 0.12 * k + 0.12 * np.sin(2 * np.pi * (u * rng.integers(1, 4) + rng.uniform()))
        hue = rng.uniform(0.2, 0.45) if rng.uniform() < 0.7 else rng.uniform(0, 1)  # mostly green hills
        col = hsv_to_rgb(hue, rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.7))
        img = np.where((v < h)[..., None], col, img)
    return img


# ------------------------------------------------------------------- the atlas


MIP_SIGMAS = [0.0] + [0.5 * 2.0**level for level in range(1, LEVELS)]  # texels: 0, 1, 2, 4


def mip_stacks(tiles: np.ndarray) -> np.ndarray:
    """(n, TEX, TEX, 3) -> (n, LEVELS, TEX, TEX, 3): each tile blurred by
    ``MIP_SIGMAS`` with wrap-around (one real FFT for all tiles)."""
    n = tiles.shape[1]
    F = np.fft.rfft2(tiles, axes=(1, 2))
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    out = [tiles]
    for sigma in MIP_SIGMAS[1:]:
        gain = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))[None, :, :, None]
        out.append(np.fft.irfft2(F * gain, s=(n, n), axes=(1, 2)))
    return np.stack(out, axis=1)


def build_atlas(tiles_list: list[np.ndarray], scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Stack tiles into the renderer's flat atlas: uint32 (n * LEVELS * TEX * TEX,),
    each texel four bytes R, G, B, 0 of the colour times ``scale`` (the light
    colour) in 0..255. Texel (tile i, level l, v, u) sits at index
    ((i * LEVELS + l) * TEX + v) * TEX + u. Packing a texel into one 32-bit
    word makes the per-pixel gather about 3x faster than 3-byte or 12-byte rows,
    and keeps a room's atlas at 64 KiB per tile."""
    tiles = np.clip(np.stack([np.asarray(t, dtype=np.float64) for t in tiles_list]), 0.0, 1.0)
    rgb = mip_stacks(tiles).reshape(-1, 3) * (255.0 * np.asarray(scale))
    rgba = np.zeros((rgb.shape[0], 4), np.uint8)
    rgba[:, :3] = np.clip(np.round(rgb), 0, 255)
    return rgba.view(np.uint32).reshape(-1)
