"""Launch depth_node: ``ros2 launch mf_ros depth.launch.py image_topic:=/cam/image extrinsic:='x y z qx qy qz qw'``

Every node parameter is a launch argument (``ros2 launch mf_ros depth.launch.py --show-args``);
unset ones come from config/depth_node.yaml and ``params_file``. ``use_rviz:=true`` also starts
RViz with rviz/depth.rviz when rviz2 is installed (a warning and no RViz otherwise).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mf_ros.launch_args import declare_arguments, flag, have_executable, node_parameters
from mf_ros.options import DEPTH_NODE_OPTIONS


def _nodes(context):
    share = Path(get_package_share_directory("mf_ros"))
    actions = [Node(package="mf_ros", executable="depth_node", name="depth_node", output="screen",
                    namespace=LaunchConfiguration("namespace"),
                    parameters=node_parameters(context, DEPTH_NODE_OPTIONS, str(share / "config" / "depth_node.yaml")),
                    arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")])]
    if flag(context, "use_rviz"):
        if have_executable("rviz2", "rviz2"):
            actions.append(Node(package="rviz2", executable="rviz2", name="rviz2",
                                namespace=LaunchConfiguration("namespace"),
                                arguments=["-d", str(share / "rviz" / "depth.rviz")]))
        else:
            actions.append(LogInfo(msg="use_rviz:=true but rviz2 is not installed: starting without RViz "
                                       "(sudo apt install ros-$ROS_DISTRO-rviz2)"))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *declare_arguments(DEPTH_NODE_OPTIONS, {"use_rviz": ("false", "start RViz with rviz/depth.rviz")}),
        OpaqueFunction(function=_nodes),
    ])
