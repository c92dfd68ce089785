"""provision.sh: the values it shares with Python come from Python, once.

The literals the image and its checks share (the build key's comment, the
role marker, the repo file) live in builder/render/, reach the template as
values, and are never spelled in a template; unit states are one function.
"""

from __future__ import annotations

import re
import shlex

import pytest

from builder.config.load import LoadedConfig
from builder.config.roles import compose
from builder.render import provision
from builder.render.kickstart import BUILD_KEY_COMMENT
from builder.render.provision import (
    ROLES_FILE,
    YUM_REPO_FILE,
    BakedState,
    image_files,
    provision_script,
    unit_states,
)
from builder.render.templates import template_environment
from builder.resources import resource_dir

SHARED_LITERALS = (BUILD_KEY_COMMENT, ROLES_FILE, YUM_REPO_FILE, YUM_REPO_FILE.rsplit("/", 1)[1])


@pytest.mark.parametrize("template", ["provision.sh.j2", "ks.cfg.j2"])
def test_templates_do_not_spell_the_shared_literals(template: str) -> None:
    text = (resource_dir("kickstart") / template).read_text()
    assert [literal for literal in SHARED_LITERALS if literal in text] == []


def test_the_build_key_comment_reaches_the_seal_step(
    loaded: LoadedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provision, "BUILD_KEY_COMMENT", "another-key-comment")
    script = provision_script(loaded, compose(loaded, ("slave",)), template_environment())
    assert "sed -i '/ another-key-comment$/d' \"$file\"" in script
    assert "sed -i '/another-key-comment/d' \"$file\"" in script
    assert BUILD_KEY_COMMENT not in script


@pytest.mark.parametrize("names", [("master",), ("slave",), ("master", "slave")])
def test_the_script_writes_every_image_file(loaded: LoadedConfig, names: tuple[str, ...]) -> None:
    """Each file the contract expects is a write_file line of the script, mode and owner too."""
    roles = compose(loaded, names)
    script = provision_script(loaded, roles, template_environment())
    files = image_files(loaded, roles)
    assert {ROLES_FILE, YUM_REPO_FILE} <= {spec.path for spec in files}
    for spec in files:
        quoted = [shlex.quote(value) for value in (spec.path, spec.owner, spec.content)]
        line = f"write_file {quoted[0]} {spec.mode} {quoted[1]} {quoted[2]}"
        assert line in script, spec.path


def test_unit_states() -> None:
    states = unit_states(("zookeeper", "mesos-slave", "docker"), ("docker", "extra"))
    assert states == {
        "zookeeper": BakedState.MASKED,
        "mesos-slave": BakedState.MASKED,
        "docker": BakedState.DISABLED,
        "extra": BakedState.DISABLED,
    }


def _loop_units(script: str, command: str) -> list[str]:
    """The units of the `for unit in ...; do systemctl COMMAND` loop of the script."""
    match = re.search(rf"for unit in ([^;]*); do\n[^\n]*\n?[^\n]*systemctl {command} ", script)
    return match.group(1).split() if match else []


@pytest.mark.parametrize("names", [("master",), ("slave",), ("master", "slave")])
def test_the_script_sets_the_unit_states(loaded: LoadedConfig, names: tuple[str, ...]) -> None:
    roles = compose(loaded, names)
    script = provision_script(loaded, roles, template_environment())
    states = unit_states(loaded.config.os.stack_units, roles.services)
    assert _loop_units(script, "disable") == list(states)
    assert _loop_units(script, "mask") == [
        unit for unit, state in states.items() if state is BakedState.MASKED
    ]
