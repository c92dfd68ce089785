"""A small, fast YAML serialiser for cloud-config documents.

cloud-init reads user-data with PyYAML (YAML 1.1), where `yes`, `0644` and
`10:30` are not strings. So this quotes conservatively: a string is written
plain only when it starts with a letter or `/` and is not a YAML 1.1 word;
anything else is a double-quoted JSON string (valid YAML); multi-line text that
ends in exactly one newline is a literal block. Mappings and lists of mappings
are block style; lists of strings are flow style (`[systemctl, start, x]`).
Literal blocks are memoised: a cluster's /etc/hosts is emitted once for all
its nodes. tests/unit/test_yamldump.py round-trips random documents through
ruamel and through cloud-init's own PyYAML.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9/_.@:+-]*")
_YAML11_WORDS = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"])
# Characters a YAML stream may not carry raw, or that YAML 1.1 reads as line breaks.
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if (
            _PLAIN.fullmatch(value)
            and value.lower() not in _YAML11_WORDS
            and not value.endswith(":")
        ):
            return value
        return _NOT_YAML_PRINTABLE.sub(
            lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False)
        )
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


# What a literal block may not hold: YAML's non-printables, \r, and what YAML
# 1.1 reads as a line break (NEL, LS, PS) or a byte-order mark.
_NOT_LITERAL = re.compile(
    "[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


def _literal_ok(text: str) -> bool:
    return (
        text.endswith("\n")
        and not text.endswith("\n\n")
        and text[:1] not in (" ", "\t", "\n")
        and _NOT_LITERAL.search(text) is None
    )


@functools.lru_cache(maxsize=512)
def _literal(text: str, indent: int) -> str:
    pad = " " * indent
    lines = text[:-1].split("\n")
    return "|\n" + "".join(f"{pad}{line}\n" if line else "\n" for line in lines)


def _value(value: object, indent: int) -> str:
    """The text after `key:` or `- `, including the line break(s)."""
    if isinstance(value, str) and "\n" in value and _literal_ok(value):
        return " " + _literal(value, indent + 2)
    if isinstance(value, Mapping):
        return "\n" + _mapping(value, indent + 2) if value else " {}\n"
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            return " []\n"
        if all(isinstance(item, str) for item in value):
            return " [" + ", ".join(scalar(item) for item in value) + "]\n"
        return "\n" + _sequence(value, indent + 2)
    return " " + scalar(value) + "\n"


def _mapping(document: Mapping[str, Any], indent: int, first_prefix: str = "") -> str:
    pad = " " * indent
    parts = []
    for position, (key, value) in enumerate(document.items()):
        if not isinstance(key, str):
            raise TypeError(f"mapping keys must be strings: {key!r}")
        prefix = first_prefix if position == 0 and first_prefix else pad
        parts.append(f"{prefix}{scalar(key)}:{_value(value, indent)}")
    return "".join(parts)


def _sequence(items: Sequence[Any], indent: int) -> str:
    pad = " " * indent
    parts = []
    for item in items:
        if isinstance(item, Mapping) and item:
            parts.append(_mapping(item, indent + 2, first_prefix=f"{pad}- "))
        else:
            parts.append(f"{pad}-{_value(item, indent)}")
    return "".join(parts)


def dump(document: Mapping[str, Any]) -> str:
    return _mapping(document, 0)
