"""Typed parameters: dataclasses that read and write JSON, check their values naming the field, and print
a skeleton of every field with its default and one line of help.

Every params class of xmc (the tree, the linear PLT, each deep model and their common parts) is a
``@dataclass`` subclass of :class:`Params` whose fields are declared with :func:`param`::

    @dataclass
    class TrainingParams(Params):
        lr: float = param(1e-3, "Adam learning rate")

        def validate(self) -> None:
            check(self.lr > 0, "lr", "must be positive", self.lr)

Nested params (a field whose type is another ``Params``) are built from JSON objects; a field path is
dotted (``training.lr``). User input (``--params FILE``, ``--set``) is strict: an unknown field is an
error that names it and the fields there are.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
import typing
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np

P = TypeVar("P", bound="Params")
# Most threads any params may ask for: a loaded model's count reaches OpenMP and torch, and a forged 2**31
# must stop here.
MAX_THREADS = 1024


def param(default: Any, help: str, **kwargs) -> Any:
    """A params field with its default and one line of help (mutable defaults are copied per instance)."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=functools.partial(copy.deepcopy, default),
                                 metadata={"help": help}, **kwargs)
    return dataclasses.field(default=default, metadata={"help": help}, **kwargs)


def check(ok: bool, name: str, expected: str, found: Any) -> None:
    """Raise ``ValueError("name: expected ..., found ...")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{name}: expected {expected}, found {found!r}")


def check_int(value: Any, name: str, low: int = 1, high: Optional[int] = None) -> None:
    """``value`` is an integer in [low, high] (bools are not integers here)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    check(ok, name, f"an integer >= {low}" + (f" and <= {high}" if high is not None else ""), value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> None:
    check(value in choices, name, f"one of {', '.join(map(str, choices))}", value)


def has_json_type(value: Any, hint: Any) -> bool:
    # The annotations configs use: int, float, bool, str, Optional/Union, List[x], Tuple[x, ...], dataclasses.
    if hint is Any:
        return True
    if dataclasses.is_dataclass(hint):
        return isinstance(value, (Mapping, hint))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        return any(has_json_type(value, a) for a in args)
    if origin in (list, List):
        return isinstance(value, (list, tuple)) and all(has_json_type(v, args[0]) for v in value)
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(has_json_type(v, args[0]) for v in value)
        return len(value) == len(args) and all(has_json_type(v, a) for v, a in zip(value, args))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if hint is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def type_name(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Union:
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _params_type(hint: Any) -> Optional[type]:
    """The Params class a field holds (directly or as Optional[...]), else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, Params):
            return candidate
    return None


class Params:
    """Base of the typed params. Subclasses are dataclasses; ``validate`` checks ranges and choices."""

    # CLI flags that set fields (``--seed`` -> every path listed): see :meth:`flag_paths`.
    FLAGS: Mapping[str, Tuple[str, ...]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            sub = _params_type(_hints(type(self))[f.name])
            value = getattr(self, f.name)
            if sub is not None and isinstance(value, Mapping):
                setattr(self, f.name, sub.from_dict(value, path=f.name))
        self.validate()

    def validate(self) -> None:
        """Check the values; raise ValueError naming the field. Nested params check themselves."""

    # ---- JSON --------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Params) else copy.deepcopy(
                list(value) if isinstance(value, tuple) else value)
        return out

    @classmethod
    def from_dict(cls: Type[P], data: Mapping[str, Any], strict: bool = True, path: str = "") -> P:
        """Build from a JSON object: each value must have its field's type; with ``strict`` an unknown key is
        an error (a typo must not be ignored), without it unknown keys are skipped."""
        where = f"{path}." if path else ""
        if not isinstance(data, Mapping):
            raise TypeError(f"{path or cls.__name__}: expected an object of fields, found {type(data).__name__}")
        hints = _hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if strict and unknown:
            raise ValueError(f"{where}{unknown[0]}: no such field in {cls.__name__}; its fields are "
                             f"{', '.join(names)}")
        kwargs = {}
        for name in names:
            if name not in data:
                continue
            value, hint = data[name], hints[name]
            sub = _params_type(hint)
            if sub is not None and isinstance(value, Mapping):
                value = sub.from_dict(value, strict=strict, path=f"{where}{name}")
            elif not has_json_type(value, hint):
                raise TypeError(f"{where}{name}: expected {type_name(hint)}, found {value!r}"[:300])
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{where}{e}" if path else str(e)) from None

    @classmethod
    def load(cls: Type[P], path: Union[str, Path]) -> P:
        """Params from a JSON file (``xmc params KIND`` prints one), strictly: errors name the file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a JSON params file ({e})") from None
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from None

    # ---- skeleton ----------------------------------------------------------------
    @classmethod
    def skeleton(cls) -> Dict[str, Any]:
        """Every field with its default, as JSON (``xmc params KIND``)."""
        return cls().to_dict()

    @classmethod
    def describe(cls) -> List[Tuple[str, Any, str]]:
        """(dotted path, default, help) of every leaf field."""
        return list(cls()._leaves())

    def _leaves(self, prefix: str = "") -> Iterator[Tuple[str, Any, str]]:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Params):
                yield from value._leaves(f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}", value, f.metadata.get("help", "")

    # ---- overrides ---------------------------------------------------------------
    def paths(self) -> List[str]:
        return [path for path, _, _ in self._leaves()]

    def resolve(self, name: str) -> str:
        """The dotted path of ``name``: a path as it is, or a field name found once among the leaves."""
        paths = self.paths()
        if name in paths:
            return name
        matches = [p for p in paths if p.rsplit(".", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ValueError(f"{name}: several fields have this name ({', '.join(matches)}); give the full path")
        raise ValueError(f"{name}: no such field in {type(self).__name__}; its fields are {', '.join(paths)}")

    def with_values(self: P, values: Mapping[str, Any]) -> P:
        """A copy with ``values`` set (keys: dotted paths or unique field names), validated again."""
        data = self.to_dict()
        for name, value in values.items():
            path = self.resolve(name)
            node = data
            *parents, leaf = path.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        return type(self).from_dict(data)

    def with_settings(self: P, settings: Sequence[str]) -> P:
        """A copy with ``FIELD=VALUE`` strings applied (``--set``); values are read as JSON when they parse
        (numbers, true/false, null, lists), else taken as strings."""
        values = {}
        for setting in settings:
            name, sep, raw = setting.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"--set {setting!r}: expected FIELD=VALUE, such as training.lr=0.003")
            try:
                values[name.strip()] = json.loads(raw)
            except json.JSONDecodeError:
                values[name.strip()] = raw
        return self.with_values(values)

    def flag_paths(self, flag: str) -> Tuple[str, ...]:
        """The fields a CLI flag sets (``--seed``: the loop's, the word vectors' and the tree's seed), those of
        ``FLAGS`` this params has; empty when it has no use for the flag."""
        paths = self.paths()
        return tuple(p for p in self.FLAGS.get(flag, ()) if p in paths)
