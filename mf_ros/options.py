"""Every setting of the nodes, with one spelling, one default and one description.

From these specs come the node parameters (``mf_ros.nodes.params``: descriptors with
ranges, allowed values and read-only flags), the launch arguments (``launch/*.launch.py``),
the YAML files in ``config/`` (a test checks they list exactly these keys and defaults) and
the ``mf densify`` flags it shares with the depth node (``--max-range`` for ``max_range``).
ROS-free and torch-free: a launch file imports it without loading the model.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mf_core.errors import InputError
from mf_core.files import MAX_IMAGE_PIXELS
from mf_core.modes import DEFAULT_MODE, DEVICES, NODE_MODES
from mf_ros.sync import DEFAULT_SLOP_S

QOS_RELIABILITY = ("auto", "reliable", "best_effort")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Option:
    """One setting. ``default`` fixes its type (bool, int, float, str); ``runtime`` options may be changed
    while the node runs (``ros2 param set``), the others are read-only after start."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    runtime: bool = False
    numbers: bool = False  # a list of numbers is accepted too (YAML), as well as the text form

    @property
    def flag(self) -> str:
        """The command-line spelling: ``max_range`` -> ``--max-range``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """``value`` when it is of the option's type, in range and among the choices; else InputError."""
        kind = type(self.default)
        if self.numbers and isinstance(value, (list, tuple)):
            return [float(v) for v in value]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise InputError(f"{self.name} must be a {kind.__name__}, got {value!r} ({self.description})")
        if self.low is not None and not self.low <= value <= self.high:
            raise InputError(f"{self.name} is {value}; set it within [{self.low}, {self.high}] ({self.description})")
        if self.choices and value not in self.choices:
            raise InputError(f"{self.name} is {value!r}; set it to one of {list(self.choices)} ({self.description})")
        return value

    def parse(self, text: str) -> Any:
        """The typed value of a launch argument or flag given as text; InputError says what is accepted."""
        kind = type(self.default)
        word = text.strip()
        try:
            if kind is bool:
                if word.lower() not in TRUE_WORDS + FALSE_WORDS:
                    raise ValueError(word)
                value: Any = word.lower() in TRUE_WORDS
            else:
                value = kind(word)
        except ValueError:
            raise InputError(f"{self.name}:={text!r} is not a {kind.__name__} ({self.description})") from None
        return self.check(value)


def _option(name: str, options: Iterable[Option]) -> Option:
    return next(o for o in options if o.name == name)


def add_flags(parser: argparse.ArgumentParser, options: Iterable[Option], names: Iterable[str]) -> None:
    """Add ``--flag`` arguments for the named options, with their defaults, types, choices and help."""
    options = tuple(options)
    for name in names:
        option = _option(name, options)
        if isinstance(option.default, bool):
            parser.add_argument(option.flag, action="store_true", help=option.description)
            continue
        parser.add_argument(option.flag, type=option.parse, default=option.default, metavar=option.name.upper(),
                            help=f"{option.description} (default {option.default!r}"
                                 + (f"; one of {', '.join(option.choices)})" if option.choices else ")"))


def typed_overrides(options: Iterable[Option], given: dict[str, str]) -> dict[str, Any]:
    """Launch arguments given as text -> typed parameter values; empty text = not given (the YAML decides)."""
    by_name = {o.name: o for o in options}
    return {name: by_name[name].parse(text) for name, text in given.items() if text != ""}


def processing_size(width: int, height: int) -> tuple[int, int] | None:
    """(height, width) for the estimator from the two parameters; (0, 0) means the input size."""
    if (width == 0) != (height == 0):
        raise InputError(f"processing_width={width} and processing_height={height}: set both (the model's "
                         "resolution) or both to 0 (the input resolution)")
    return None if width == 0 else (height, width)


# Shared by the depth node and the recorder.
_SLOP = Option("slop", DEFAULT_SLOP_S, "largest |t_lidar - t_image| in seconds for a pair", 0.0, 1.0, runtime=True)
_QUEUE = Option("queue_size", 5, "input messages kept per topic (QoS depth) and images waiting to pair", 1, 100)
_QOS = Option("qos_reliability", "auto", "input QoS: auto = reliable (best effort lost ~40 % of large frames "
              "here) unless a publisher offers best effort only", choices=QOS_RELIABILITY)
_EXTRINSIC = Option("extrinsic", "", "T_camera_from_lidar: 'x y z qx qy qz qw' or 16 row-major numbers "
                    "(a string, or a list in YAML); empty = TF at the LiDAR stamp", numbers=True)

_CAMERA_INFO_FILE = Option("camera_info_file", "", "camera calibration YAML (camera_calibration's ost.yaml) for a "
                           "camera that publishes no camera_info; set: camera_info_topic is not subscribed")
_IMAGE_TRANSPORT = Option("image_transport", "raw", "raw Image, or CompressedImage on <image_topic>/compressed",
                          choices=("raw", "compressed"))

