"""``T_camera_from_lidar`` for a LiDAR sweep: TF at the sweep's stamp, or the static ``extrinsic`` parameter.

tf2_ros is used when it imports (a ROS install): the transform is looked up at the LiDAR
stamp, never "latest". The PyPI wheels carry no tf2_ros (docs ROS.md), so there the
``extrinsic`` parameter (or one shared frame) must give it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mf_ros.conversions import NS_PER_S, transform_to_matrix
from mf_ros.depth_pipeline import FrameError


def _tf2_ros() -> Any:
    """The tf2_ros module, or None where it is not installed (PyPI wheels)."""
    try:
        import tf2_ros
    except ImportError:
        return None
    return tf2_ros


class ExtrinsicSource:
    """Looks up ``T_camera_from_lidar``.

    Order: the static ``extrinsic`` when given; identity when both frames are the same;
    tf2_ros at the LiDAR stamp (waiting up to ``timeout_s``) when tf2_ros imports.
    Otherwise, or when TF has no answer, :class:`FrameError` "missing_tf".
    """

    def __init__(self, node: Any, static: np.ndarray | None, timeout_s: float) -> None:
        self.static = static
        self.timeout_s = timeout_s
        self._tf2 = _tf2_ros() if static is None else None
        self._buffer = None
        if self._tf2 is not None:
            self._buffer = self._tf2.Buffer(node=node)
            self._listener = self._tf2.TransformListener(self._buffer, node, spin_thread=True)

    @property
    def uses_tf(self) -> bool:
        """True when transforms come from tf2_ros."""
        return self._buffer is not None

    def lookup(self, camera_frame: str, lidar_frame: str, stamp_ns: int) -> np.ndarray:
        """``T_camera_from_lidar`` (4, 4) at ``stamp_ns`` (the LiDAR stamp)."""
        if self.static is not None:
            return self.static
        if camera_frame == lidar_frame:
            return np.eye(4)
        if self._buffer is None:
            raise FrameError("missing_tf", f"no transform {lidar_frame!r} -> {camera_frame!r}: tf2_ros is not "
                             "installed; set the 'extrinsic' parameter (x y z qx qy qz qw, camera <- LiDAR)")
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            msg = self._buffer.lookup_transform(camera_frame, lidar_frame, Time(nanoseconds=stamp_ns),
                                                Duration(nanoseconds=int(self.timeout_s * NS_PER_S)))
        except self._tf2.TransformException as err:
            raise FrameError("missing_tf", f"no TF {lidar_frame!r} -> {camera_frame!r} at the LiDAR stamp "
                             f"{stamp_ns} ns: {err}; publish it (/tf_static) or set 'extrinsic'") from err
        return transform_to_matrix(msg.transform)
