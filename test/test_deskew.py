"""Per-point LiDAR times as drivers write them, and moving each return from its own time (mf_ros.deskew)."""

from __future__ import annotations

import numpy as np
import pytest
from test_bag_samples import T0, timed_cloud

from mf_core.errors import InputError
from mf_core.transforms import from_ros_quaternion
from mf_ros.deskew import BIN_NS, SweepMotion, point_stamps_ns, point_time_field

OFFSETS_NS = np.array([0, 1_250_000, 49_999_000, 99_000_000, 37_000], dtype=np.int64)  # a 100 ms sweep
POINTS = np.arange(15, dtype=np.float32).reshape(5, 3) + 1.0


@pytest.mark.parametrize(("field", "dtype", "absolute", "unit", "shift_ns", "tolerance_ns"), [
    ("t", "u4", False, 1e-9, 0, 0),  # Ouster: uint32 ns from the header stamp
    ("time", "f4", False, 1.0, -100_000_000, 10),  # Velodyne: float32 s, stamped at the sweep's end (negative)
    ("timestamp", "f8", True, 1.0, 0, 1_000),  # Hesai / RoboSense: float64 s since the epoch
    ("timestamp", "f8", True, 1e-9, 0, 512),  # Livox: float64 ns since the epoch
])
def test_point_times_are_read_in_the_drivers_units(field, dtype, absolute, unit, shift_ns, tolerance_ns):
    offsets = OFFSETS_NS + shift_ns
    cloud = timed_cloud(POINTS, offsets, T0, field, dtype, absolute=absolute, unit=unit)
    stamps = point_stamps_ns(cloud, field)
    assert stamps.dtype == np.int64
    np.testing.assert_allclose(stamps - T0, offsets, atol=tolerance_ns, rtol=0)


def test_a_time_field_in_another_unit_is_refused_with_the_fix():
    cloud = timed_cloud(POINTS, OFFSETS_NS, T0, "time", "f4", unit=1e-3)  # milliseconds: 0-99 read as seconds
    with pytest.raises(InputError, match=r"read as s from the header stamp.*--point-time"):
        point_stamps_ns(cloud, "time")


def test_the_time_field_is_found_by_name_or_given():
    ouster = timed_cloud(POINTS, OFFSETS_NS, T0, "t", "u4")
    hesai = timed_cloud(POINTS, OFFSETS_NS, T0, "timestamp", "f8", absolute=True, unit=1.0)
    assert point_time_field(ouster, "auto") == "t" and point_time_field(hesai, "auto") == "timestamp"
    assert point_time_field(ouster, "none") is None and point_time_field(hesai, "timestamp") == "timestamp"
    from mf_ros.conversions import xyz_to_pointcloud2

    assert point_time_field(xyz_to_pointcloud2(POINTS, T0, "lidar"), "auto") is None  # nothing to deskew with
    with pytest.raises(InputError, match=r"no field 'time'.*\['x', 'y', 'z', 't'\]"):
        point_time_field(ouster, "time")


def test_each_return_moves_with_its_own_time_and_falls_back_outside_tf():
    """transforms_at: a slide along x at 1 m per 100 ms, known until 60 ms into the sweep; the returns after
    it keep the fallback (the sweep stamp's transform) and are counted."""

    def slide(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        T = np.stack([from_ros_quaternion((0, 0, 0, 1), ((t - T0) / 1e8, 0.0, 0.0)) for t in stamps])
        return T, stamps - T0 <= 60_000_000

    motion = SweepMotion(slide, slide(np.array([T0]))[0][0], "t")
    moved = motion.camera_points(timed_cloud(POINTS, OFFSETS_NS, T0, "t", "u4"))
    # Each return shifted by its time's slide, to within its 1 ms bin (10 mm of slide).
    known = OFFSETS_NS <= 60_000_000
    expected = POINTS[:, 0] + np.where(known, OFFSETS_NS / 1e8, 0.0)
    np.testing.assert_allclose(moved[:, 0], expected, atol=BIN_NS / 1e8 / 2 + 1e-6)
    np.testing.assert_array_equal(moved[:, 1:], POINTS[:, 1:])
    assert motion.fallback_points == int((~known).sum()) == 1


def test_the_geometry_benchmark_times_deskewing_against_moving_the_sweep_as_one():
    from mf_training.bench import geometry

    result = geometry._deskew_case(2000, 1)  # the case alone: run() pins the process to one core
    assert result["points"] == 2000 and result["median_ms"] > 0 and result["as_one_ms"] > 0
    assert result["ratio_to_as_one"] == pytest.approx(result["median_ms"] / result["as_one_ms"], rel=0.02)
