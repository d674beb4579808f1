"""Node parameters declared from the option specs of :mod:`mf_ros.options`.

:func:`declare_and_read` declares each option with a ParameterDescriptor (description, range,
allowed values, read-only unless the option is ``runtime``) and returns the values; anything
out of range or not among the choices raises InputError naming the parameter and what to
set it to, so a node stops at start with a message instead of running wrong.
:func:`watch_runtime_parameters` applies a ``ros2 param set`` checked against the same specs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from mf_core.errors import InputError
from mf_ros.options import Option


def descriptor(option: Option) -> ParameterDescriptor:
    """The ParameterDescriptor shown by ``ros2 param describe``."""
    d = ParameterDescriptor(description=option.description, read_only=not option.runtime,
                            dynamic_typing=option.numbers)
    if option.choices:
        d.additional_constraints = "one of: " + ", ".join(option.choices)
    if option.low is not None and isinstance(option.default, int) and not isinstance(option.default, bool):
        d.integer_range = [IntegerRange(from_value=int(option.low), to_value=int(option.high), step=0)]
    elif option.low is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(option.low), to_value=float(option.high),
                                                     step=0.0)]
    return d


def declare_and_read(node: Node, options: Iterable[Option]) -> dict[str, Any]:
    """Declare every option on ``node`` and return ``{name: value}``; InputError says what to fix."""
    values: dict[str, Any] = {}
    for option in options:
        try:
            value = node.declare_parameter(option.name, option.default, descriptor(option)).value
        except InvalidParameterValueException as err:
            raise InputError(f"parameter {option.name!r}: {err}; set it within [{option.low}, {option.high}] "
                             f"({option.description})") from err
        except InvalidParameterTypeException as err:
            raise InputError(f"parameter {option.name!r} has the wrong type ({err}); it takes a "
                             f"{type(option.default).__name__} ({option.description})") from err
        values[option.name] = option.check(value)
    return values


def watch_runtime_parameters(node: Node, options: Iterable[Option], values: dict[str, Any],
                             apply: Callable[[], None]) -> None:
    """Handle ``ros2 param set`` on ``node``: runtime options are checked, stored in ``values`` and
    ``apply()`` makes them take effect; any other change is refused with the reason."""
    options = tuple(options)

    def on_set(parameters: list[Any]) -> SetParametersResult:
        try:
            updates = runtime_updates(options, parameters)
        except InputError as err:
            return SetParametersResult(successful=False, reason=str(err))
        values.update(updates)
        apply()
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def runtime_updates(options: Iterable[Option], parameters: Iterable[Any]) -> dict[str, Any]:
    """``{name: value}`` of a parameter change (rclpy Parameters); InputError when one is not allowed."""
    by_name = {o.name: o for o in options}
    updates = {}
    for parameter in parameters:
        option = by_name.get(parameter.name)
        if option is None or not option.runtime:
            raise InputError(f"parameter {parameter.name!r} cannot change while the node runs")
        updates[parameter.name] = option.check(parameter.value)
    return updates
