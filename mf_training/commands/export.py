"""``mf export --bag BAG --out DIR``: write a bag's synchronized camera/LiDAR samples as a sample folder."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from mf_core.errors import InputError
from mf_ros.deskew import AUTO, POINT_TIME_FIELDS, without_tf_note
from mf_ros.extrinsics import parse_extrinsic
from mf_ros.sync import DEFAULT_SLOP_S
from mf_training.data.bag_samples import BagSamples
from mf_training.data.sample_folder import SampleFolderWriter


def add_motion_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that move LiDAR sweeps with the robot (``mf export``, ``inspect``, ``densify``)."""
    parser.add_argument("--fixed-frame", metavar="FRAME",
                        help="a frame that stays put while the robot moves (odom, map): each LiDAR sweep is moved "
                             "to its image's stamp through it with the bag's /tf (default: one static extrinsic)")
    parser.add_argument("--point-time", metavar="FIELD", default=AUTO,
                        help="with --fixed-frame: the clouds' per-point time field, each return moved from its own "
                             f"time (deskewing); 'auto' (default): the first of {', '.join(POINT_TIME_FIELDS)} the "
                             "cloud has; 'none': the sweep moves as one")


def add_camera_info_file_argument(parser: argparse.ArgumentParser) -> None:
    """``--camera-info FILE`` (``mf export``, ``inspect``, ``densify``): a bag recorded without camera_info."""
    parser.add_argument("--camera-info", metavar="FILE", dest="camera_info_file",
                        help="camera calibration YAML (camera_calibration's ost.yaml, a driver's camera_info_url "
                             "file) for a bag recorded without camera_info")


def add_bag_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by every command that reads samples from a bag."""
    parser.add_argument("--slop", type=float, default=DEFAULT_SLOP_S,
                        help="largest |t_lidar - t_image| in seconds for a pair (default %(default)s)")
    parser.add_argument("--extrinsic", metavar="'x y z qx qy qz qw' | 16 numbers",
                        help="T_camera_from_lidar when the bag has no /tf_static (7 numbers or a row-major 4x4)")
    add_motion_arguments(parser)
    parser.add_argument("--image-topic", help="camera image topic (default: the one sensor_msgs/Image)")
    parser.add_argument("--camera-info-topic", help="camera_info topic (default: the one beside the image)")
    add_camera_info_file_argument(parser)
    parser.add_argument("--points-topic", help="LiDAR PointCloud2 topic (default: the one PointCloud2)")
    parser.add_argument("--gt-topic", help="dense ground-truth 32FC1 depth topic (default: /camera/depth/ground_truth "
                        "when present)")


def bag_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :class:`BagSamples` from the flags of :func:`add_bag_arguments`."""
    return {
        "slop_s": args.slop,
        "extrinsic": parse_extrinsic(args.extrinsic),
        "image_topic": args.image_topic,
        "camera_info_topic": args.camera_info_topic,
        "points_topic": args.points_topic,
        "gt_topic": args.gt_topic,
        "fixed_frame": args.fixed_frame,
        "point_time": args.point_time,
        "camera_info_file": args.camera_info_file,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", required=True, help="rosbag2 directory, .mcap or .db3 file")
    parser.add_argument("--out", required=True, help="sample folder to write (created if needed)")
    parser.add_argument("--image-format", choices=("png", "jpg"), default="png",
                        help="camera image file format (png is lossless; default %(default)s)")
    add_bag_arguments(parser)


def run(args: argparse.Namespace) -> int:
    source = BagSamples(args.bag, **bag_options(args))
    writer = SampleFolderWriter(args.out, image_format=args.image_format)
    without_lidar = 0
    for sample in tqdm(source, total=len(source), desc="export", unit="frame"):
        if not sample.valid_mask.any():  # an all-NaN sweep, or none of it in view: mf densify skips these too
            without_lidar += 1
            continue
        writer.write(sample)
    print(f"{source.sync.stats.summary()}\n{writer.summary()}")
    if source.points_without_tf:
        print(without_tf_note(source.points_without_tf))
    if without_lidar:
        print(f"skipped {without_lidar} frame(s) with no LiDAR point in the image (all-NaN sweep, or the "
              "extrinsic points the LiDAR away from the camera)")
    if not writer.written:
        raise InputError(f"no sample was written from {args.bag}: no frame paired (see the counts above); check "
                         "the topics, --slop and the extrinsic (--extrinsic or /tf_static)")
    return 0
