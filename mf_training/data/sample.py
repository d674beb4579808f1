"""The one record every data source yields and every consumer (training, eval, export) takes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_core.camera import PinholeCamera
from mf_core.files import safe_file_name


@dataclass
class Sample:
    """One synchronized camera frame with the LiDAR depth projected into it.

    Depth maps are float32 metres along the camera z axis; 0 marks "no value"
    (never NaN), so ``depth > 0`` is the validity mask.
    """

    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    sparse_depth: np.ndarray  # (H, W) float32 metres, 0 = no LiDAR return on that pixel
    camera: PinholeCamera  # intrinsics of ``image``
    stamp_ns: int  # camera stamp, nanoseconds
    gt_depth: np.ndarray | None = None  # (H, W) float32 metres, 0 = invalid; dense ground truth when known

    def __post_init__(self) -> None:
        safe_file_name(self.name, "sample name")  # consumers write it as a file name (panels, exports)
        h, w = self.image.shape[:2]
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Sample.image must be (H, W, 3) uint8 RGB, got {self.image.shape} {self.image.dtype}")
        for label, depth in (("sparse_depth", self.sparse_depth), ("gt_depth", self.gt_depth)):
            if depth is not None and depth.shape != (h, w):
                raise ValueError(f"Sample.{label} is {depth.shape}, image is {(h, w)}")
        if (self.camera.width, self.camera.height) != (w, h):
            raise ValueError(f"Sample.camera is {self.camera.width}x{self.camera.height}, image is {w}x{h}")

    @property
    def valid_mask(self) -> np.ndarray:
        """(H, W) bool: pixels with a LiDAR measurement."""
        return self.sparse_depth > 0
