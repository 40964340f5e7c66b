"""``PhotoScene``: start an episode from a user's photo.

A photo gives one view of a world we otherwise know nothing about: its
pixels, a depth *estimate* (monocular, so its scale is an assumption unless
the depth model is metric), and an *assumed* field of view. That is enough
to seed the memory (image -> latent, depth -> 3D positions) and let the
world model imagine the rest; it is not enough for ground truth anywhere
else, so :meth:`PhotoScene.render` answers only at the start pose and raises
:class:`GroundTruthUnavailable` elsewhere, and ``has_ground_truth`` is False
(tasks that score against ground truth must refuse a photo).

The camera: level, at ``eye_height`` metres above the floor (z = 0), at the
world origin, looking along +x (the same conventions as procedural rooms:
OpenCV camera, camera-to-world poses, +z up).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import as_tensor, backproject, check_pose, intrinsics_from_fov, pose_from_yaw_pitch, project
from ..images import resize_uint8

logger = logging.getLogger(__name__)


class GroundTruthUnavailable(RuntimeError):
    """Asked a photo for ground truth it does not have (any pose but its own)."""


def load_image(image) -> np.ndarray:
    """A path or an array to uint8 HxWx3 (grey is repeated, alpha dropped;
    16-bit and other integer images are scaled by their type's range, not clipped)."""
    if isinstance(image, (str, Path)):
        import imageio.v3 as iio

        path = Path(image).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"photo {path} does not exist")
        try:
            image = iio.imread(path)
        except Exception as err:  # imageio guesses a plugin from the suffix and blames a missing one (pyav)
            raise ValueError(f"photo {path} is not an image file that can be read ({type(err).__name__}); "
                             "pass a PNG or JPEG image") from None
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"a photo must be HxWx3 (or HxWx4, HxW), got shape {arr.shape}")
    arr = np.repeat(arr[..., :1], 3, axis=-1) if arr.shape[-1] <= 2 else arr[..., :3]  # grey (+ alpha) or colour (+ alpha)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"a photo must hold integer or float pixels, got dtype {arr.dtype}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(arr).all():
                raise ValueError("the photo contains NaN or inf pixels")
            arr = arr * 255.0 if arr.max() <= 1.0 else arr
        else:  # uint16 (16-bit PNG) and the like: the type's full range maps to 0..255
            arr = arr.astype(np.float64) * (255.0 / np.iinfo(arr.dtype).max)
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def fit_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop ``image`` to the aspect ratio of height x width, then resize
    (antialiased bilinear). Cropping keeps the assumed horizontal field of
    view meaning "of the crop"."""
    H, W = image.shape[:2]
    target = width / height
    if W / H > target:  # too wide: crop columns
        w = max(1, round(H * target))
        x0 = (W - w) // 2
        image = image[:, x0 : x0 + w]
    else:
        h = max(1, round(W / target))
        y0 = (H - h) // 2
        image = image[y0 : y0 + h]
    return resize_uint8(image, height, width)


class PhotoScene:
    """A photo with estimated depth and an assumed field of view.

    Args:
        image: path to an image file, or a uint8 HxWx3 array.
        fov_deg: assumed horizontal field of view of the photo (after the crop to the
            requested aspect ratio). Phone cameras are ~65-75 degrees.
        depth_estimator: a :class:`mirage_gym.models.depth.DepthEstimator` (or any
            callable images (N,3,H,W) in [-1,1] -> object with ``.depth`` (N,H,W));
            without one and without ``depth``, the scene is a flat wall at
            ``assumed_median_depth`` (a warning says so).
        depth: optional known z-depth (metres, HxW, inf for sky) at the image's resolution.
        eye_height: camera height above the floor (m).
        assumed_median_depth: the scale given to relative depth models (m).
    """

    has_ground_truth = False
    seed = None  # not a procedural room
    objects: tuple = ()

    def __init__(self, image, fov_deg: float = 70.0, depth_estimator=None, depth=None, eye_height: float = 1.6,
                 assumed_median_depth: float = 3.0, free_margin_m: float = 0.3):
        self.source = str(image) if isinstance(image, (str, Path)) else "array"
        self.image = load_image(image)
        self.fov_deg = float(fov_deg)
        intrinsics_from_fov(self.fov_deg, 8, 8)  # validates the fov
        self.depth_estimator = depth_estimator
        self.eye_height = float(eye_height)
        self.assumed_median_depth = float(assumed_median_depth)
        self.free_margin_m = float(free_margin_m)
        self.start_pose = pose_from_yaw_pitch((0.0, 0.0, self.eye_height), 0.0, 0.0)
        self._given_depth = None if depth is None else np.asarray(depth, dtype=np.float32)
        if self._given_depth is not None and self._given_depth.shape != self.image.shape[:2]:
            raise ValueError(f"depth must be {self.image.shape[:2]} like the image, got {self._given_depth.shape}")
        self._depth_cache: dict[tuple[int, int], np.ndarray] = {}
        if depth_estimator is None and depth is None:
            self.depth_source = f"assumed: a flat wall at {self.assumed_median_depth:g} m (no depth model given)"
        elif depth is not None:
            self.depth_source = "given"
        else:
            kind = getattr(depth_estimator, "kind", "unknown")
            self.depth_source = ("estimated (metric model)" if kind == "metric" else
                                 f"estimated (relative model; scale assumed: median depth {self.assumed_median_depth:g} m)")

    def __repr__(self) -> str:
        H, W = self.image.shape[:2]
        return f"PhotoScene({self.source!r}, {W}x{H}, fov_deg={self.fov_deg:g}, depth={self.depth_source})"

    # ---------------------------------------------------------------- camera

    def sample_pose(self, rng=None) -> torch.Tensor:
        """The only pose a photo has: its own (``rng`` is accepted for interface parity)."""
        return self.start_pose.clone()

    def intrinsics(self, height: int, width: int) -> torch.Tensor:
        return intrinsics_from_fov(self.fov_deg, height, width)

    def _is_start_view(self, c2w, K, height: int, width: int) -> bool:
        c2w = check_pose(c2w)
        if not torch.allclose(c2w, self.start_pose, atol=1e-4):
            return False
        K = as_tensor(K)
        mine = self.intrinsics(height, width)
        return bool(torch.allclose(K / torch.tensor([width, height, 1.0])[:, None], mine / torch.tensor([width, height, 1.0])[:, None], rtol=1e-2, atol=1e-4))

    # ---------------------------------------------------------------- content

    def image_at(self, height: int, width: int) -> np.ndarray:
        """uint8 (height, width, 3): the photo, centre-cropped and resized."""
        return fit_image(self.image, height, width)

    def depth_at(self, height: int, width: int) -> np.ndarray:
        """float32 (height, width) z-depth in metres, inf for sky (see ``depth_source``)."""
        key = (int(height), int(width))
        if key not in self._depth_cache:
            self._depth_cache[key] = self._estimate_depth(*key)
        return self._depth_cache[key]

    def _estimate_depth(self, height: int, width: int) -> np.ndarray:
        if self._given_depth is not None:
            d = torch.from_numpy(self._given_depth)
            finite = torch.isfinite(d)
            big = torch.where(finite, d, torch.full_like(d, 1e9))
            crop = fit_image_float(big.numpy(), height, width)
            return np.where(crop >= 1e8, np.inf, crop).astype(np.float32)
        if self.depth_estimator is None:
            logger.warning("PhotoScene %s: no depth model; using a flat wall at %.1f m", self.source, self.assumed_median_depth)
            return np.full((height, width), self.assumed_median_depth, np.float32)
        from ..images import to_model

        image = to_model(self.image_at(height, width))  # (1, 3, H, W) in [-1, 1]
        return self.depth_estimator(image).depth[0].cpu().numpy().astype(np.float32)

    def render(self, c2w, K, height: int, width: int, t: float = 0.0) -> dict:
        """Ground truth at the start view only: dict ``rgb`` (uint8 HxWx3),
        ``depth`` (float32 HxW, inf for sky) and ``static`` (bool HxW, False on
        sky). Any other pose or camera raises :class:`GroundTruthUnavailable`."""
        if not self._is_start_view(c2w, K, height, width):
            raise GroundTruthUnavailable(
                "a photo scene has ground truth only at its own start pose and field of view; "
                "other views exist only as the world model imagines them (use task='none', return_gt=False)")
        depth = self.depth_at(height, width)
        return {"rgb": self.image_at(height, width), "depth": depth, "static": np.isfinite(depth)}

    def _working_size(self) -> tuple[int, int]:
        """A depth map size to answer geometric questions with: one already
        computed if any, else 64 rows at the photo's aspect ratio."""
        return next(iter(self._depth_cache), (64, round(64 * self.image.shape[1] / self.image.shape[0])))

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) min and max xyz of what the photo shows (camera included,
        floor at z = 0), from the back-projected depth (for maps and plots)."""
        H, W = self._working_size()
        pts = backproject(torch.from_numpy(self.depth_at(H, W)), self.intrinsics(H, W), self.start_pose).reshape(-1, 3)
        pts = torch.cat([pts[torch.isfinite(pts).all(-1)], self.start_pose[None, :3, 3]])
        lo, hi = pts.min(0).values.numpy(), pts.max(0).values.numpy()
        lo[2], hi[2] = 0.0, max(float(hi[2]), self.eye_height)
        return np.stack([lo, hi]).astype(np.float64)

    def is_free(self, xyz) -> bool:
        """Free unless the point lies at or behind the photographed surface
        (within ``free_margin_m``) or below the floor. Points the photo does not
        see are unknown and count as free: the world model decides what is there."""
        p = as_tensor(xyz).reshape(3)
        if p[2] < 0.0:
            return False
        H, W = self._working_size()
        depth = self.depth_at(H, W)
        uv, z = project(p[None], self.intrinsics(H, W), self.start_pose)
        u, v, z = float(uv[0, 0]), float(uv[0, 1]), float(z[0])
        if z <= 0 or not (0 <= u < W and 0 <= v < H):
            return True
        return z < float(depth[int(v), int(u)]) - self.free_margin_m


def fit_image_float(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """:func:`fit_image` for a float HxW map (nearest resampling: depth edges stay sharp)."""
    H, W = image.shape
    target = width / height
    if W / H > target:
        w = max(1, round(H * target))
        image = image[:, (W - w) // 2 : (W - w) // 2 + w]
    else:
        h = max(1, round(W / target))
        image = image[(H - h) // 2 : (H - h) // 2 + h]
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="nearest")[0, 0].numpy()
