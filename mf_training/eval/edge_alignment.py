"""Where depth edges lie: against the image's edges (registration) and against the ground truth's (scoring).

- :func:`edge_distance`: the pixel distance from each occluding depth edge to the nearest image edge.
- :func:`depth_edge_errors`: how far a prediction's occluding edges are from the ground truth's and back
  (accuracy and completeness in pixels, after the depth boundary errors of the iBims-1 benchmark, Koch et
  al. 2018, with occluding edges in place of Canny edges of the depth map): a fill that smears a depth
  step over the rows between two scan lines has no edge there and scores poorly on completeness.

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
EDGE_KEYS = ("edge_accuracy_px", "edge_completeness_px")  # what depth_edge_errors adds to a frame's metrics
EDGE_CAP_PX = 10.0  # an edge farther than this from any counterpart counts as this far (a miss)
HOLE_FILL_PX = 8  # ground-truth holes up to this wide take the farther depth beside them (see depth_edge_errors)


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


def _fill_short_gaps(depth: np.ndarray, max_gap: int, axis: int) -> np.ndarray:
    """``depth`` (H, W) with each run of at most ``max_gap`` invalid pixels along ``axis`` between two valid ones
    set to the farther of the two."""
    if axis == 0:
        return _fill_short_gaps(depth.T, max_gap, 1).T
    valid = depth > 0
    columns = np.arange(depth.shape[1])
    before = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)  # (H, W) last valid column at or before
    after = np.minimum.accumulate(np.where(valid, columns, depth.shape[1])[:, ::-1], axis=1)[:, ::-1]  # first at/after
    bounded = (before >= 0) & (after < depth.shape[1]) & (after - before - 1 <= max_gap)
    rows = np.arange(depth.shape[0])[:, None]
    farther = np.maximum(depth[rows, before.clip(0)], depth[rows, after.clip(max=depth.shape[1] - 1)])
    return np.where(valid | ~bounded, depth, farther)


def depth_edge_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                      cap_px: float = EDGE_CAP_PX) -> dict[str, float]:
    """Accuracy and completeness of the occluding edges of ``pred`` against those of dense ``gt`` ((H, W)
    metres, 0 = none), in pixels, each distance capped at ``cap_px``; lower is better for both.

    accuracy: mean distance from a predicted edge to the nearest ground-truth edge, over the predicted edges
    that have scored ground truth within 1 px (elsewhere nothing can confirm or refute them); completeness:
    mean distance from a ground-truth edge to the nearest predicted edge (a missed edge counts ``cap_px``).
    ``mask`` (H, W) bool limits both to the scored region. NaN where a side has no edge to average over.

    Depth sensors leave a hole beside most occluding edges (the background the projector or the other camera
    cannot see), so the foreground there borders no farther depth; gaps of up to HOLE_FILL_PX pixels along a
    row, then a column, first take the farther of the depths at their two ends (the background), which puts
    the ground-truth edge back where the foreground ends.
    """
    scored = gt > 0 if mask is None else mask & (gt > 0)
    truth = np.where(scored, gt, 0.0).astype(np.float32)
    filled = _fill_short_gaps(_fill_short_gaps(truth, HOLE_FILL_PX, 1), HOLE_FILL_PX, 0)  # (H, W) shadows: background
    near_scored = cv2.dilate(scored.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # within 1 px of truth
    gt_edges = occluding_edges(filled) & near_scored
    pred_edges = occluding_edges(np.nan_to_num(pred)) & near_scored
    if not gt_edges.any():
        return dict.fromkeys(EDGE_KEYS, float("nan"))
    accuracy = (float(np.minimum(distance_transform_edt(~gt_edges)[pred_edges], cap_px).mean())
                if pred_edges.any() else float("nan"))
    completeness = (float(np.minimum(distance_transform_edt(~pred_edges)[gt_edges], cap_px).mean())
                    if pred_edges.any() else cap_px)
    return {"edge_accuracy_px": accuracy, "edge_completeness_px": completeness}


def mean_edge_errors(frames: list[dict]) -> dict[str, float]:
    """The mean over ``frames`` (metric dicts) of each of EDGE_KEYS that some frame has, NaN frames left out."""
    means = {}
    for key in EDGE_KEYS:
        values = [frame[key] for frame in frames if key in frame and np.isfinite(frame[key])]
        if any(key in frame for frame in frames):
            means[key] = float(np.mean(values)) if values else float("nan")
    return means
