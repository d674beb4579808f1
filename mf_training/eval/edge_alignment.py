"""How well a depth map's edges follow its image's edges: the pixel distance from each occluding depth edge
to the nearest image edge.

An occluding edge is a valid depth pixel that is nearer than a 4-neighbour by more than ``step`` of its
own depth (the foreground side of a depth discontinuity, where an object's silhouette is in the image too).
Image edges are OpenCV's Canny edges of the lightly blurred grey image; their distance transform is
scipy's (exact Euclidean). Texture makes image edges where the depth is smooth, so the measure looks only
from depth edges to image edges, never back. Used to register depth to an image
(:mod:`mf_training.data.sevenscenes`) and to check that registration.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from mf_core.errors import InputError

CANNY_THRESHOLDS = (50, 120)  # on the 3x3-blurred 8-bit grey image
EDGE_STEP = 0.08  # relative depth step of an occluding edge
BORDER_PX = 2  # edges this close to the image border are not counted (np.roll wraps)


def occluding_edges(depth: np.ndarray, step: float = EDGE_STEP) -> np.ndarray:
    """(H, W) bool: valid pixels of ``depth`` (metres, 0 = none) nearer than a valid 4-neighbour by > ``step``."""
    valid = depth > 0
    edges = np.zeros_like(valid)
    for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        neighbour, neighbour_valid = np.roll(depth, shift, axis), np.roll(valid, shift, axis)
        edges |= valid & neighbour_valid & (neighbour > depth * (1.0 + step))
    edges[:BORDER_PX] = edges[-BORDER_PX:] = False
    edges[:, :BORDER_PX] = edges[:, -BORDER_PX:] = False
    return edges


def image_edge_distance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 pixels from each pixel to the nearest Canny edge of ``image`` ((H, W, 3) RGB or (H, W)
    grey, uint8)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), *CANNY_THRESHOLDS) > 0
    return distance_transform_edt(~edges).astype(np.float32)


def edge_distance(image: np.ndarray, depth: np.ndarray, cap_px: float = 4.0) -> tuple[float, int]:
    """Mean distance (pixels, each capped at ``cap_px`` so that depth edges without an image edge, e.g. at
    Kinect holes, count as misses rather than dominating) from the occluding edges of ``depth`` to the
    image's edges, and how many depth-edge pixels it averages; (nan, 0) when the depth has no edge."""
    if depth.shape != image.shape[:2]:
        raise InputError(f"depth is {depth.shape}, image is {image.shape[:2]}: they must be the same size")
    edges = occluding_edges(depth)
    count = int(edges.sum())
    if count == 0:
        return float("nan"), 0
    return float(np.minimum(image_edge_distance(image)[edges], cap_px).mean()), count
