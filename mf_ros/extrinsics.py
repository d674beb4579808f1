"""The LiDAR -> camera extrinsic ``T_camera_from_lidar``: parsed from users' numbers, or chained from static TF.

One home for every path that needs it: the nodes (``extrinsic`` parameter), ``mf densify`` /
``mf export`` (``--extrinsic`` or the bag's /tf_static) and training. Live TF lookups at a
sweep's stamp are rclpy's business (:mod:`mf_ros.nodes.tf_source`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from mf_core.errors import InputError
from mf_core.transforms import compose, from_values, invert
from mf_ros.conversions import TfEdge


def parse_extrinsic(value: str | Sequence[float] | None, source: str = "--extrinsic") -> np.ndarray | None:
    """``T_camera_from_lidar`` (4, 4) from 7 numbers (``x y z qx qy qz qw``) or 16 (row-major 4x4); None when
    unset (None, empty string or empty list: TF / /tf_static gives it).

    Takes the forms every boundary hands over: a CLI flag or launch argument (a string, numbers separated
    by spaces and/or commas, brackets allowed) and a YAML / node parameter (a list of numbers).
    ``source`` names the flag or parameter in the error.
    """
    if value is None or len(value) == 0:
        return None
    if isinstance(value, str):
        text = value.strip().strip("[]")
        try:
            numbers = [float(v) for v in text.replace(",", " ").split()]
        except ValueError:
            raise InputError(f"{source} {value!r} must be numbers: 'x y z qx qy qz qw' (camera <- LiDAR) "
                             "or the 16 values of a row-major 4x4 matrix") from None
    else:
        numbers = [float(v) for v in value]
    if not numbers:
        return None
    return from_values(numbers, f"{source} (T_camera_from_lidar)")


def static_transform(edges: list[TfEdge], target: str, source: str) -> np.ndarray:
    """``T_target_from_source`` (4, 4) by chaining static TF edges through the tree.

    Later edges for the same child replace earlier ones (a re-published /tf_static).
    Raises InputError when the two frames are not connected.
    """
    if target == source:
        return np.eye(4)
    # frame -> [(neighbour, T_neighbour_from_frame)]; the tree is tiny, so a plain BFS.
    latest = {(e.parent, e.child): e.T_parent_from_child for e in edges}
    links: dict[str, list[tuple[str, np.ndarray]]] = {}
    for (parent, child), T in latest.items():
        links.setdefault(child, []).append((parent, T))
        links.setdefault(parent, []).append((child, invert(T)))
    reached = {source: np.eye(4)}  # frame -> T_frame_from_source
    queue = deque([source])
    while queue:
        frame = queue.popleft()
        for neighbour, T_neighbour_from_frame in links.get(frame, []):
            if neighbour not in reached:
                reached[neighbour] = compose(T_neighbour_from_frame, reached[frame])
                queue.append(neighbour)
    if target not in reached:
        known = sorted(links)
        raise InputError(f"/tf_static has no chain of transforms from {source!r} to {target!r} (frames: {known}); "
                         "publish the missing static transform or pass --extrinsic 'x y z qx qy qz qw'")
    return reached[target]
