"""A small validator driven by dataclass fields and their metadata.

Each config section is a frozen dataclass.  A field declares its type with its
annotation and the rest with :func:`setting`: the default, a one-line doc, a
range (``min``/``max``, or ``above`` for an exclusive lower bound), ``choices``,
and an optional ``check`` that normalises the value or raises ``ValueError``
(or any :class:`EdgeKnnError`) with a message that says what was expected.

:func:`build` walks a parsed TOML table against a dataclass and returns the
instance plus a list of problems, one line each, every line starting with the
key path (``gpio.buttons[1].pin: ...``).  It never stops at the first problem,
so ``edgeknn config check`` can list them all.  It does no I/O.

A section may define ``problems(self, at)`` for checks that involve several
keys (duplicate pins, ``retry_max >= retry_initial``); ``at(key)`` turns a key
relative to the section into its full path.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from edgeknn.errors import EdgeKnnError


@dataclass(frozen=True)
class Rule:
    """What a field accepts, beyond its type (kept in the field's metadata)."""

    doc: str = ""
    min: float | None = None
    max: float | None = None
    above: float | None = None  # exclusive lower bound
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], Any] | None = None
    expect: str | None = None  # replaces the generated "expected ..." text
    secret: bool = False  # never echo the value in errors or repr


def setting(default: Any = MISSING, doc: str = "", **rule: Any) -> Any:
    """A config field: its default (omit it for a required key) and its :class:`Rule`."""
    r = Rule(doc, **rule)
    meta = {"rule": r}
    if default is MISSING:
        return field(metadata=meta, repr=not r.secret)
    if isinstance(default, list | dict):
        raise TypeError("use a tuple for a list default")  # a frozen tree holds no mutables
    return field(default=default, metadata=meta, repr=not r.secret)


def section(cls: type, doc: str = "") -> Any:
    """A nested table whose defaults are the section's own defaults."""
    return field(default_factory=cls, metadata={"rule": Rule(doc)})


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get("rule", Rule())


