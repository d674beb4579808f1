"""Camera / camera_info / LiDAR stamp pairing."""

from __future__ import annotations

import numpy as np
import pytest

from mf_core.errors import InputError
from mf_ros.sync import BAD_STAMP, NO_CAMERA_INFO, NO_LIDAR_IN_SLOP, StampSync, pair_stamps, slop_to_ns

MS = 1_000_000


def test_pairs_nearest_sweep_and_latest_info():
    images = np.array([100, 133, 166, 200]) * MS
    infos = np.array([100, 166]) * MS
    lidars = np.array([95, 150, 205]) * MS
    result = pair_stamps(images, infos, lidars, slop_ns=50 * MS)
    assert result.image_index.tolist() == [0, 1, 2, 3]
    assert result.info_index.tolist() == [0, 0, 1, 1]
    # 133 is 17 ms from 150 and 38 ms from 95; 166 is 16 ms from 150.
    assert result.lidar_index.tolist() == [0, 1, 1, 2]
    assert result.lidar_offset_ns.tolist() == [-5 * MS, 17 * MS, -16 * MS, 5 * MS]
    assert result.stats.pairs == 4 and result.stats.skipped_total == 0


def test_slop_boundary_is_inclusive_and_drops_are_counted():
    images = np.array([1000, 2000, 3000]) * MS
    lidars = np.array([1050, 2051]) * MS  # exactly 50 ms; 51 ms; 949 ms
    result = pair_stamps(images, [0], lidars, slop_ns=50 * MS)
    assert result.image_index.tolist() == [0]
    assert result.stats.pairs == 1
    assert result.stats.skipped[NO_LIDAR_IN_SLOP] == 2
    assert "1/3 images paired" in result.stats.summary()


def test_images_before_the_first_camera_info_are_skipped():
    images = np.array([10, 20, 30]) * MS
    result = pair_stamps(images, [20 * MS], images, slop_ns=0)
    assert result.image_index.tolist() == [1, 2]
    assert result.stats.skipped == {NO_CAMERA_INFO: 1, NO_LIDAR_IN_SLOP: 0}


def test_unsorted_input_indexes_the_callers_arrays():
    rng = np.random.default_rng(0)
    images = rng.permutation(np.arange(50) * 100 * MS)
    lidars = rng.permutation(np.arange(0, 5000, 90) * MS + 3 * MS)
    result = pair_stamps(images, [0], lidars, slop_ns=45 * MS)
    # Brute force reference on the same data.
    diff = np.abs(lidars[None, :] - images[:, None])  # (N, M)
    ok = diff.min(axis=1) <= 45 * MS
    assert set(result.image_index.tolist()) == set(np.flatnonzero(ok).tolist())
    got = diff[result.image_index, result.lidar_index]
    assert np.array_equal(got, diff[result.image_index].min(axis=1))
    assert np.all(np.diff(images[result.image_index]) > 0)


def test_no_lidar_at_all_skips_everything():
    result = pair_stamps([1, 2], [0], [], slop_ns=MS)
    assert result.stats.pairs == 0 and result.stats.skipped[NO_LIDAR_IN_SLOP] == 2


def test_bad_slop_is_input_error():
    with pytest.raises(InputError, match="--slop"):
        slop_to_ns(-0.1)
    assert slop_to_ns(0.05) == 50 * MS


# ----------------------------------------------------------------------------- streaming (StampSync)

HOUR = 3600 * 1000 * MS


def _stream(n: int, start_ms: int = 1000, lidar_offset_ms: int = 10, lost_sweeps=()) -> list[tuple[str, int]]:
    """(kind, stamp) in arrival order for ``n`` 10 Hz frames: camera_info, image, then the sweep."""
    events = []
    for k in range(n):
        t = (start_ms + 100 * k) * MS
        events += [("info", t), ("image", t)]
        if k not in lost_sweeps:
            events.append(("cloud", t + lidar_offset_ms * MS))
    return events


