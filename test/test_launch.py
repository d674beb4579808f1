"""Launch files, YAML configs and the RViz config: parsed, and consistent with the nodes' parameters."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from mf_core.errors import InputError
from mf_ros.extrinsics import parse_extrinsic
from mf_ros.options import DEPTH_NODE_OPTIONS, PARAMETER_FILES, RECORDER_OPTIONS, parameter_file, typed_overrides

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted(PARAMETER_FILES))
def test_config_yaml_lists_every_option_with_its_default_under_any_namespace(path):
    node, launch_file, options = PARAMETER_FILES[path]
    text = (REPO / path).read_text()
    assert text == parameter_file(node, launch_file, options), "run: python -m mf_ros.options"
    data = yaml.safe_load(text)
    assert list(data) == ["/**"]  # applies whatever the node's namespace and name
    assert data["/**"]["ros__parameters"] == {o.name: o.default for o in options}


def test_launch_argument_text_is_parsed_by_the_option_spec():
    given = {"max_range": "80", "confidence": "true", "mode": "classical", "extrinsic": "[0.1, 0, 0, 0, 0, 0, 1]",
             "stride": "", "slop": "0.02"}
    values = typed_overrides(DEPTH_NODE_OPTIONS, given)
    assert values == {"max_range": 80.0, "confidence": True, "mode": "classical",
                      "extrinsic": "[0.1, 0, 0, 0, 0, 0, 1]", "slop": 0.02}  # empty = not given
    assert parse_extrinsic(values["extrinsic"])[0, 3] == pytest.approx(0.1)
    for bad, needle in (({"stride": "2.5"}, "stride"), ({"mode": "magic"}, "one of"),
                        ({"max_range": "-1"}, "within"), ({"confidence": "maybe"}, "bool")):
        with pytest.raises(InputError, match=needle):
            typed_overrides(DEPTH_NODE_OPTIONS, bad)


def test_extrinsic_forms_from_every_boundary_agree():
    text = parse_extrinsic("1 2 3 0 0 0 1")
    np.testing.assert_array_equal(text, parse_extrinsic([1, 2, 3, 0, 0, 0, 1]))
    np.testing.assert_array_equal(text, parse_extrinsic("[1, 2, 3, 0, 0, 0, 1]"))
    assert parse_extrinsic("") is None and parse_extrinsic([]) is None and parse_extrinsic(None) is None
    with pytest.raises(InputError, match="parameter 'extrinsic'"):
        parse_extrinsic([1.0, 2.0], "parameter 'extrinsic'")


def test_rviz_config_shows_the_depth_topics_with_matching_qos():
    displays = yaml.safe_load((REPO / "rviz" / "depth.rviz").read_text())["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d for d in displays if "Topic" in d}
    # rviz2 shows a 32FC1 image as grey: the colour-mapped rgb8 debug image is what it displays
    assert topics["/depth/colormap"]["Class"] == "rviz_default_plugins/Image" and "/depth/image" not in topics
    assert topics["/depth/points"]["Color Transformer"] == "RGB8"
    # The node publishes reliable: RViz may subscribe either way; it must not ask for transient local.
    assert all(d["Topic"]["Durability Policy"] == "Volatile" for d in topics.values())


def _launch_available() -> str | None:
    """Why launch tests cannot run here, or None. (The repo's launch/ folder shadows a missing
    `launch` package as an empty namespace package, so check for the real API.)"""
    if importlib.util.find_spec("launch_ros") is None:
        return "launch_ros is not installed (not on PyPI; needs a ROS install)"
    import launch

    if not hasattr(launch, "LaunchDescription"):
        return "the launch package is not installed"
    return None


@pytest.mark.parametrize("name, options", [("depth.launch.py", DEPTH_NODE_OPTIONS),
                                           ("record.launch.py", RECORDER_OPTIONS)])
def test_launch_files_offer_every_option_as_an_argument(name, options):
    reason = _launch_available()
    if reason:
        pytest.skip(reason)
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    source = PythonLaunchDescriptionSource(str(REPO / "launch" / name))
    description = source.get_launch_description(LaunchContext())
    declared = {e.name: e.default_value for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert {o.name for o in options} | {"namespace", "params_file", "use_sim_time"} <= set(declared)
    assert all(declared[o.name][0].text == "" for o in options)  # empty: the YAML / params_file decides


# Import name -> package.xml key for every non-stdlib import of the installed packages.
ROSDEP_KEYS = {
    "numpy": "python3-numpy", "cv2": "python3-opencv", "PIL": "python3-pil", "scipy": "python3-scipy",
    "numba": "python3-numba", "torch": "python3-torch", "rosbags": "python3-rosbags-pip",
    "transforms3d": "python3-transforms3d", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "lifecycle_msgs": "lifecycle_msgs",
    "sensor_msgs": "sensor_msgs", "std_msgs": "std_msgs", "geometry_msgs": "geometry_msgs",
    "tf2_ros": "tf2_ros", "tf2_msgs": "tf2_msgs", "diagnostic_msgs": "diagnostic_msgs", "launch": "launch",
    "launch_ros": "launch_ros", "ament_index_python": "ament_index_python",
}
# pip-installed on a robot (README; package.xml says so); diffusers (VAE tokenizer) and onnxruntime optional.
NO_ROSDEP_KEY = {"safetensors", "mcap", "diffusers", "onnxruntime"}
OWN = {"mf_core", "mf_ros", "mf_training"}


def _imports(folder: Path) -> set[str]:
    import ast
    import sys

    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in OWN and n != "__future__"}


def test_package_xml_declares_every_import_the_robot_side_makes():
    import xml.etree.ElementTree as ET

    declared = {e.text for e in ET.parse(REPO / "package.xml").getroot().iter("exec_depend")}
    used = _imports(REPO / "mf_core") | _imports(REPO / "mf_ros") | _imports(REPO / "launch")
    unknown = used - set(ROSDEP_KEYS) - NO_ROSDEP_KEY
    assert not unknown, f"add {unknown} to ROSDEP_KEYS and package.xml"
    missing = {ROSDEP_KEYS[n] for n in used - NO_ROSDEP_KEY} - declared
    assert not missing, missing
    assert "python3-safetensors-pip" not in declared and "message_filters" not in declared  # not rosdep / not used
