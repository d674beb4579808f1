"""Nested dataclasses <-> plain dicts: YAML composition, dotted overrides, typed coercion.

Hand-written rather than OmegaConf/Hydra (not a dependency of this project): the whole
job is ~100 lines and keeps every error an InputError that names the offending key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mf_core.errors import InputError

T = TypeVar("T")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def read_yaml_chain(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Load a YAML config; a top-level ``base:`` names a parent file (relative to this one) merged underneath."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise InputError(f"config {path} includes itself through 'base:' ({' -> '.join(map(str, _seen))})")
    if not path.is_file():
        raise InputError(f"config file {path} does not exist: pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"config {path} must be a mapping of keys to values, got {type(data).__name__}")
    base = data.pop("base", None)
    if base is None:
        return data
    parent = read_yaml_chain(path.parent / str(base), (*_seen, path))
    return merge_dicts(parent, data)


def merge_dicts(base: dict, override: dict) -> dict:
    """A new dict: ``override`` on top of ``base``; nested mappings merge, everything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` strings to a nested dict (values stay strings; coercion types them)."""
    out = merge_dicts({}, data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"override {item!r} must look like key.sub=value (e.g. optim.lr=1e-4)")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[leaf] = value
    return out


def dotted_keys(cls: type, prefix: str = "") -> list[str]:
    """Every settable key of a config dataclass tree, dotted (``optim.lr``)."""
    keys = []
    for name, hint in typing.get_type_hints(cls).items():
        if name.startswith("_"):
            continue
        keys.append(prefix + name)
        if dataclasses.is_dataclass(hint):
            keys += dotted_keys(hint, f"{prefix}{name}.")
    return keys


def from_dict(cls: type[T], data: Any, where: str = "", root: type | None = None) -> T:
    """Build dataclass ``cls`` from a nested dict, typing each value by its field; unknown keys raise."""
    root = root or cls
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise InputError(f"config key {where or '<root>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in hints or k.startswith("_")]
    if unknown:
        key = f"{where}{unknown[0]}"
        close = difflib.get_close_matches(key, dotted_keys(root), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys here: {', '.join(hints)}"
        raise InputError(f"unknown config key {key!r}{hint}")
    kwargs = {k: coerce(v, hints[k], f"{where}{k}", root) for k, v in data.items()}
    return cls(**kwargs)


def coerce(value: Any, hint: Any, key: str, root: type | None = None) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or raise InputError naming ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, root)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, f"{key}.", root)
    if isinstance(value, str) and (origin in (list, tuple, dict) or hint in (list, tuple, dict)):
        value = _parse_yaml_value(value, key)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config key {key} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise InputError(f"config key {key} must have {len(args)} items, got {value!r}")
            return tuple(coerce(v, a, f"{key}[{i}]", root) for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [coerce(v, item, f"{key}[{i}]", root) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InputError(f"config key {key} must be a mapping, got {value!r}")
        return dict(value)
    return _coerce_scalar(value, hint, key)


def _parse_yaml_value(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"config key {key}: cannot parse {text!r} as YAML: {exc}") from None


def _coerce_scalar(value: Any, hint: Any, key: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise InputError(f"config key {key} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise InputError(f"config key {key} must be a number, got {value!r}")
        try:
            number = hint(value) if isinstance(value, str) else value
        except ValueError:
            raise InputError(f"config key {key} must be a{'n integer' if hint is int else ' number'}, "
                             f"got {value!r}") from None
        if not isinstance(number, (int, float)):
            raise InputError(f"config key {key} must be a number, got {value!r}")
        if hint is int and (not isinstance(number, int) and not float(number).is_integer()):
            raise InputError(f"config key {key} must be an integer, got {value!r}")
        return hint(number)
    if hint is str:
        if isinstance(value, (dict, list)):
            raise InputError(f"config key {key} must be a string, got {value!r}")
        return str(value)
    raise TypeError(f"config field {key} has unsupported type {hint!r}")


def to_dict(config: Any) -> dict:
    """Plain dict (tuples as lists) of a config dataclass, ready for ``yaml.safe_dump``."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
