"""Declared, described and validated node parameters.

Each node lists :class:`Param` specs; :func:`declare_and_read` declares them with
ParameterDescriptors (description, range, allowed values) and returns the values.
Anything out of range or not among the choices raises InputError naming the parameter
and what to set it to, so a node stops at start with a message instead of running wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from mf_core.errors import InputError

QOS_RELIABILITY = ("best_effort", "reliable")


@dataclass(frozen=True)
class Param:
    """One parameter: default (None = a double array that may be left unset), help, range or choices."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def descriptor(self) -> ParameterDescriptor:
        """The ParameterDescriptor shown by ``ros2 param describe``."""
        d = ParameterDescriptor(description=self.description)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.low is not None and isinstance(self.default, bool):
            raise InputError(f"parameter spec {self.name}: a bool has no range")
        if self.low is not None and isinstance(self.default, int):
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
        elif self.low is not None:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high),
                                                         step=0.0)]
        return d


def declare_and_read(node: Node, specs: Iterable[Param]) -> dict[str, Any]:
    """Declare every spec on ``node`` and return ``{name: value}``; InputError says what to fix."""
    values: dict[str, Any] = {}
    for spec in specs:
        default = Parameter.Type.DOUBLE_ARRAY if spec.default is None else spec.default
        try:
            value = node.declare_parameter(spec.name, default, spec.descriptor()).value
        except InvalidParameterValueException as err:
            raise InputError(f"parameter {spec.name!r}: {err}; set it within [{spec.low}, {spec.high}] "
                             f"({spec.description})") from err
        except InvalidParameterTypeException as err:
            raise InputError(f"parameter {spec.name!r} has the wrong type ({err}); it takes a "
                             f"{type(spec.default).__name__ if spec.default is not None else 'list of doubles'} "
                             f"({spec.description})") from err
        if spec.choices and value not in spec.choices:
            raise InputError(f"parameter {spec.name!r} is {value!r}; set it to one of {list(spec.choices)} "
                             f"({spec.description})")
        values[spec.name] = value
    return values


def processing_size(width: int, height: int) -> tuple[int, int] | None:
    """(height, width) for the estimator from the two parameters; (0, 0) means the input size."""
    if (width == 0) != (height == 0):
        raise InputError(f"processing_width={width} and processing_height={height}: set both (the model's "
                         "resolution) or both to 0 (the input resolution)")
    return None if width == 0 else (height, width)
