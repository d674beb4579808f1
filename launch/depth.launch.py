"""Launch depth_node (and optionally RViz): ``ros2 launch mf_ros depth.launch.py [model:=/path/to/ckpt]``."""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("mf_ros"))
    arguments = {
        "model": ("default", "'default' (the shipped model) or a checkpoint folder"),
        "device": ("cpu", "cpu | cuda"),
        "mode": ("conditioned", "conditioned (the shipped model) | guided | i2d-aligned | classical"),
        "namespace": ("", "namespace of the node and its topics"),
        "image_topic": ("/camera/image_raw", "camera image"),
        "camera_info_topic": ("/camera/camera_info", "camera calibration"),
        "points_topic": ("/lidar/points", "LiDAR PointCloud2"),
        "use_rviz": ("false", "start RViz with rviz/depth.rviz"),
    }
    config = {name: LaunchConfiguration(name) for name in arguments}
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=text)
          for name, (default, text) in arguments.items()),
        Node(package="mf_ros", executable="depth_node", name="depth_node", namespace=config["namespace"],
             output="screen",
             parameters=[str(share / "config" / "depth_node.yaml"),
                         {"model": config["model"], "device": config["device"], "mode": config["mode"]}],
             remappings=[("image", config["image_topic"]), ("camera_info", config["camera_info_topic"]),
                         ("points", config["points_topic"])]),
        Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", str(share / "rviz" / "depth.rviz")],
             condition=IfCondition(config["use_rviz"])),
    ])
