"""``mf densify`` on a real simulated bag: original topics kept, depth topics added, no ROS needed."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from mf_core.completion import complete_classical
from mf_core.errors import InputError
from mf_core.lidar_support import lidar_support
from mf_ros import conversions as conv
from mf_ros.bags import bag_topics, read_messages
from mf_training.cli import main as mf_main
from mf_training.commands import densify
from mf_training.data.bag_samples import BagSamples

FRAMES = 3


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    bag = tmp_path_factory.mktemp("densify") / "sim"
    assert mf_main(["sim", "--out", str(bag), "--frames", str(FRAMES), "--seed", "9", "--width", "160",
                    "--height", "120"]) == 0
    return bag


def run_densify(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    densify.add_arguments(parser)
    return densify.run(parser.parse_args(list(argv)))


def test_densify_adds_depth_topics_and_keeps_the_originals(sim_bag, tmp_path, capsys):
    out = tmp_path / "dense"
    assert run_densify("--bag", str(sim_bag), "--out", str(out), "--mode", "classical", "--stride", "2") == 0
    assert f"{FRAMES} frames with depth" in capsys.readouterr().out
    before = {t.topic: (t.msgtype, t.count) for t in bag_topics(sim_bag)}
    after = {t.topic: (t.msgtype, t.count) for t in bag_topics(out)}
    assert {k: v for k, v in after.items() if k in before} == before
    assert after["/camera/depth/image"] == ("sensor_msgs/msg/Image", FRAMES)
    assert after["/camera/depth/points"] == ("sensor_msgs/msg/PointCloud2", FRAMES)
    assert after["/camera/depth/camera_info"] == ("sensor_msgs/msg/CameraInfo", FRAMES)

    samples = {s.stamp_ns: s for s in BagSamples(sim_bag)}  # the training reader's own projection
    depths = [m.msg for m in read_messages(out, ["/camera/depth/image", "/camera/depth/points"])]
    for msg in depths:
        sample = samples[conv.header_stamp_ns(msg)]
        if msg.__msgtype__.endswith("PointCloud2"):
            assert (msg.height, msg.width) == (60, 80)
            continue
        # Same sync, projection and completion as the training reader + the baseline called directly, NaN where
        # the LiDAR does not support it, as for the model's output.
        completed = complete_classical(sample.image, sample.sparse_depth, sample.camera)
        expected = np.where(lidar_support(completed, sample.sparse_depth), completed, 0.0)
        assert 0.5 < (expected > 0).mean() < 1.0  # the sky has no depth
        np.testing.assert_array_equal(np.nan_to_num(conv.image_to_depth(msg)), expected)
    # The original image stream is byte-identical after the copy.
    original = [conv.image_to_rgb(m.msg) for m in read_messages(sim_bag, ["/camera/image_raw"])]
    copied = [conv.image_to_rgb(m.msg) for m in read_messages(out, ["/camera/image_raw"])]
    assert all(np.array_equal(a, b) for a, b in zip(original, copied, strict=True))


def test_densify_with_a_model_and_a_tight_slop(sim_bag, tmp_path, capsys):
    out = tmp_path / "model"
    assert run_densify("--bag", str(sim_bag), "--out", str(out), "--model", "MF-XS", "--mode", "guided",
                       "--processing-width", "64", "--processing-height", "48", "--confidence") == 0
    assert {t.topic: t.count for t in bag_topics(out)}["/camera/depth/confidence"] == FRAMES
    # The sim's sweeps are 5 ms after the images: a 1 ms slop pairs nothing, and says so.
    with pytest.raises(InputError, match=r"no frame of .* got depth"):  # exit 2, not a silent success
        run_densify("--bag", str(sim_bag), "--out", str(tmp_path / "none"), "--mode", "classical", "--slop", "0.001")
    summary = capsys.readouterr().out
    assert "0 frames with depth" in summary and f"'no_lidar_in_slop': {FRAMES}" in summary


def test_densify_rejects_a_model_that_is_not_a_checkpoint(sim_bag, tmp_path):
    with pytest.raises(InputError, match="needs --model"):
        run_densify("--bag", str(sim_bag), "--out", str(tmp_path / "x"), "--mode", "guided", "--model", "")
    with pytest.raises(InputError, match="neither 'default'"):
        run_densify("--bag", str(sim_bag), "--out", str(tmp_path / "x"), "--mode", "guided", "--model", "/no/ckpt")


def test_densify_nearest_share_flag_overrides_the_model_and_is_checked(sim_bag, tmp_path):
    """--nearest-share (the node's nearest_share parameter): a bad value is an input error that writes
    nothing; a number is used as given."""
    from mf_ros.depth_pipeline import load_estimator

    out = tmp_path / "out"
    assert mf_main(["densify", "--bag", str(sim_bag), "--out", str(out), "--model", "default",
                    "--nearest-share", "lots"]) == 2
    assert not out.exists()
    assert load_estimator("default", "cpu", None, nearest_share="0.3").nearest_share == 0.3
    assert load_estimator("default", "cpu", None, nearest_share="none").nearest_share is None
    assert load_estimator("default", "cpu", None).nearest_share == "auto"  # the shipped model's own


def test_the_demo_preview_shows_the_depth_the_pipeline_published(sim_bag, tmp_path):
    from mf_training.commands.demo import first_published_depth
    from mf_training.viz import _title_bar, sample_panel

    out = tmp_path / "dense"
    assert run_densify("--bag", str(sim_bag), "--out", str(out), "--mode", "classical", "--max-range", "20") == 0
    published = first_published_depth(out)
    first = next(iter(read_messages(out, ["/camera/depth/image"]))).msg
    np.testing.assert_array_equal(published, conv.image_to_depth(first))
    assert np.isnan(published).any() and np.isfinite(published).any()  # beyond --max-range: NaN
    sample = next(iter(BagSamples(sim_bag)))
    with_published = sample_panel(sample.image, sample.sparse_depth, sample.gt_depth, published)
    without = sample_panel(sample.image, sample.sparse_depth, sample.gt_depth)
    assert with_published.shape[1] == without.shape[1] + published.shape[1]  # one more tile
    top = _title_bar("x", 8).shape[0]
    tile = with_published[top:top + published.shape[0], -published.shape[1]:]  # (H, W, 3) the published tile
    assert not tile[np.isnan(published)].any()  # no estimate: black
    assert tile[np.isfinite(published)].any(axis=-1).mean() > 0.99  # coloured elsewhere


@pytest.mark.parametrize("sweep_ms", [0, 90])
def test_densify_moves_each_sweep_through_a_fixed_frame(tmp_path, capsys, sweep_ms):
    """--fixed-frame: the same per-pair transforms as the training reader (BagSamples), and on a rolling sweep
    (sweep_ms) the same per-return ones, so the classical depth equals the completion of the moved sweep; the
    pair past the recorded /tf is dropped as no_tf."""
    from test_bag_samples import write_moving_bag

    bag = tmp_path / "moving"
    write_moving_bag(bag, lidar_offsets_ms=[7, 23, -17, 43, 45], sweep_ms=sweep_ms)
    out = tmp_path / "dense"
    assert run_densify("--bag", str(bag), "--out", str(out), "--mode", "classical", "--fixed-frame", "odom") == 0
    printed = capsys.readouterr().out
    assert "4 frames with depth" in printed and "'no_tf': 1" in printed
    samples = {s.stamp_ns: s for s in BagSamples(bag, fixed_frame="odom")}
    depths = [m.msg for m in read_messages(out, ["/camera/depth/image"])]
    assert len(depths) == 4
    for msg in depths:
        sample = samples[conv.header_stamp_ns(msg)]
        completed = complete_classical(sample.image, sample.sparse_depth, sample.camera)
        np.testing.assert_array_equal(np.nan_to_num(conv.image_to_depth(msg)),
                                      np.where(lidar_support(completed, sample.sparse_depth), completed, 0.0))
    with pytest.raises(InputError, match="'map'"):
        run_densify("--bag", str(bag), "--out", str(tmp_path / "x"), "--mode", "classical", "--fixed-frame", "map")
    with pytest.raises(InputError, match="no --extrinsic"):
        run_densify("--bag", str(bag), "--out", str(tmp_path / "y"), "--mode", "classical", "--fixed-frame", "odom",
                    "--extrinsic", "0 0 0 0 0 0 1")


def test_densify_reads_a_compressed_camera_stream(tmp_path, capsys):
    """A bag with image_transport's compressed stream only: its depth topics go beside the camera's
    (/camera/depth/*, not /camera/image_raw/depth), and equal those of the same bag recorded raw (PNG: lossless)."""
    from test_bag_samples import write_bag

    for name, image_format in (("raw", "raw"), ("png", "png")):
        write_bag(tmp_path / name, frames=3, image_format=image_format)
        assert run_densify("--bag", str(tmp_path / name), "--out", str(tmp_path / f"{name}_dense"), "--mode",
                           "classical") == 0
    assert "3 frames with depth" in capsys.readouterr().out
    depths = {name: [conv.image_to_depth(m.msg) for m in read_messages(tmp_path / f"{name}_dense",
                                                                        ["/camera/depth/image"])]
              for name in ("raw", "png")}
    assert len(depths["png"]) == 3
    for a, b in zip(depths["raw"], depths["png"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_densify_copies_a_vendor_message_topic(sim_bag, tmp_path, capsys):
    """A topic whose type ROS 2 Jazzy does not define (here a made-up LiDAR status message) is copied byte for
    byte with the definition the input bag records: drivers publish such messages beside the sensor topics."""
    from rosbags.typesys import get_types_from_msg

    from mf_ros.bags import BagWriter, bag_message_types

    vendor = get_types_from_msg("std_msgs/Header header\nacme_msgs/Return[] returns\n" + "=" * 80
                                + "\nMSG: acme_msgs/Return\nfloat32 range\nuint8 ring\n", "acme_msgs/msg/Status")
    bag = tmp_path / "with_vendor"
    with BagWriter(bag) as writer:
        for m in read_messages(sim_bag, decode=False):
            writer.write_raw(m.topic, m.raw, m.stamp_ns, m.msgtype)
        writer.register_types(vendor)
        status, ret = writer.typestore.types["acme_msgs/msg/Status"], writer.typestore.types["acme_msgs/msg/Return"]
        header = conv.make_header(7, "lidar")
        writer.write("/acme/status", status(header=header, returns=[ret(range=4.5, ring=3)]), 7)
    assert set(bag_message_types(bag)) == {"acme_msgs/msg/Status", "acme_msgs/msg/Return"}
    assert bag_message_types(sim_bag) == {}

    out = tmp_path / "dense"
    assert run_densify("--bag", str(bag), "--out", str(out), "--mode", "classical") == 0
    assert f"{FRAMES} frames with depth" in capsys.readouterr().out
    copied = list(read_messages(out, ["/acme/status"]))
    original = list(read_messages(bag, ["/acme/status"]))
    assert len(copied) == 1 and bytes(copied[0].raw) == bytes(original[0].raw)
    assert copied[0].msg.returns[0].ring == 3 and copied[0].msgtype == "acme_msgs/msg/Status"
