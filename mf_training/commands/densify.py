"""``mf densify``: the depth node's pipeline on a recorded bag, without a ROS install.

Reads IN, pairs frames with the same streaming sync as ``depth_node`` (camera_info at or
before the image, nearest LiDAR sweep within ``--slop``), runs
:class:`mf_ros.depth_pipeline.DepthPipeline` on every pair (no frames are skipped for
speed, unlike the live node) and writes OUT: every original topic plus
``<ns>/image`` (32FC1 metres), ``<ns>/camera_info``, ``<ns>/points`` (organized XYZRGB)
and, with ``--confidence``, ``<ns>/confidence``; ``<ns>`` defaults to the image topic's
namespace + ``/depth``. The LiDAR extrinsic comes from the bag's /tf_static or ``--extrinsic``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from mf_core.errors import InputError

OUTPUTS = ("image", "camera_info", "points", "confidence")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mf_ros.options import DEPTH_NODE_OPTIONS, add_flags
    from mf_training.commands.export import add_camera_info_file_argument, add_motion_arguments

    parser.add_argument("--bag", required=True, help="input rosbag2 (directory, .mcap or .db3)")
    parser.add_argument("--out", required=True, help="output bag directory (MCAP)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
    # The settings shared with depth_node: same names, defaults and checks as its parameters.
    add_flags(parser, DEPTH_NODE_OPTIONS, ("model", "onnx_model", "nearest_share", "mode", "device", "steps", "seed",
                                           "processing_width", "processing_height", "slop", "extrinsic", "max_range",
                                           "stride", "confidence"))
    parser.add_argument("--image-topic", default=None, help="default: the bag's only Image topic")
    parser.add_argument("--camera-info-topic", default=None)
    add_camera_info_file_argument(parser)
    parser.add_argument("--points-topic", default=None)
    parser.add_argument("--output-namespace", default=None, help="depth topics' namespace (default <image ns>/depth)")
    add_motion_arguments(parser)


def _pipeline(args: argparse.Namespace):
    from mf_ros.conversions import rosbags_messages
    from mf_ros.depth_pipeline import DepthPipeline, PipelineOptions, load_estimator
    from mf_ros.options import processing_size

    estimator = None
    if args.mode != "classical":
        if not args.model:
            raise InputError(f"--mode {args.mode} needs --model (a checkpoint folder); or use --mode classical")
        estimator = load_estimator(args.model, args.device, processing_size(args.processing_width,
                                                                            args.processing_height), args.onnx_model,
                                   args.nearest_share)
    options = PipelineOptions(args.mode, args.steps, args.seed, args.max_range, args.stride, args.confidence)
    return DepthPipeline(options, estimator, rosbags_messages())


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from mf_ros.bags import ROS1_SUFFIX, BagWriter, bag_message_types, bag_topics, read_messages, ros1_conversion
    from mf_ros.calibration import read_camera_calibration
    from mf_ros.conversions import camera_to_camera_info, header_stamp_ns, rosbags_messages
    from mf_ros.depth_pipeline import FrameError
    from mf_ros.deskew import SweepMotion, check_point_time, sweep_motion, without_tf_note
    from mf_ros.extrinsics import TfTimeline, check_fixed_frame, parse_extrinsic, static_transform
    from mf_ros.sync import NO_TF, StampSync, slop_to_ns
    from mf_training.data.bag_samples import camera_topic, read_tf, select_topics

    if Path(args.bag).suffix == ROS1_SUFFIX:  # the output copies every input message as it is: CDR only
        raise InputError(f"{args.bag} is a ROS 1 bag: mf densify writes a ROS 2 bag with every input message "
                         f"copied unchanged, which ROS 1 messages cannot be; convert it first: "
                         f"{ros1_conversion(args.bag)}")
    listing = bag_topics(args.bag)
    types = {t.topic: t.msgtype for t in listing}
    topics = select_topics(types, args.image_topic, args.camera_info_topic, args.points_topic,
                           camera_info_file=args.camera_info_file is not None)
    file_camera = None if args.camera_info_file is None else read_camera_calibration(args.camera_info_file)
    ns = (args.output_namespace or camera_topic(topics.image).rsplit("/", 1)[0] + "/depth").rstrip("/")
    clash = [f"{ns}/{k}" for k in OUTPUTS if f"{ns}/{k}" in types]
    if clash:
        raise InputError(f"the bag already has {clash}; choose another --output-namespace")
    given = parse_extrinsic(args.extrinsic)
    check_fixed_frame(args.fixed_frame, given)
    check_point_time(args.point_time, args.fixed_frame)
    edges, moving = read_tf(args.bag, types, moving_tf=args.fixed_frame is not None)
    pipeline = _pipeline(args)
    timeline = TfTimeline(edges, moving) if args.fixed_frame else None
    sync = StampSync(slop_to_ns(args.slop))
    errors: Counter[str] = Counter()
    first_errors: dict[str, str] = {}  # kind -> the first frame's message
    times: list[float] = []
    points_without_tf = 0  # returns measured outside the recorded /tf: moved with their sweep's stamp
    extrinsics: dict[tuple[str, str], np.ndarray] = {}

    def extrinsic(camera_frame: str, lidar_frame: str) -> np.ndarray:
        if given is not None:
            return given
        if (camera_frame, lidar_frame) not in extrinsics:
            extrinsics[camera_frame, lidar_frame] = static_transform(edges, camera_frame, lidar_frame)
        return extrinsics[camera_frame, lidar_frame]

    def moved(image, cloud) -> np.ndarray | SweepMotion:  # through the fixed frame: from each return's time
        camera, image_stamp = image.header.frame_id, header_stamp_ns(image)
        try:
            sweep = timeline.across(camera, image_stamp, cloud.header.frame_id, header_stamp_ns(cloud),
                                    args.fixed_frame)
        except InputError as err:
            raise FrameError(NO_TF, str(err)) from err
        try:
            return sweep_motion(cloud, timeline, camera, image_stamp, args.fixed_frame, args.point_time, sweep)
        except InputError as err:
            raise FrameError("bad_cloud", f"LiDAR cloud skipped: {err}") from err

    def densify(frames, log_ns: int, bag: BagWriter) -> None:
        nonlocal points_without_tf
        for frame in frames:
            image, cloud = frame.image.payload, frame.cloud.payload
            try:
                T = extrinsic(image.header.frame_id, cloud.header.frame_id) if timeline is None else \
                    moved(image, cloud)
                out = pipeline.process(image, frame.info.payload, cloud, T)
                points_without_tf += T.fallback_points if isinstance(T, SweepMotion) else 0
            except FrameError as err:
                errors[err.kind] += 1
                first_errors.setdefault(err.kind, str(err))
                continue
            times.append(sum(out.timings.values()))
            for kind, msg in zip(OUTPUTS, (out.depth, out.camera_info, out.points, out.confidence), strict=True):
                if msg is not None:
                    bag.write(f"{ns}/{kind}", msg, log_ns)

    add = {topics.image: sync.add_image, topics.points: sync.add_cloud} | (
        {topics.camera_info: sync.add_info} if topics.camera_info else {})
    factory = rosbags_messages()  # builds the calibration file's camera_info messages
    with BagWriter(args.out, overwrite=args.overwrite) as bag:
        bag.register_types(bag_message_types(args.bag))  # vendor messages are copied too
        last_ns = 0
        # Original topics are copied as CDR bytes: no re-encoding, and only the synced inputs are decoded.
        messages = read_messages(args.bag, decode=list(add))
        for m in tqdm(messages, total=sum(t.count for t in listing), unit="msg", desc="densify"):
            bag.write_raw(m.topic, m.raw, m.stamp_ns, m.msgtype)
            last_ns = m.stamp_ns
            if m.topic == topics.image and file_camera is not None:  # the calibration file as this image's info
                info = camera_to_camera_info(file_camera, header_stamp_ns(m.msg), m.msg.header.frame_id, factory)
                densify(sync.add_info(header_stamp_ns(m.msg), info), m.stamp_ns, bag)
            if m.topic in add:
                densify(add[m.topic](header_stamp_ns(m.msg), m.msg), m.stamp_ns, bag)
        densify(sync.flush(), last_ns, bag)
    drops = {kind: n for kind, n in (dict(sync.drops) | dict(errors)).items() if n}
    mean = f"{np.mean(times):.1f} ms/frame" if times else "-"
    print(f"densify: {len(times)} frames with depth -> {args.out} ({ns}/*); dropped {sum(drops.values())} "
          f"{drops or ''}; mean pipeline latency {mean}")
    if points_without_tf:
        print(without_tf_note(points_without_tf))
    if not times:
        reasons = "".join(f"; {kind}: {message}" for kind, message in first_errors.items())
        raise InputError(f"no frame of {args.bag} got depth (drops by reason above{reasons}); {args.out} holds only "
                         "the copied input: check the topics, --slop and the extrinsic")
    return 0
