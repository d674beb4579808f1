"""Generated frames -> rosbag2 MCAP through mf_ros (conversions build the messages, BagWriter writes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mf_core.camera import PinholeCamera
from mf_ros import conversions as conv
from mf_ros.bags import BagWriter
from mf_ros.topics import CAMERA_INFO_TOPIC, GT_TOPIC, IMAGE_TOPIC, POINTS_TOPIC, TF_STATIC_TOPIC, TF_TOPIC
from mf_training.sim.config import SimConfig
from mf_training.sim.generator import SimFrame, generate_frames, sim_rig
from mf_training.sim.rig import BASE_FRAME, CAMERA_FRAME, LIDAR_FRAME, WORLD_FRAME, Rig


def static_transforms(rig: Rig, stamp_ns: int) -> Any:
    """/tf_static message: base_link -> lidar and lidar -> camera optical frame."""
    return conv.edges_to_tf_message([
        conv.TfEdge(BASE_FRAME, LIDAR_FRAME, stamp_ns, rig.base_from_lidar),
        conv.TfEdge(LIDAR_FRAME, CAMERA_FRAME, stamp_ns, rig.lidar_from_camera),
    ])


def frame_messages(frame: SimFrame, camera: PinholeCamera) -> list[tuple[str, Any, int]]:
    """(topic, message, log time ns) of one frame, in log-time order."""
    cam_ns, lidar_ns = frame.camera_stamp_ns, frame.lidar_stamp_ns
    points = frame.points
    messages = [
        (IMAGE_TOPIC, conv.rgb_to_image(frame.image, cam_ns, CAMERA_FRAME), cam_ns),
        (CAMERA_INFO_TOPIC, conv.camera_to_camera_info(camera, cam_ns, CAMERA_FRAME), cam_ns),
        (GT_TOPIC, conv.depth_to_image(frame.depth, cam_ns, CAMERA_FRAME), cam_ns),
        (POINTS_TOPIC, conv.xyz_to_pointcloud2(points[:, :3], lidar_ns, LIDAR_FRAME, intensity=points[:, 3],
                                               point_time_ns=frame.point_offsets_ns), lidar_ns),
    ]
    messages += [(TF_TOPIC, conv.edges_to_tf_message([conv.TfEdge(WORLD_FRAME, BASE_FRAME, stamp_ns, pose)]), stamp_ns)
                 for stamp_ns, pose in frame.base_poses]
    return sorted(messages, key=lambda item: item[2])  # stable: camera first when the stamps tie


def serialized_messages(frame: SimFrame, config: SimConfig) -> list[tuple[str, str, bytearray, int]]:
    """(topic, ROS type, CDR bytes, log time ns) of one frame; runs in the render worker."""
    typestore = conv.rosbags_messages().typestore
    # .obj: the bytearray under rosbags' read-only view, picklable for a worker process without a copy.
    return [(topic, msg.__msgtype__, typestore.serialize_cdr(msg, msg.__msgtype__).obj, stamp_ns)
            for topic, msg, stamp_ns in frame_messages(frame, config.camera)]


def write_bag(path: str | Path, config: SimConfig, workers: int = 1, overwrite: bool = False,
              progress: Callable[[Iterable], Iterable] = iter) -> int:
    """Generate ``config`` into a bag at ``path``: /tf_static first, then every frame's messages.

    Rendering and message serialisation run in ``workers`` processes; this process only writes.
    ``progress`` wraps the frame iterator (e.g. a tqdm bar). Returns the number of frames written.
    """
    start_ns = config.camera_stamp_ns(0)
    count = 0
    with BagWriter(path, overwrite=overwrite) as bag:
        bag.write(TF_STATIC_TOPIC, static_transforms(sim_rig(config), start_ns), start_ns)
        for messages in progress(generate_frames(config, workers, finish=serialized_messages)):
            for topic, msgtype, cdr, stamp_ns in messages:
                bag.write_raw(topic, cdr, stamp_ns, msgtype)
            count += 1
    return count