DEPTH_NODE_OPTIONS = (
    Option("model", "default",
           "'default' (the shipped model), a checkpoint folder, or a registry size (e.g. MF-XS) = RANDOM weights"),
    Option("device", "cpu", "torch device", choices=DEVICES),
    Option("onnx_model", "", "a file from mf export-onnx for this model: the mode it was exported for runs on "
           "onnxruntime (empty = torch)"),
    Option("nearest_share", "", "mode conditioned: share of the nearest LiDAR return mixed in away from the "
           "returns on a pixel's row: auto (fitted on this camera's stream), none, or a number in [0, 1]; "
           "empty = the model's own setting"),
    Option("mode", DEFAULT_MODE, "how LiDAR makes depth metric (conditioned suits the shipped model)",
           choices=NODE_MODES),
    Option("steps", 1, "sampler steps (1 = one forward pass)", 1, 50, runtime=True),
    Option("seed", 0, "sampler noise seed", 0, 2**31 - 1, runtime=True),
    Option("processing_width", 0, "model input width in pixels (0 with height 0 = input size)", 0, 4096),
    Option("processing_height", 0, "model input height in pixels (0 with width 0 = input size)", 0, 4096),
    Option("use_lidar", True, "pair frames with LiDAR; false publishes relative (unit-mean) depth on "
           "<output_namespace>/relative"),
    _SLOP,
    _QUEUE,
    _EXTRINSIC,
    Option("camera_frame", "", "TF frame of the camera (empty = the image header's frame_id)"),
    Option("lidar_frame", "", "TF frame of the LiDAR (empty = the cloud header's frame_id)"),
    Option("tf_timeout", 0.05, "seconds to wait for TF at the LiDAR stamp", 0.0, 5.0),
    Option("image_topic", "image", "input image topic (remappings apply)"),
    _IMAGE_TRANSPORT,
    Option("camera_info_topic", "camera_info", "input camera_info topic"),
    _CAMERA_INFO_FILE,
    Option("points_topic", "points", "input LiDAR PointCloud2 topic"),
    Option("output_namespace", "depth", "outputs go to <ns>/image, <ns>/camera_info, <ns>/points, ..."),
    Option("max_range", 0.0, "no depth (NaN) farther than this, in metres; 0 = no cap beyond the model's "
           "own (none beyond 1.1 x the farthest LiDAR return)", 0.0, 10000.0, runtime=True),
    Option("stride", 1, "depth/points keeps every stride-th row and column", 1, 64, runtime=True),
    Option("max_pixels", MAX_IMAGE_PIXELS, "images over this many pixels are dropped as too_large",
           1, 2**31 - 1),
    Option("max_points", 4_000_000, "LiDAR clouds with more points are dropped as too_large", 1, 2**31 - 1),
    Option("confidence", False, "also publish <ns>/confidence (32FC1 in [0, 1]; model modes only)"),
    Option("lazy", False, "skip inference while nobody subscribes to any output (counted as no_subscribers)",
           runtime=True),
    _QOS,
    Option("stats_period", 1.0, "seconds between stats messages", 0.1, 60.0),
    Option("warn_period", 5.0, "seconds between repeated warnings of one kind", 0.0, 3600.0, runtime=True),
    Option("autostart", True, "configure and activate at start (false: wait for lifecycle transitions)"),
)

RECORDER_OPTIONS = (
    Option("output_dir", "", "directory the bags are created in (made if missing); required"),
    Option("bag_prefix", "mf_samples", "bag directory name prefix"),
    Option("image_topic", "image", "camera image topic (sensor_msgs/Image)"),
    _IMAGE_TRANSPORT,
    Option("camera_info_topic", "camera_info", "camera_info topic"),
    _CAMERA_INFO_FILE,
    Option("points_topic", "points", "LiDAR PointCloud2 topic"),
    _SLOP,
    Option("queue_size", 100, "input messages kept per topic (QoS depth) and images waiting to pair; deep, so "
           "a stall of the writer loses nothing", 1, 1000),
    Option("min_interval", 0.0, "seconds between recorded samples (skip near-duplicates)", 0.0, 3600.0,
           runtime=True),
    Option("max_bag_size_mb", 0.0, "start a new bag after this many MiB (0 = never)", 0.0, 1e6),
    Option("max_bag_duration", 0.0, "start a new bag after this many seconds of stamps (0 = never)", 0.0, 1e6),
    Option("extrinsic", "", "T_camera_from_lidar ('x y z qx qy qz qw' or 16 numbers) written to /tf_static",
           numbers=True),
    Option("camera_frame", "camera_optical_frame", "parent frame of the 'extrinsic' static transform"),
    Option("lidar_frame", "lidar", "child frame of the 'extrinsic' static transform"),
    _QOS,
    Option("stats_period", 1.0, "seconds between stats messages (JSON on recorder/stats)", 0.1, 60.0),
)


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or '""'
    return repr(value)


def parameter_file(node: str, launch_file: str, options: Iterable[Option]) -> str:
    """The shipped ``config/<node>.yaml``: every option with its default and help, keyed ``/**``."""
    lines = [f"# {node} parameters: ros2 launch mf_ros {launch_file} params_file:=<a copy of this file>",
             f"# (or ros2 run mf_ros {node} --ros-args --params-file FILE). Keyed /** so they apply under any",
             "# namespace and node name. `ros2 param describe` shows each one's range, allowed values and",
             "# whether it can change at run time ([runtime] below; the others are read-only). Generated from",
             "# mf_ros/options.py by `python -m mf_ros.options`; a test checks it is up to date.",
             "/**:", "  ros__parameters:"]
    for option in options:
        entry = f"    {option.name}: {_yaml_value(option.default)}"
        lines.append(f"{entry:<36} # {option.description}" + (" [runtime]" if option.runtime else ""))
    return "\n".join(lines) + "\n"


PARAMETER_FILES = {"config/depth_node.yaml": ("depth_node", "depth.launch.py", DEPTH_NODE_OPTIONS),
                   "config/recorder_node.yaml": ("recorder_node", "record.launch.py", RECORDER_OPTIONS)}


if __name__ == "__main__":  # python -m mf_ros.options: rewrite config/*.yaml from the specs
    from pathlib import Path

    for path, spec in PARAMETER_FILES.items():
        Path(path).write_text(parameter_file(*spec))
        print(f"wrote {path}")
