"""The fields of a config schema: dotted path, type, description and allowed values.

Descriptions are the attribute docstrings the schemas already hold (read from the source).
Allowed values are declared on the field itself, as ``dataclasses.field`` metadata, so a schema
states its rules next to its docstring::

    steps: int = field(default=200, metadata={"min": 0})
    executor: str = field(default="local", metadata={"choices": EXECUTORS})

Rule keys: ``min`` (value >= min), ``gt`` (value > gt), ``max`` (value <= max), ``choices``
(one of). A list value is checked element by element; ``None`` passes (it means "the default").
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

RULE_KEYS = ("min", "gt", "max", "choices")


@dataclass(frozen=True)
class FieldInfo:
    """One leaf field of a schema."""

    path: str
    """Dotted path from the schema's root (``optim.steps``)."""
    type: str
    """The annotation as written (``int | None``)."""
    doc: str
    """The attribute docstring, whitespace and RST quotes collapsed ('' when the schema has none)."""
    rules: Mapping[str, Any]
    """Allowed values (see the module doc)."""


@functools.cache
def attribute_docs(cls: type) -> dict[str, str]:
    """``{field name: docstring}`` of a dataclass and its bases (a string right after the field),
    on one line, without RST quotes."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.replace("``", "").split())
    return docs


def type_name(hint: Any) -> str:
    """``int``, ``str | None``, ``list[int]`` … as a user would write them."""
    if hint is type(None):
        return "None"
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        return hint.__name__
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return str(hint).replace("typing.", "")


def _nested(hint: Any) -> type | None:
    """The dataclass a field holds (also behind ``X | None``), else ``None``."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            return arg
    return None


def schema_fields(cls: type, prefix: str = "") -> Iterator[FieldInfo]:
    """Every leaf field of dataclass ``cls``, nested dataclasses flattened, in declaration order."""
    hints = typing.get_type_hints(cls)
    docs = attribute_docs(cls)
    for fd in dataclasses.fields(cls):
        path = f"{prefix}{fd.name}"
        nested = _nested(hints[fd.name])
        if nested is not None:
            yield from schema_fields(nested, f"{path}.")
            continue
        rules = {k: fd.metadata[k] for k in RULE_KEYS if k in fd.metadata}
        yield FieldInfo(path, type_name(hints[fd.name]), docs.get(fd.name, ""), rules)


def describe_rules(rules: Mapping[str, Any]) -> str:
    """``>= 0``, ``one of local, inline, ray`` …; '' without rules."""
    parts = []
    if "choices" in rules:
        parts.append("one of " + ", ".join(str(c) for c in rules["choices"]))
    if "gt" in rules:
        parts.append(f"> {rules['gt']}")
    if "min" in rules:
        parts.append(f">= {rules['min']}")
    if "max" in rules:
        parts.append(f"<= {rules['max']}")
    return ", ".join(parts)


def broken_rule(value: Any, rules: Mapping[str, Any]) -> bool:
    """Whether ``value`` (or an element of it, for a list) breaks ``rules``."""
    if isinstance(value, list | tuple):
        return any(broken_rule(v, rules) for v in value)
    if value is None or not rules:
        return False
    if "choices" in rules and value not in rules["choices"]:
        return True
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (
        ("min" in rules and value < rules["min"])
        or ("gt" in rules and value <= rules["gt"])
        or ("max" in rules and value > rules["max"])
    )
