"""Launch recorder_node: ``ros2 launch mf_ros record.launch.py output_dir:=/data/bags image_topic:=/camera/image_raw``.

Every node parameter is a launch argument (``--show-args``); unset ones come from
config/recorder_node.yaml and ``params_file``. SIGINT / SIGTERM close the bag with every
accepted sample; launch waits up to 30 s for that before it escalates.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mf_ros.launch_args import declare_arguments, node_parameters
from mf_ros.options import RECORDER_OPTIONS


def _nodes(context):
    yaml = str(Path(get_package_share_directory("mf_ros")) / "config" / "recorder_node.yaml")
    return [Node(package="mf_ros", executable="recorder_node", name="recorder_node", output="screen",
                 namespace=LaunchConfiguration("namespace"), sigterm_timeout="30",
                 parameters=node_parameters(context, RECORDER_OPTIONS, yaml),
                 arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*declare_arguments(RECORDER_OPTIONS), OpaqueFunction(function=_nodes)])