def _run(events, slop_ms: int = 50, queue_size: int = 5) -> tuple[list[int], dict]:
    """Feed events to a StampSync; image stamps of the frames it paired, and its drop counts."""
    sync = StampSync(slop_ms * MS, queue_size=queue_size)
    add = {"image": sync.add_image, "info": sync.add_info, "cloud": sync.add_cloud}
    frames = [f for kind, stamp in events for f in add[kind](stamp, (kind, stamp))] + sync.flush()
    for f in frames:  # a frame's payloads are the messages it was built from
        assert f.image.payload == ("image", f.image.stamp_ns) and f.cloud.payload[0] == "cloud"
        assert abs(f.cloud.stamp_ns - f.image.stamp_ns) <= slop_ms * MS and f.info.stamp_ns <= f.image.stamp_ns
    return [f.image.stamp_ns for f in frames], {k: v for k, v in sync.drops.items() if v}


def test_stream_pairs_every_frame_in_stamp_order():
    stamps, drops = _run(_stream(30))
    assert stamps == [(1000 + 100 * k) * MS for k in range(30)] and drops == {}


def test_stream_and_bag_pairing_agree_on_lost_sweeps_and_late_camera_info():
    rng = np.random.default_rng(0)
    lost = set(rng.choice(40, 12, replace=False).tolist())
    events = [e for e in _stream(40, lidar_offset_ms=30, lost_sweeps=lost) if not (e[0] == "info" and e[1] < 1300 * MS)]
    stamps, drops = _run(events)
    by_kind = {kind: [s for k, s in events if k == kind] for kind in ("image", "info", "cloud")}
    offline = pair_stamps(by_kind["image"], by_kind["info"], by_kind["cloud"], 50 * MS)
    assert stamps == np.asarray(by_kind["image"])[offline.image_index].tolist()
    assert drops == {k: v for k, v in offline.stats.skipped.items() if v}
    # A lost sweep is counted as a lost sweep: the camera_infos of waiting images are kept.
    assert drops[NO_LIDAR_IN_SLOP] > 0 and drops[NO_CAMERA_INFO] == 3


@pytest.mark.parametrize("kind, offset", [("cloud", HOUR), ("cloud", -HOUR), ("image", HOUR), ("image", -HOUR),
                                          ("info", HOUR), ("info", -HOUR)])
def test_one_bad_stamp_costs_only_itself(kind, offset):
    events = _stream(30)
    events.insert(45, (kind, events[45][1] + offset))  # one message an hour off, mid-stream
    stamps, drops = _run(events)
    assert len(stamps) == 30 and drops == {BAD_STAMP: 1}


def test_clock_jump_back_resumes_pairing_at_once():
    events = _stream(30, start_ms=HOUR // MS) + _stream(30, start_ms=1000)  # a looping bag / reset clock
    stamps, drops = _run(events)
    assert stamps[-30:] == [(1000 + 100 * k) * MS for k in range(30)]  # every frame of the new timeline
    assert len(stamps) + sum(drops.values()) == 60 and BAD_STAMP not in drops


def test_a_paused_sensor_costs_latency_not_frames():
    events = _stream(10) + _stream(10, start_ms=60_000)  # a 59 s gap in every stream
    stamps, drops = _run(events)
    assert len(stamps) == 20 and drops == {}


def test_full_queue_decides_the_oldest_image_and_memory_stays_bounded():
    events = [e for e in _stream(200) if e[0] != "cloud"]  # the LiDAR is dead
    sync = StampSync(50 * MS, queue_size=5)
    for kind, stamp in events:
        (sync.add_image if kind == "image" else sync.add_info)(stamp, None)
    assert sync.drops[NO_LIDAR_IN_SLOP] == 195
    assert len(sync._infos) <= 24 and len(sync._images) == 5


def test_stream_sync_rejects_bad_settings():
    for kwargs in ({"slop_ns": -1}, {"slop_ns": 0, "queue_size": 0}, {"slop_ns": 10, "jump_ns": 10}):
        with pytest.raises(InputError):
            StampSync(**kwargs)
