"""Values smuggling a newline, %post, $(...) or quotes: rejected, or quoted safely.

Layer 1: the model rejects them wherever a value reaches a kickstart, a shell
command line or an HCL string. Layer 2: free text (file contents) is quoted
for the shell and carried in the kickstart as base64, and the real bash and
the real pykickstart show it arrives intact and inert.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from builder.config.load import load_config
from builder.config.model import ManagedFile, OsConfig, Repo, Role
from builder.config.roles import compose
from builder.image.validate import validate_kickstart
from builder.render.role import KICKSTART, PROVISION, render_role
from builder.render.templates import kickstart_quote, shell_quote

BAD_APPLES = [
    "x\n%post\nrm -rf /\n%end",
    "x\r\nreboot",
    "$(reboot)",
    "`reboot`",
    "x'; reboot; echo '",
    'x" --foo="y',
    "x\\\nreboot",
    "${HOME}",
    "x\x00y",
    "trailing-newline\n",
]


@pytest.mark.parametrize("value", BAD_APPLES)
@pytest.mark.parametrize(
    ("model", "data_for"),
    [
        (Repo, lambda v: {"name": v, "baseurl": "http://a/", "gpgcheck": False}),
        (Repo, lambda v: {"name": "r", "baseurl": f"http://a/{v}", "gpgcheck": False}),
        (
            Repo,
            lambda v: {"name": "r", "baseurl": "http://a/", "description": v, "gpgcheck": False},
        ),
        (Role, lambda v: {"packages": [v]}),
        (Role, lambda v: {"packages": ["p"], "services": [v]}),
        (Role, lambda v: {"packages": ["p"], "sysctls": {"vm.swappiness": v}}),
        (Role, lambda v: {"packages": ["p"], "sysctls": {v: "1"}}),
        (ManagedFile, lambda v: {"path": f"/etc/{v}", "content": ""}),
        (ManagedFile, lambda v: {"path": "/etc/x", "content": "", "owner": v}),
    ],
)
def test_model_rejects_smuggled_values(value: str, model: type, data_for: object) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data_for(value))  # type: ignore[operator, attr-defined]


@pytest.mark.parametrize("value", BAD_APPLES)
@pytest.mark.parametrize(
    "field",
    [
        "timezone",
        "locale",
        "keyboard",
        "kernel_args",
        "root_password_hash",
        "admin.name",
        "admin.ssh_authorized_keys",
        "install.url",
        "install.iso_url",
    ],
)
def test_os_values_reject_smuggled_text(value: str, field: str, config_copy: Path) -> None:
    import json

    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load((config_copy / "os.yaml").read_text())
    target = data
    *parents, last = field.split(".")
    for part in parents:
        target = target[part]
    target[last] = (
        [f"ssh-ed25519 AAAA {value}"]
        if last.endswith("keys")
        else ([value] if last == "kernel_args" else value)
    )
    with pytest.raises(ValidationError):
        OsConfig.model_validate(json.loads(json.dumps(data)))


@pytest.mark.parametrize("value", [v for v in BAD_APPLES if "\x00" not in v])
def test_shell_quoting_round_trips_through_bash(value: str) -> None:
    result = subprocess.run(
        ["bash", "-c", f"printf '%s' {shell_quote(value)}"], capture_output=True, check=True
    )
    assert result.stdout == value.encode()


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b"])
def test_kickstart_quoting_refuses_line_breaks(value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        kickstart_quote(value)


def test_hostile_file_content_stays_inert(config_copy: Path, tmp_path: Path) -> None:
    """A role file whose content tries to end %post, start a section and run commands."""
    hostile = "line\n%end\n%post\ntouch /pwned\n%end\n$(touch /pwned2) `touch /pwned3` ' \" \\\n"
    slave = config_copy / "roles" / "slave.yaml"
    slave.write_text(
        slave.read_text().replace(
            "files:\n",
            "files:\n  - path: /etc/hostile\n    content: " + _yaml_string(hostile) + "\n",
            1,
        )
    )
    loaded = load_config(config_copy)
    rendered = render_role(loaded, compose(loaded, ("slave",)), packer_version=(1, 6, 6))
    kickstart = rendered.files[KICKSTART]
    # pykickstart sees exactly one %post, whose script carries the content encoded.
    assert validate_kickstart(kickstart, "ks.cfg") == []
    assert kickstart.count("%post") == 1
    assert "touch /pwned" not in kickstart
    # Run the provisioning script's write_file line for real into a scratch root.
    script = rendered.files[PROVISION]
    line = next(entry for entry in script.splitlines() if "write_file /etc/hostile" in entry)
    start = script.index(line)
    call = script[start : script.index("\n    write_file", start + 1)]
    root = tmp_path / "root"
    helper = script[script.index("write_file() {") : script.index("\nunit_installed")]
    subprocess.run(
        [
            "bash",
            "-c",
            f"set -eu\n{helper}\n{call.replace('/etc/hostile', str(root / 'hostile'))}".replace(
                " root ", f" {_me()} "
            ),
        ],
        check=True,
        cwd=tmp_path,
    )
    assert (root / "hostile").read_text() == hostile
    assert not Path("/pwned").exists()
    assert not Path("/pwned2").exists()
    assert (
        base64.b64decode(
            "".join(
                kickstart.split("<<'BUILDER_PROVISION'\n")[1]
                .split("\nBUILDER_PROVISION")[0]
                .split()
            )
        ).decode()
        == script
    )


def _yaml_string(text: str) -> str:
    import json

    return json.dumps(text)  # JSON strings are YAML double-quoted strings


def _me() -> str:
    import getpass

    return getpass.getuser()
