"""The one jinja2 environment and the quoting filters templates use.

StrictUndefined (a missing value is an error, not an empty string), trim_blocks;
values reach a kickstart through `ks` and a shell script through `sh`.
"""

from __future__ import annotations

import shlex

import jinja2

from builder.resources import resource_dir


class UnsafeValue(ValueError):
    """A value that cannot be written safely where a template puts it."""


def shell_quote(value: object) -> str:
    text = str(value)
    if "\x00" in text:
        raise UnsafeValue(f"a NUL byte cannot be quoted for the shell: {text!r}")
    return shlex.quote(text)


def kickstart_quote(value: object) -> str:
    """One kickstart argument: pykickstart splits lines with shlex, so quote like it."""
    text = str(value)
    if any(ch in text for ch in "\n\r\x00"):
        raise UnsafeValue(f"a kickstart argument cannot hold a line break: {text!r}")
    return shlex.quote(text)


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(
            [str(resource_dir("kickstart")), str(resource_dir("packer"))]
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - these are kickstarts, shell and HCL, not HTML
    )
    env.filters["sh"] = shell_quote
    env.filters["ks"] = kickstart_quote
    return env