def build(cls: type, data: Mapping[str, Any], path: str = "") -> tuple[Any, list[str]]:
    """Validate ``data`` against dataclass ``cls``: (instance or None, problems)."""
    problems: list[str] = []
    value = _table(cls, data, path, problems)
    return value, problems


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _table(cls: type, data: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    before = len(problems)
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            maybe = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(f"unknown key {join(path, str(key))}{maybe}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        key_path = join(path, f.name)
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                what = expected(hints[f.name], rule_of(f))
                problems.append(f"{key_path}: required: expected {what}")
            continue
        ok, value = _value(hints[f.name], data[f.name], rule_of(f), key_path, problems)
        if ok:
            values[f.name] = value
    if len(problems) > before:
        return None
    obj = cls(**values)
    cross = getattr(obj, "problems", None)
    if cross is not None:
        problems.extend(cross(lambda key: join(path, key)))
    return obj


def _value(tp: Any, raw: Any, rule: Rule, path: str, problems: list[str]) -> tuple[bool, Any]:
    """Check one value; on failure append a problem and return (False, None)."""
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(raw, dict):
            problems.append(f"{path}: expected a table [{path}], got {shown(raw, rule)}")
            return False, None
        before = len(problems)
        obj = _table(tp, raw, path, problems)
        return len(problems) == before, obj
    if get_origin(tp) is tuple:
        return _array(get_args(tp)[0], raw, rule, path, problems)
    if not _is_type(tp, raw):
        problems.append(f"{path}: expected {expected(tp, rule)}, got {shown(raw, rule)}")
        return False, None
    value: Any = float(raw) if tp is float else raw
    if not _in_range(value, rule) or (rule.choices is not None and value not in rule.choices):
        problems.append(f"{path}: expected {expected(tp, rule)}, got {shown(raw, rule)}")
        return False, None
    if rule.check is not None:
        try:
            value = rule.check(value)
        except (ValueError, EdgeKnnError) as exc:
            problems.append(f"{path}: {exc}")
            return False, None
    if tp is Path:
        value = Path(value)
    return True, value


def _array(elem: Any, raw: Any, rule: Rule, path: str, problems: list[str]) -> tuple[bool, Any]:
    if not isinstance(raw, list):
        what = f"an array of tables ([[{path}]])" if is_dataclass(elem) else expected(tuple, rule)
        problems.append(f"{path}: expected {what}, got {shown(raw, rule)}")
        return False, None
    before = len(problems)
    items = []
    for i, item in enumerate(raw):
        ok, value = _value(elem, item, rule, f"{path}[{i}]", problems)
        items.append(value)
    return len(problems) == before, tuple(items)


def _is_type(tp: Any, raw: Any) -> bool:
    if isinstance(tp, types.UnionType):
        return any(_is_type(t, raw) for t in get_args(tp))
    if tp is bool:
        return isinstance(raw, bool)
    if isinstance(raw, bool):  # bool is an int in Python, never in TOML
        return False
    if tp is int:
        return isinstance(raw, int)
    if tp is float:
        return isinstance(raw, int | float) and math.isfinite(raw)
    if tp is str:
        return isinstance(raw, str)
    if tp is Path:
        return isinstance(raw, str) and raw != ""
    raise TypeError(f"config validator cannot check type {tp!r}")


def _in_range(value: Any, rule: Rule) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return True
    if rule.min is not None and value < rule.min:
        return False
    if rule.max is not None and value > rule.max:
        return False
    return rule.above is None or value > rule.above


def expected(tp: Any, rule: Rule) -> str:
    """The "expected ..." text for a field, generated from its type and rule."""
    if rule.expect:
        return rule.expect
    if rule.choices is not None:
        return "one of " + ", ".join(json.dumps(c) for c in rule.choices)
    if is_dataclass(tp):
        return "a table"
    if tp is bool:
        return "true or false"
    if tp is Path:
        return "a path"
    if tp is str:
        return "a string"
    if tp is tuple or get_origin(tp) is tuple:
        return "a list of strings"
    noun = "an integer" if tp is int else "a number"
    return noun + _range_text(rule)


def _range_text(rule: Rule) -> str:
    def num(x: float) -> str:
        return f"{x:g}"

    if rule.above is not None:
        upper = f" and <= {num(rule.max)}" if rule.max is not None else ""
        return f" > {num(rule.above)}{upper}"
    if rule.min is not None and rule.max is not None:
        return f" {num(rule.min)}..{num(rule.max)}"
    if rule.min is not None:
        return f" >= {num(rule.min)}"
    if rule.max is not None:
        return f" <= {num(rule.max)}"
    return ""


def shown(raw: Any, rule: Rule = Rule()) -> str:
    """A value as a TOML user would recognise it, in one short line."""
    if rule.secret:
        return "a hidden value"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str):
        text = json.dumps(raw, ensure_ascii=False)
        return text if len(text) <= 42 else text[:40] + '..."'
    if isinstance(raw, int | float):
        return repr(raw)  # 17.0 stays 17.0: a float where an integer belongs shows as one
    if isinstance(raw, dict):
        return "a table"
    if isinstance(raw, list | tuple):
        short = len(raw) <= 4 and all(isinstance(x, str | int | float) for x in raw)
        return "[" + ", ".join(shown(x) for x in raw) + "]" if short else "an array"
    if isinstance(raw, datetime.date | datetime.time):
        return f"a date/time ({raw.isoformat()})"
    return type(raw).__name__


def walk(cls: type, path: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every leaf key of a config dataclass: (path, field, type); arrays of tables as ``x[]``."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        key = join(path, f.name)
        if isinstance(tp, type) and is_dataclass(tp):
            yield from walk(tp, key)
        elif get_origin(tp) is tuple and is_dataclass(get_args(tp)[0]):
            yield from walk(get_args(tp)[0], key + "[]")
        else:
            yield key, f, tp
