"""One depth_node per camera, each under its own namespace:
``ros2 launch mf_ros multi_camera.launch.py cameras:=front,rear params_file:=robot.yaml``.

Camera ``front`` reads ``/front/image``, ``/front/camera_info`` and ``/front/points`` (remap
in your drivers, or give per-camera topics in ``params_file`` under ``/front/depth_node:``)
and publishes ``/front/depth/...``. Arguments other than ``cameras`` go to every node.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from mf_ros.launch_args import COMMON
from mf_ros.options import DEPTH_NODE_OPTIONS

SHARED = [name for name in COMMON if name != "namespace"] + [o.name for o in DEPTH_NODE_OPTIONS]


def _cameras(context):
    names = [n.strip() for n in LaunchConfiguration("cameras").perform(context).split(",") if n.strip()]
    if not names:
        raise RuntimeError("cameras:= is empty; give camera names separated by commas, e.g. cameras:=front,rear")
    depth_launch = str(Path(get_package_share_directory("mf_ros")) / "launch" / "depth.launch.py")
    shared = {name: LaunchConfiguration(name).perform(context) for name in SHARED}
    return [IncludeLaunchDescription(PythonLaunchDescriptionSource(depth_launch),
                                     launch_arguments={**shared, "namespace": name}.items())
            for name in names]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("cameras", default_value="front", description="camera names, comma separated"),
        *(DeclareLaunchArgument(name, default_value=COMMON[name][0] if name in COMMON else "") for name in SHARED),
        OpaqueFunction(function=_cameras),
    ])
