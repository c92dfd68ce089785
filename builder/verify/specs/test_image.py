"""The image layer: what a freshly built image of the role set must be.

Every Mesos-stack unit is present and disabled (the units the image never
runs are masked), so nothing starts before first boot writes the node's
configuration; the role's packages, files, firewall ports and SELinux mode
are as configured; and nothing a template must not carry is left.
"""

from __future__ import annotations

import re
from typing import Any

from builder.config.model import ManagedFile
from builder.verify.contract import ImageContract, RolePackage, UnitState
from builder.verify.specs.plugin import Check, read_file

SELINUX_CONFIG = "/etc/selinux/config"
FIREWALLD_CONF = "/etc/firewalld/firewalld.conf"
CLOUD_STATE = "/var/lib/cloud"
# Where a kickstart and the build's key could have left a copy of themselves.
# firewalld's zone XML, read without an XML parser (the host is what is under test).
_PORT_ELEMENT = re.compile(r"<port\b([^>]*)>")
_SERVICE_ELEMENT = re.compile(r"<service\b([^>]*)>")
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
KEY_FILES_GLOB = "/root/.ssh/authorized_keys /home/*/.ssh/authorized_keys /root/*ks.cfg"


# What rpm -q prints of an installed package (NAME VERSION-RELEASE); a name the database
# does not hold gives "package NAME is not installed" and exit 1.
RPM_QUERY = "rpm -q --qf '%%{NAME} %%{VERSION}-%%{RELEASE}\\n' -- %s"


def test_package_installed(node: Any, package: RolePackage, check: Check) -> None:
    """From the RPM database, as CentOS keeps it (not whatever package manager
    testinfra would guess for the host)."""
    result = node.run(RPM_QUERY, package.name)
    lines = result.stdout.strip().splitlines()
    installed = result.rc == 0 and bool(lines) and lines[0].split(" ")[0] == package.name
    if installed:
        found = f"installed ({lines[0].split(' ', 1)[1]})"
    else:
        found = (result.stdout + result.stderr).strip() or f"rpm -q exited {result.rc}"
    check(f"{package.role}: package {package.name}", "installed", found, installed)


def test_unit_present_and_not_enabled(node: Any, unit_state: UnitState, check: Check) -> None:
    result = node.run("systemctl is-enabled %s", f"{unit_state.unit}.service")
    found = result.stdout.strip() or "no such unit"
    check(f"unit {unit_state.unit} at boot", unit_state.state, found)


def test_file_content(node: Any, managed_file: ManagedFile, check: Check) -> None:
    check(f"{managed_file.path} content", managed_file.content, read_file(node, managed_file.path))


def test_file_mode_and_owner(node: Any, managed_file: ManagedFile, check: Check) -> None:
    result = node.run("stat -c '%%04a %%U' -- %s", managed_file.path)
    found = result.stdout.strip() if result.rc == 0 else "missing"
    check(f"{managed_file.path} mode, owner", f"{managed_file.mode} {managed_file.owner}", found)


def _default_zone(node: Any) -> str:
    text = read_file(node, FIREWALLD_CONF) or ""
    match = re.search(r"^DefaultZone=(\S+)", text, re.MULTILINE)
    return match.group(1) if match else "public"


def firewall_opens(zone_xml: str) -> str:
    """What a zone file opens, as one line: its services, then its ports (none: -)."""
    services = sorted(
        dict(_ATTRIBUTE.findall(element)).get("name", "?")
        for element in _SERVICE_ELEMENT.findall(zone_xml)
    )
    ports = [
        f"{attributes.get('port')}/{attributes.get('protocol')}"
        for element in _PORT_ELEMENT.findall(zone_xml)
        for attributes in [dict(_ATTRIBUTE.findall(element))]
    ]
    return f"services: {' '.join(services) or '-'}; ports: {' '.join(ports) or '-'}"


