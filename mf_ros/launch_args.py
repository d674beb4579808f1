"""Launch arguments generated from the option specs (imported by ``launch/*.launch.py`` only).

Every node option becomes a launch argument of the same name whose default is empty: an
empty argument is not passed, so the shipped YAML and a user's ``params_file`` decide, and
a given one (``max_range:=80``, ``extrinsic:='0.1 0 -0.2 0 0 0 1'``) is parsed once, by its
spec, into the parameter's type, with an error naming the argument when it does not fit.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Any

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration

from mf_core.errors import InputError
from mf_ros.options import Option, typed_overrides

COMMON = {
    "namespace": ("", "namespace of the node and its topics (one node per camera: one namespace each)"),
    "params_file": ("", "a YAML parameter file (keys under /**: or the node name) applied after the shipped one"),
    "use_sim_time": ("false", "true when the clock comes from /clock (bag playback, a simulator)"),
    "log_level": ("info", "debug | info | warn | error"),
}


def declare_arguments(options: Iterable[Option], extra: dict[str, tuple[str, str]] | None = None
                      ) -> list[DeclareLaunchArgument]:
    """One DeclareLaunchArgument per option (default empty: the YAML decides), plus COMMON and ``extra``."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in {**COMMON, **(extra or {})}.items()]
    declared += [DeclareLaunchArgument(o.name, default_value="", description=f"{o.description} "
                                       f"(empty = the params file; shipped default {o.default!r})")
                 for o in options]
    return declared


def node_parameters(context: Any, options: Iterable[Option], shipped_yaml: str) -> list[Any]:
    """``parameters=`` for the Node: the shipped YAML, the user's params_file, then the given arguments."""
    options = tuple(options)
    given = {o.name: LaunchConfiguration(o.name).perform(context) for o in options}
    try:
        overrides = typed_overrides(options, given)
    except InputError as err:
        raise RuntimeError(f"bad launch argument: {err}") from None
    files = [shipped_yaml]
    params_file = LaunchConfiguration("params_file").perform(context)
    if params_file:
        if not os.path.isfile(params_file):
            raise RuntimeError(f"params_file:={params_file} does not exist; give a YAML file of node parameters")
        files.append(params_file)
    return [*files, {"use_sim_time": flag(context, "use_sim_time"), **overrides}]


def flag(context: Any, name: str) -> bool:
    """A true/false launch argument (true, 1, yes, on / false, 0, no, off); RuntimeError otherwise."""
    try:
        return Option(name, False, "a true/false launch argument").parse(LaunchConfiguration(name).perform(context))
    except InputError as err:
        raise RuntimeError(f"bad launch argument: {err}") from None


def have_executable(package: str, executable: str) -> bool:
    """True when ``ros2 run package executable`` could start (checked before launching optional tools)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError:
        return shutil.which(executable) is not None
    return os.path.isfile(f"{prefix}/lib/{package}/{executable}") or shutil.which(executable) is not None
