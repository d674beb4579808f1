"""Launch recorder_node: ``ros2 launch mf_ros record.launch.py output_dir:=/data/bags``."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    arguments = {
        "output_dir": ("", "directory for the bags (required)"),
        "namespace": ("", "namespace of the node"),
        "image_topic": ("/camera/image_raw", "camera image"),
        "camera_info_topic": ("/camera/camera_info", "camera calibration"),
        "points_topic": ("/lidar/points", "LiDAR PointCloud2"),
        "min_interval": ("0.0", "seconds between samples"),
    }
    config = {name: LaunchConfiguration(name) for name in arguments}
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in arguments.items()),
        Node(package="mf_ros", executable="recorder_node", name="recorder_node", namespace=config["namespace"],
             output="screen", sigterm_timeout="30",
             parameters=[str(Path(get_package_share_directory("mf_ros")) / "config" / "recorder_node.yaml"),
                         {"output_dir": config["output_dir"], "min_interval": config["min_interval"]}],
             remappings=[("image", config["image_topic"]), ("camera_info", config["camera_info_topic"]),
                         ("points", config["points_topic"])]),
    ])