def test_firewall_opens_only_ssh(node: Any, image: ImageContract, check: Check) -> None:
    """Permanent firewalld config, as the kickstart's `firewall` line and
    firewall-offline-cmd write it (the package's own zone file when neither changed it):
    SSH and nothing else until first boot shapes the firewall."""
    zone = _default_zone(node)
    text = read_file(node, f"/etc/firewalld/zones/{zone}.xml")
    if text is None:
        text = read_file(node, f"/usr/lib/firewalld/zones/{zone}.xml")
    found = firewall_opens(text) if text is not None else f"no zone file for {zone}"
    expected = f"services: {' '.join(image.firewall_services)}; ports: -"
    check(f"firewall default zone {zone} before first boot", expected, found)


def test_selinux_mode(node: Any, image: ImageContract, check: Check) -> None:
    """The mode the image boots with: SELINUX= in /etc/selinux/config, as anaconda writes it."""
    text = read_file(node, SELINUX_CONFIG)
    match = re.search(r"^SELINUX=(\S+)", text or "", re.MULTILINE)
    found = match.group(1) if match else f"no SELINUX= line in {SELINUX_CONFIG}"
    check("SELinux mode", image.selinux, found)


def test_no_ssh_host_keys(node: Any, check: Check) -> None:
    keys = node.run("ls -1 /etc/ssh/ | grep '^ssh_host_' || true").stdout.split()
    check("SSH host keys in /etc/ssh", [], keys)


def test_machine_id_empty(node: Any, check: Check) -> None:
    check("/etc/machine-id", "", read_file(node, "/etc/machine-id"))


def test_no_cloud_init_instance_state(node: Any, check: Check) -> None:
    """Nothing cloud-init would take as this machine's own past: the `instance` link
    (dangling too), a cached instance under instances/ (its datasource and per-instance
    semaphores), a per-once semaphore under sem/. An image carrying any of them would
    boot as the machine it was built on, skipping what first boot must do."""
    listing = node.run(
        "cd %s 2>/dev/null || exit 0; "
        "for entry in instance instances/* instances/.[!.]* sem/* sem/.[!.]*; do "
        '{ [ -e "$entry" ] || [ -L "$entry" ]; } && echo "$entry"; done; true',
        CLOUD_STATE,
    )
    check(f"cloud-init state in {CLOUD_STATE}", [], sorted(listing.stdout.split()))


def test_no_build_key(node: Any, image: ImageContract, check: Check) -> None:
    result = node.run(f"grep -l -s -e %s {KEY_FILES_GLOB} || true", image.build_key_comment)
    check(f"files holding the build key ({image.build_key_comment})", [], result.stdout.split())


def test_password_locked_or_hashed(node: Any, account: str, check: Check) -> None:
    """No plaintext or empty password: locked (! or *) or a SHA-512 crypt hash."""
    line = node.run("getent shadow %s", account).stdout.strip()
    field = line.split(":")[1] if line.count(":") >= 2 else None
    if field is None:
        found = "no such account"
    elif field.startswith(("!", "*")):
        found = "locked"
    elif field.startswith("$6$"):
        found = "SHA-512 hash"
    else:
        found = "empty password" if field == "" else "not a SHA-512 hash"
    check(
        f"password of {account}",
        "locked or SHA-512 hash",
        found,
        found in ("locked", "SHA-512 hash"),
    )


def _plaintext_password(line: str) -> bool:
    """A kickstart rootpw/user line that carries a password not given as a crypt hash."""
    words = line.split()
    if "--iscrypted" in words:
        return False
    if words[0] == "user":
        return any(word.startswith("--password=") for word in words)
    return any(not word.startswith("--") for word in words[1:])


def test_no_plaintext_password_in_kickstarts(node: Any, check: Check) -> None:
    listing = node.run("grep -H -s -E '^(rootpw|user) ' /root/*ks.cfg || true").stdout
    found = sorted(
        {
            entry.split(":", 1)[0]
            for entry in listing.splitlines()
            if ":" in entry and _plaintext_password(entry.split(":", 1)[1])
        }
    )
    check("kickstart copies with a plaintext password", [], found)
