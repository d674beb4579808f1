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
    """``T_b_from_a`` of a rigid transform: rotation R^T, translation -R^T t (exact, no general inverse)."""
    R = T_a_from_b[:3, :3]
    t = T_a_from_b[:3, 3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ t
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


def interpolate(T_start: np.ndarray, T_end: np.ndarray, fraction: float) -> np.ndarray:
    """The rigid transform ``fraction`` of the way from ``T_start`` (0) to ``T_end`` (1): the translation
    linearly, the rotation along the shorter great arc (slerp), as tf2 interpolates between two samples."""
    from scipy.spatial.transform import Rotation, Slerp

    rotations = Rotation.from_matrix(np.stack([T_start[:3, :3], T_end[:3, :3]]))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], rotations)(fraction).as_matrix()
    out[:3, 3] = (1.0 - fraction) * T_start[:3, 3] + fraction * T_end[:3, 3]
    return out
