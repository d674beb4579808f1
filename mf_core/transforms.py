"""4x4 rigid transforms in the ``T_a_from_b`` convention: ``p_a = T_a_from_b @ p_b``.

Quaternions go through ``transforms3d`` (scalar-first w, x, y, z); ROS messages
carry them scalar-last (x, y, z, w), for which ``from_ros_quaternion`` exists; slerp between two
rotations through scipy's ``Slerp`` (transforms3d has none). All matrices are float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from transforms3d.quaternions import mat2quat, quat2mat

from mf_core.errors import InputError

# Below this norm a quaternion carries no rotation we could recover.
_MIN_QUATERNION_NORM = 1e-9
# How far R^T R of an accepted rotation block may be from the identity (see validate).
_ORTHONORMAL_TOLERANCE = 1e-3


def _unit_quaternion(wxyz: Sequence[float]) -> np.ndarray:
    """The (4,) unit quaternion for ``wxyz``; InputError when zero or not finite."""
    q = np.asarray(wxyz, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise InputError(f"a quaternion needs 4 finite numbers (w, x, y, z), got {list(np.ravel(q))}")
    norm = float(np.linalg.norm(q))
    if norm < _MIN_QUATERNION_NORM:
        raise InputError("quaternion is all zero; a rotation needs a unit quaternion (identity is w=1)")
    return q / norm


def _translation(translation: Sequence[float]) -> np.ndarray:
    t = np.asarray(translation, dtype=np.float64)
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise InputError(f"a translation needs 3 finite numbers (x, y, z), got {list(np.ravel(t))}")
    return t


def from_quaternion(wxyz: Sequence[float], translation: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """(4, 4) transform from a scalar-first quaternion (w, x, y, z) and a translation (x, y, z).

    A non-unit quaternion is normalised; a zero one raises InputError.
    """
    T = np.eye(4)
    T[:3, :3] = quat2mat(_unit_quaternion(wxyz))
    T[:3, 3] = _translation(translation)
    return T


def from_ros_quaternion(xyzw: Sequence[float], translation: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """(4, 4) transform from a ROS-order quaternion (x, y, z, w) and a translation (x, y, z)."""
    x, y, z, w = _xyzw(xyzw)
    return from_quaternion((w, x, y, z), translation)


def _xyzw(xyzw: Sequence[float]) -> tuple[float, float, float, float]:
    q = np.asarray(xyzw, dtype=np.float64)
    if q.shape != (4,):
        raise InputError(f"a ROS quaternion needs 4 numbers (x, y, z, w), got {list(np.ravel(q))}")
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def to_quaternion(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a rigid (4, 4) transform into a scalar-first unit quaternion (4,) and a translation (3,)."""
    T = validate(T)
    q = mat2quat(T[:3, :3])
    # q and -q are the same rotation; pick w >= 0 so results are reproducible.
    return (q if q[0] >= 0 else -q), T[:3, 3].copy()


def validate(T: np.ndarray, name: str = "transform") -> np.ndarray:
    """``T`` as a float64 (4, 4) rigid transform; InputError when it is not one.

    Accepts a rotation block orthonormal to 1e-3 (tracked poses, e.g. 7-Scenes' KinectFusion,
    stray up to 4e-4) and a last row of (0, 0, 0, 1).
    """
    M = np.asarray(T, dtype=np.float64)
    if M.shape != (4, 4) or not np.all(np.isfinite(M)):
        raise InputError(f"{name} must be a finite 4x4 matrix, got shape {M.shape}")
    if not np.allclose(M[3], (0.0, 0.0, 0.0, 1.0)):
        raise InputError(f"{name} last row must be (0, 0, 0, 1), got {M[3].tolist()}")
    R = M[:3, :3]
    if not np.allclose(R.T @ R, np.eye(3), atol=_ORTHONORMAL_TOLERANCE) or np.linalg.det(R) < 0:
        raise InputError(f"{name} rotation block is not a proper rotation (R^T R != I or det < 0)")
    return M


def from_values(values: Sequence[float], name: str) -> np.ndarray:
    """A 4x4 transform from 7 numbers (``x y z qx qy qz qw``, ROS order) or 16 (row-major 4x4).

    ``name`` says where the numbers came from (a flag, a parameter) in the error message.
    """
    if len(values) == 7:
        return from_ros_quaternion(values[3:], values[:3])
    if len(values) == 16:
        return validate(np.array(values, dtype=np.float64).reshape(4, 4), name)
    raise InputError(f"{name} has {len(values)} numbers; give 7 (x y z qx qy qz qw) or 16 (a row-major 4x4 matrix)")


def invert(T_a_from_b: np.ndarray) -> np.ndarray:
    """``T_b_from_a`` of a rigid transform (4, 4), or of each of a stack (..., 4, 4): rotation R^T, translation
    -R^T t (exact, no general inverse)."""
    T_a_from_b = np.asarray(T_a_from_b, dtype=np.float64)
    R_t = np.swapaxes(T_a_from_b[..., :3, :3], -1, -2)
    out = np.broadcast_to(np.eye(4), T_a_from_b.shape).copy()
    out[..., :3, :3] = R_t
    out[..., :3, 3] = -(R_t @ T_a_from_b[..., :3, 3:4])[..., 0]
    return out


def compose(*transforms: np.ndarray) -> np.ndarray:
    """Chain transforms left to right: ``compose(T_a_from_b, T_b_from_c) == T_a_from_c``."""
    if not transforms:
        raise InputError("compose needs at least one transform")
    out = np.asarray(transforms[0], dtype=np.float64)
    for T in transforms[1:]:
        out = out @ T
    return out


def apply(T_a_from_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Points (N, 3) of frame b mapped into frame a; float64 (N, 3)."""
    pts = np.asarray(points_b)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must be an (N, 3) array, got shape {pts.shape}")
    return pts @ T_a_from_b[:3, :3].T + T_a_from_b[:3, 3]  # (N, 3)


def interpolate(sample_stamps: np.ndarray, transforms: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """(B, 4, 4) rigid transforms at ``stamps`` (B,) from samples (K, 4, 4) at increasing ``sample_stamps`` (K,),
    between the two samples around each stamp as tf2 interpolates: the translation linearly, the rotation along the
    shorter great arc (slerp). Stamps outside the samples' span take the nearest sample (never extrapolated)."""
    from scipy.spatial.transform import Rotation, Slerp

    sample_stamps = np.asarray(sample_stamps, dtype=np.int64)
    clipped = np.clip(np.asarray(stamps, dtype=np.int64), sample_stamps[0], sample_stamps[-1])  # (B,)
    out = np.broadcast_to(np.eye(4), (clipped.size, 4, 4)).copy()
    if clipped.size == 0:
        return out
    # Only the samples around the stamps: a long recording's /tf has hundreds of thousands.
    first = max(int(np.searchsorted(sample_stamps, clipped.min(), side="right")) - 1, 0)
    last = int(np.searchsorted(sample_stamps, clipped.max(), side="left")) + 1
    sample_stamps, transforms = sample_stamps[first:last], transforms[first:last]
    if sample_stamps.size == 1:
        return out @ transforms[0]
    # Nanosecond epochs relative to the first sample: exact as float64 over any recording shorter than 104 days.
    times = (sample_stamps - sample_stamps[0]).astype(np.float64)
    queries = (clipped - sample_stamps[0]).astype(np.float64)
    out[:, :3, :3] = Slerp(times, Rotation.from_matrix(transforms[:, :3, :3]))(queries).as_matrix()
    for axis in range(3):
        out[:, axis, 3] = np.interp(queries, times, transforms[:, axis, 3])
    return out
