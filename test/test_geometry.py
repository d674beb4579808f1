"""Rigid transforms and camera geometry (projection, z-buffer, rays, backprojection)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mf_core.camera import PinholeCamera
from mf_core.errors import InputError
from mf_core.geometry import (
    backproject_depth,
    pixel_rays,
    points_to_depth_map,
    project_points,
    undistort_pixels,
)
from mf_core.transforms import (
    apply,
    compose,
    from_quaternion,
    from_ros_quaternion,
    invert,
    to_quaternion,
    validate,
)

CAM = PinholeCamera(width=100, height=80, fx=50.0, fy=40.0, cx=50.0, cy=40.0)
# A 90-degree lens with barrel distortion (rational model, all 8 coefficients); its model
# is monotonic out to radius 2.1, beyond the image corners (1.56), then folds back.
WIDE = PinholeCamera(320, 240, 160.0, 160.0, 161.0, 119.0, "rational_polynomial",
                     (-0.06, 0.004, 0.001, -0.0015, -0.0005, 0.02, 0.001, 0.0002))
# A 110-degree-wide fisheye (ROS "equidistant", OpenCV's fisheye model): its image circle, theta = 90
# degrees at 1.48 rad of distorted angle, passes inside the image corners (1.67 rad).
FISHEYE = PinholeCamera(320, 240, 120.0, 120.0, 159.5, 119.5, "equidistant", (-0.03, 0.005, -0.001, 0.0001))
I4 = np.eye(4)


# --- transforms -------------------------------------------------------------------------

def test_quaternion_rotation_and_ros_order():
    s = np.sqrt(0.5)
    T = from_quaternion((s, 0.0, 0.0, s), (1.0, 2.0, 3.0))  # 90 degrees about z, then shift
    np.testing.assert_allclose(apply(T, np.array([[1.0, 0.0, 0.0]])), [[1.0, 3.0, 3.0]], atol=1e-12)
    np.testing.assert_allclose(from_ros_quaternion((0.0, 0.0, s, s), (1.0, 2.0, 3.0)), T)
    np.testing.assert_allclose(from_quaternion((2 * s, 0.0, 0.0, 2 * s)), from_quaternion((s, 0, 0, s)))
    q, t = to_quaternion(T)
    np.testing.assert_allclose(q, (s, 0.0, 0.0, s), atol=1e-12)
    np.testing.assert_allclose(t, (1.0, 2.0, 3.0))


def test_invert_and_compose():
    rng = np.random.default_rng(1)
    T_ab = from_quaternion(rng.normal(size=4), rng.normal(size=3))
    T_bc = from_quaternion(rng.normal(size=4), rng.normal(size=3))
    p_c = rng.normal(size=(5, 3))
    np.testing.assert_allclose(compose(T_ab, invert(T_ab)), I4, atol=1e-12)
    np.testing.assert_allclose(invert(T_ab), np.linalg.inv(T_ab), atol=1e-12)
    np.testing.assert_allclose(apply(compose(T_ab, T_bc), p_c), apply(T_ab, apply(T_bc, p_c)), atol=1e-12)


def test_bad_transforms_are_input_errors():
    with pytest.raises(InputError, match="all zero"):
        from_quaternion((0.0, 0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="4 finite"):
        from_quaternion((1.0, np.nan, 0.0, 0.0))
    with pytest.raises(InputError, match="translation"):
        from_quaternion((1.0, 0.0, 0.0, 0.0), (1.0, 2.0))
    with pytest.raises(InputError, match="proper rotation"):
        validate(np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="proper rotation"):
        project_points(np.ones((1, 3)), np.diag([1.0, 1.0, -1.0, 1.0]), CAM)
    with pytest.raises(InputError, match="4x4"):
        validate(np.eye(3))


# --- projection -------------------------------------------------------------------------

def test_projection_matches_hand_computed_pixels():
    points = np.array([
        [0.0, 0.0, 2.0],    # principal point: u = 50, v = 40
        [1.0, 0.5, 2.0],    # u = 50 + 50 * 0.5 = 75, v = 40 + 40 * 0.25 = 50
        [-1.0, -1.0, 1.0],  # u = 0, v = 0: the image corner, kept
        [0.0, 0.0, -2.0],   # behind the camera
        [3.0, 0.0, 1.0],    # u = 200: right of the image
        [np.nan, 0.0, 1.0],
        [1.0, 0.0, 1.0],    # u = 100 = width: just outside
        [0.0, 0.0, np.inf],  # no finite depth
        [np.inf, 0.0, 1.0],
    ])
    u, v, z, index = project_points(points, I4, CAM)
    np.testing.assert_array_equal(index, [0, 1, 2])
    np.testing.assert_allclose(u, [50.0, 75.0, 0.0])
    np.testing.assert_allclose(v, [40.0, 50.0, 0.0])
    np.testing.assert_allclose(z, [2.0, 2.0, 1.0])


def test_projection_applies_the_extrinsic():
    T_cam_from_lidar = from_quaternion((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 1.0))  # lidar 1 m behind camera
    u, v, z, index = project_points(np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -0.5]]), T_cam_from_lidar, CAM)
    np.testing.assert_allclose(np.c_[u, v], [[50.0, 40.0], [50.0, 40.0]])
    np.testing.assert_array_equal(index, [0, 1])
    np.testing.assert_allclose(z, [2.0, 0.5])


def test_depth_map_nearest_pixel_rule_and_nearest_wins():
    points = np.array([
        [0.436, 0.0, 2.0],  # u = 60.9 -> column 61 (nearest pixel centre)
        [0.43, 0.0, 5.0],   # u = 54.3 -> column 54
        [0.215, 0.0, 5.0],  # u = 52.15 -> column 52
        [0.185, 0.0, 4.0],  # u = 51.85 -> column 52, nearer: wins
        [0.147, 0.0, 6.0],  # u = 51.225 -> column 51
        [0.208, 0.0, 8.0],  # u = 51.3 -> column 51, farther: loses
    ])
    depth = points_to_depth_map(points, I4, CAM)
    assert depth.shape == (80, 100) and depth.dtype == np.float32
    assert set(np.flatnonzero(depth[40])) == {51, 52, 54, 61} and np.count_nonzero(depth) == 4
    np.testing.assert_array_equal(depth[40, [51, 52, 54, 61]], [6.0, 4.0, 5.0, 2.0])
    # Order of the input does not matter.
    np.testing.assert_array_equal(points_to_depth_map(points[::-1], I4, CAM), depth)


def test_depth_map_of_any_point_layout_matches_a_reference_z_buffer():
    rng = np.random.default_rng(5)
    points = np.c_[rng.uniform(-1.5, 1.5, (4000, 2)), np.ones(4000)] * rng.uniform(0.5, 9.0, (4000, 1))  # (N, 3)
    u, v, z, _ = project_points(points, I4, CAM)
    reference = np.full(CAM.height * CAM.width, np.inf)
    np.minimum.at(reference, np.floor(v + 0.5).astype(int) * CAM.width + np.floor(u + 0.5).astype(int), z)
    reference = np.where(np.isfinite(reference), reference, 0.0).reshape(CAM.height, CAM.width)
    depth = points_to_depth_map(points, I4, CAM)
    assert 1000 < np.count_nonzero(depth) < u.size  # many pixels, and many collisions among them
    np.testing.assert_array_equal(depth, reference.astype(np.float32))
    cloud = np.c_[points, rng.random(4000)].astype(np.float32)  # (N, 4) x y z intensity, as clouds come
    np.testing.assert_allclose(points_to_depth_map(cloud[:, :3], I4, CAM), depth, rtol=1e-6)
    np.testing.assert_array_equal(points_to_depth_map(np.round(points).astype(np.int32), I4, CAM),
                                  points_to_depth_map(np.round(points), I4, CAM))


def test_backprojected_depth_projects_back_to_its_own_pixels():
    rng = np.random.default_rng(3)
    depth = np.where(rng.random((80, 100)) < 0.2, rng.uniform(1.0, 30.0, (80, 100)), 0.0).astype(np.float32)
    points = backproject_depth(depth, CAM)[depth > 0]  # (N, 3)
    np.testing.assert_allclose(points_to_depth_map(points, I4, CAM), depth, rtol=1e-6)


def test_empty_and_malformed_points():
    assert not points_to_depth_map(np.zeros((0, 3)), I4, CAM).any()
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        project_points(np.zeros((4, 2)), I4, CAM)


def test_bad_camera_is_input_error():
    with pytest.raises(InputError, match="focal length"):
        PinholeCamera(100, 80, 0.0, 0.0, 50.0, 40.0)
    with pytest.raises(InputError, match="PinholeCamera"):
        points_to_depth_map(np.ones((1, 3)), I4, {"fx": 1.0})
    with pytest.raises(InputError, match="camera is 80x100"):
        backproject_depth(np.ones((40, 50), np.float32), CAM)


# --- distortion -------------------------------------------------------------------------

def test_forward_distortion_matches_opencv():
    rng = np.random.default_rng(2)
    points = np.c_[rng.uniform(-0.8, 0.8, (500, 2)), np.ones(500)] * rng.uniform(1, 20, (500, 1))
    u, v, _, index = project_points(points, I4, WIDE)
    assert index.size > 300
    expected = cv2.projectPoints(points[index], np.zeros(3), np.zeros(3), WIDE.K, np.array(WIDE.distortion))[0]
    np.testing.assert_allclose(np.c_[u, v], expected[:, 0], atol=1e-9)


def test_points_far_outside_the_view_do_not_wrap_in():
    # x/z = 3.3 is far outside this lens's field of view, but the polynomial folds it back:
    naive = cv2.projectPoints(np.array([[3.3, 0.0, 1.0]]), np.zeros(3), np.zeros(3), WIDE.K, np.array(WIDE.distortion))
    assert 0 <= naive[0][0, 0, 0] < WIDE.width  # the plain model puts it inside the image
    u, _, _, _ = project_points(np.array([[3.3, 0.0, 1.0]]), I4, WIDE)
    assert u.size == 0


def test_distorted_round_trip_recovers_points():
    rng = np.random.default_rng(3)
    n = 3000
    pixels = np.c_[rng.uniform(-0.5, WIDE.width - 0.5, n), rng.uniform(-0.5, WIDE.height - 0.5, n)]  # (n, 2)
    xy = undistort_pixels(pixels, WIDE)  # (n, 2)
    z = rng.uniform(0.5, 30.0, n)
    points = np.c_[xy * z[:, None], z]  # (n, 3) whose distorted projections are ``pixels``
    u, v, zp, index = project_points(points, I4, WIDE)
    np.testing.assert_array_equal(index, np.arange(n))
    np.testing.assert_allclose(np.c_[u, v], pixels, atol=1e-6)
    np.testing.assert_allclose(zp, z)

    depth = points_to_depth_map(points, I4, WIDE)
    cloud = backproject_depth(depth, WIDE)  # (H, W, 3)
    valid = depth > 0
    assert np.isnan(cloud[~valid]).all() and not np.isnan(cloud[valid]).any()
    # Each valid pixel holds the nearest point that landed in it ...
    row, col = np.floor(pixels[:, 1] + 0.5).astype(int), np.floor(pixels[:, 0] + 0.5).astype(int)  # nearest centre
    nearest = np.full(depth.shape, np.inf)
    np.minimum.at(nearest, (row, col), z)
    np.testing.assert_allclose(depth[valid], nearest[valid], rtol=1e-6)
    assert valid.sum() == np.isfinite(nearest).sum()
    # ... and backprojects onto it to within half a pixel of the nearest-centre rule.
    winner = z == nearest[row, col]
    recovered = cloud[row[winner], col[winner]]  # (K, 3)
    lateral = np.linalg.norm(recovered[:, :2] - points[winner, :2], axis=1)
    # Half a pixel diagonal, divided by the smallest radial magnification in the image (0.65 at the corners).
    footprint = 0.5 * np.hypot(1, 1) * z[winner] / WIDE.fx / 0.63
    assert (lateral <= footprint).all()
    # Reprojecting the backprojected points lands on the pixel centres (undistortion inverts distortion).
    again = cv2.projectPoints(recovered.astype(np.float64), np.zeros(3), np.zeros(3), WIDE.K,
                              np.array(WIDE.distortion))[0][:, 0]
    np.testing.assert_allclose(again, np.c_[col[winner], row[winner]], atol=1e-3)


def _fisheye_opencv(points: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """(N, 2) pixels of ``points`` (N, 3) by cv2.fisheye.projectPoints (no culling)."""
    projected, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K,
                                             np.array(camera.distortion))
    return projected[:, 0]


def test_fisheye_projection_matches_opencv_and_round_trips():
    rng = np.random.default_rng(4)
    theta, phi = rng.uniform(0.0, np.radians(80), 2000), rng.uniform(0, 2 * np.pi, 2000)
    rays = np.c_[np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]  # (N, 3) unit
    points = rays * rng.uniform(0.5, 30.0, (2000, 1))
    u, v, z, index = project_points(points, I4, FISHEYE)
    assert 800 < index.size < 2000  # the wide rays that land past the image edges are dropped
    np.testing.assert_allclose(np.c_[u, v], _fisheye_opencv(points[index], FISHEYE), atol=1e-9)
    np.testing.assert_allclose(z, points[index, 2])
    # Pixels inside the image circle undistort to rays that project back onto them; the corners have none.
    pixels = np.c_[rng.uniform(-0.5, FISHEYE.width - 0.5, 3000), rng.uniform(-0.5, FISHEYE.height - 0.5, 3000)]
    xy = undistort_pixels(pixels, FISHEYE)  # (n, 2)
    inside = np.isfinite(xy).all(1)
    theta_d = np.hypot(*((pixels - [FISHEYE.cx, FISHEYE.cy]) / FISHEYE.fx).T)  # (n,) distorted angle
    assert inside[theta_d < 1.48].all() and not inside[theta_d > 1.49].any()  # the circle: theta_d(90 deg) 1.4846
    assert 0.02 < (~inside).mean() < 0.2
    depth = rng.uniform(0.5, 30.0, inside.sum())
    back = np.c_[xy[inside] * depth[:, None], depth]
    u, v, _, index = project_points(back, I4, FISHEYE)
    np.testing.assert_array_equal(index, np.arange(inside.sum()))
    np.testing.assert_allclose(np.c_[u, v], pixels[inside], atol=1e-6)
    cloud = backproject_depth(np.full((FISHEYE.height, FISHEYE.width), 2.0, np.float32), FISHEYE)
    assert np.isnan(cloud[0, 0]).all() and np.isnan(cloud[-1, -1]).all()  # corners: outside the circle
    assert np.isfinite(cloud[FISHEYE.height // 2]).all()  # the middle row reaches both edges
    again = _fisheye_opencv(cloud[120, ::40].astype(np.float64), FISHEYE)
    np.testing.assert_allclose(again, np.c_[np.arange(0, 320, 40), np.full(8, 120)], atol=1e-3)


def test_fisheye_zero_coefficients_are_the_ideal_equidistant_lens_and_folds_are_culled():
    ideal = PinholeCamera(200, 200, 100.0, 100.0, 99.5, 99.5, "equidistant", (0.0, 0.0, 0.0, 0.0))
    assert ideal.is_distorted  # r_d = theta is not a pinhole
    u, v, _, _ = project_points(np.array([[np.tan(0.6), 0.0, 1.0]]), I4, ideal)
    np.testing.assert_allclose([u[0], v[0]], [99.5 + 100.0 * 0.6, 99.5], atol=1e-9)  # r_d = theta, not tan
    # k1 = -0.3: theta_d(theta) peaks at 61 degrees and folds back; a ray at 85 degrees would land inside.
    folding = PinholeCamera(200, 200, 100.0, 100.0, 99.5, 99.5, "equidistant", (-0.3, 0.0, 0.0, 0.0))
    wide = np.array([[np.tan(np.radians(85)), 0.0, 1.0]])
    assert 0 <= _fisheye_opencv(wide, folding)[0, 0] < folding.width  # the plain model wraps it in
    assert project_points(wide, I4, folding)[0].size == 0
    assert project_points(np.array([[np.tan(np.radians(55)), 0.0, 1.0]]), I4, folding)[0].size == 1


# --- rays and backprojection -------------------------------------------------------------

def test_pixel_rays_pinhole_and_cache():
    rays = pixel_rays(CAM)
    assert rays.shape == (80, 100, 3) and rays.dtype == np.float32
    np.testing.assert_allclose(rays[40, 50], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(rays[0, 0], [-1.0, -1.0, 1.0])
    assert pixel_rays(CAM) is rays and not rays.flags.writeable


def test_backproject_stride_and_output_buffer():
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 9.0, (80, 100)).astype(np.float32)
    depth[3, 6] = 0.0
    full = backproject_depth(depth, CAM)
    buffer = np.full((27, 34, 4), 7.0, np.float32)  # x, y, z and one more field, every third pixel
    assert backproject_depth(depth, CAM, stride=3, out=buffer) is buffer
    np.testing.assert_array_equal(buffer[..., :3], full[::3, ::3])
    assert np.isnan(buffer[1, 2, :3]).all() and (buffer[..., 3] == 7.0).all()  # other fields untouched
    with pytest.raises(InputError, match="out must be float32"):
        backproject_depth(depth, CAM, stride=3, out=np.empty((27, 34, 2), np.float32))
    with pytest.raises(InputError, match="stride"):
        backproject_depth(depth, CAM, stride=0)


def test_backproject_invalid_depth_is_nan():
    depth = np.full((80, 100), 2.0, np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = 0.0, np.nan, np.inf, -1.0
    cloud = backproject_depth(depth, CAM)
    assert cloud.shape == (80, 100, 3) and cloud.dtype == np.float32
    assert np.isnan(cloud[0, :4]).all() and np.isfinite(cloud[0, 4:]).all()
    np.testing.assert_allclose(cloud[40, 75], [1.0, 0.0, 2.0])
    # Backprojection then projection is the identity on pixel centres.
    points = cloud[1:].reshape(-1, 3)
    u, v, _, _ = project_points(points, I4, CAM)
    np.testing.assert_allclose(np.c_[u, v].reshape(79, 100, 2)[..., 0], np.tile(np.arange(100.0), (79, 1)),
                               atol=1e-4)
