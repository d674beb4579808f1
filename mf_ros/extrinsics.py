"""The LiDAR -> camera extrinsic ``T_camera_from_lidar``: parsed from users' numbers, or chained from TF.

One home for every path that needs it: the nodes (``extrinsic`` parameter), ``mf densify`` /
``mf export`` (``--extrinsic``, the bag's /tf_static, or with a fixed frame its /tf over time:
:class:`TfTimeline`) and training. Live TF lookups at a sweep's stamp are rclpy's business
(:mod:`mf_ros.nodes.tf_source`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from mf_core.errors import InputError
from mf_core.transforms import compose, from_values, interpolate, invert
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
    tree = {(e.parent, e.child): e.T_parent_from_child for e in edges}
    T = chain_transforms(tree, tree.__getitem__, target, source)
    if T is None:
        known = sorted({frame for e in edges for frame in (e.parent, e.child)})
        raise InputError(f"/tf_static has no chain of transforms from {source!r} to {target!r} (frames: {known}); "
                         "publish the missing static transform or pass --extrinsic 'x y z qx qy qz qw'")
    return T


Edge = tuple[str, str]  # (parent, child) frame names of one TF edge


def chain_transforms(edges: Iterable[Edge], transform: Callable[[Edge], np.ndarray], target: str, source: str
                     ) -> np.ndarray | None:
    """``T_target_from_source`` (4, 4) through the tree of ``edges``, ``transform(edge)`` giving its
    T_parent_from_child; only the edges on the chain are evaluated. None when the two frames are not connected."""
    if target == source:
        return np.eye(4)
    # frame -> [(neighbour, edge, whether the neighbour is the edge's parent)]; the tree is tiny, so a plain BFS.
    links: dict[str, list[tuple[str, Edge, bool]]] = {}
    for parent, child in edges:
        links.setdefault(child, []).append((parent, (parent, child), True))
        links.setdefault(parent, []).append((child, (parent, child), False))
    previous: dict[str, tuple[str, Edge, bool]] = {}  # frame -> the frame it was reached from, by which edge
    queue = deque([source])
    while queue and target not in previous:
        frame = queue.popleft()
        for neighbour, edge, upwards in links.get(frame, []):
            if neighbour != source and neighbour not in previous:
                previous[neighbour] = (frame, edge, upwards)
                queue.append(neighbour)
    if target not in previous:
        return None
    T, frame = np.eye(4), target  # T: T_target_from_frame, walking back to the source
    while frame != source:
        before, edge, upwards = previous[frame]
        T = compose(T, transform(edge) if upwards else invert(transform(edge)))  # times T_frame_from_before
        frame = before
    return T


def check_fixed_frame(fixed_frame: str | None, extrinsic: np.ndarray | None) -> None:
    """InputError unless ``fixed_frame`` (``--fixed-frame``) is unset, or a frame name given without a static
    ``extrinsic`` (the two are different answers to where the LiDAR is)."""
    if fixed_frame is not None and (extrinsic is not None or not fixed_frame):
        raise InputError("--fixed-frame takes the LiDAR's place from the bag's TF at every stamp: give a frame name "
                         "and no --extrinsic (a static camera <- LiDAR transform)")


class TfTimeline:
    """The TF tree of a recording over time, looked up at a stamp as tf2_ros's buffer does live (its Python
    buffer needs a ROS install, so it is written here): /tf_static edges hold at every stamp; a /tf edge is
    interpolated between its two samples around the stamp (:func:`mf_core.transforms.interpolate`) and never
    extrapolated past its first or last sample."""

    def __init__(self, static_edges: list[TfEdge], moving_edges: list[TfEdge]):
        self._static = {(e.parent, e.child): e.T_parent_from_child for e in static_edges}  # later ones win
        samples: dict[Edge, dict[int, np.ndarray]] = {}
        for e in moving_edges:  # a repeated stamp: the later sample wins
            samples.setdefault((e.parent, e.child), {})[e.stamp_ns] = e.T_parent_from_child
        self._moving = {key: (np.array(sorted(by_stamp), dtype=np.int64),  # (K,) stamps, (K, 4, 4) transforms
                              np.stack([by_stamp[t] for t in sorted(by_stamp)])) for key, by_stamp in samples.items()}

    def _edge_at(self, key: Edge, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The moving edge ``key`` at ``stamps`` (B,): (B, 4, 4), and (B,) whether its samples span each stamp."""
        sample_stamps, transforms = self._moving[key]
        known = (stamps >= sample_stamps[0]) & (stamps <= sample_stamps[-1])
        return interpolate(sample_stamps, transforms, stamps), known

    def at_stamps(self, target: str, source: str, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``T_target_from_source`` (B, 4, 4) at each of ``stamps`` (B,) ns, and (B,) whether TF has it there (every
        moving edge on the chain has samples around the stamp; elsewhere the transform holds the edges' nearest
        samples and is no lookup). InputError when the frames are not connected."""
        stamps = np.asarray(stamps, dtype=np.int64).reshape(-1)
        known = np.ones(stamps.shape, dtype=bool)

        def transform(edge: Edge) -> np.ndarray:  # a frame both static and moving: the static edge
            if edge in self._static:
                return self._static[edge]
            T, inside = self._edge_at(edge, stamps)
            known[...] &= inside  # in place: the closure updates the caller's mask
            return T

        T = chain_transforms({**self._static, **self._moving}.keys(), transform, target, source)
        if T is None:
            known_frames = sorted({frame for edge in [*self._static, *self._moving] for frame in edge})
            raise InputError(f"TF has no chain of transforms from {source!r} to {target!r} (frames: {known_frames})")
        return np.broadcast_to(T, (stamps.size, 4, 4)).copy(), known

    def at(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``T_target_from_source`` (4, 4) at ``stamp_ns``; InputError when the frames are not connected or a
        moving edge between them has no samples around the stamp (TF is not extrapolated)."""
        T, known = self.at_stamps(target, source, np.array([stamp_ns]))
        if not known[0]:
            spans = ", ".join(f"{parent!r} -> {child!r} from {stamps[0]} to {stamps[-1]} ns"
                              for (parent, child), (stamps, _) in self._moving.items())
            raise InputError(f"TF between {source!r} and {target!r} is not known at {stamp_ns} ns (TF is not "
                             f"extrapolated; /tf has {spans})")
        return T[0]

    def across(self, target: str, target_stamp_ns: int, source: str, source_stamp_ns: int, fixed: str) -> np.ndarray:
        """``T_target_from_source`` from ``source`` at its stamp to ``target`` at another, through ``fixed``
        (a frame that does not move between the two stamps: the odometry or map frame), as tf2's
        lookupTransform with a fixed frame: a LiDAR sweep moved to the instant its camera image was taken."""
        return compose(self.at(target, fixed, target_stamp_ns), self.at(fixed, source, source_stamp_ns))

    def across_stamps(self, target: str, target_stamp_ns: int, source: str, source_stamps: np.ndarray, fixed: str
                      ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`across` for many source stamps (B,): (B, 4, 4) and (B,) whether TF has each (:meth:`at_stamps`);
        InputError when the target has no TF at its own stamp."""
        T, known = self.at_stamps(fixed, source, source_stamps)
        return compose(self.at(target, fixed, target_stamp_ns), T), known
