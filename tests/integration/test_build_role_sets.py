"""Every role set through Packer: master and master,slave (slave: test_build.py).

One `builder build master master,slave --verify` (the two build in parallel) boots
the installer stand-in under Packer and QEMU, installs each role set from a mirror
with every configured repository dead, and runs the image specs inside each build.
The installed disks are then read back: each holds its own role set's RPMs and units.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from builder.fsutil import sha256_of
from tests.integration.rpmrepo import RpmRepos, offline_build
from tests.integration.standin import DiskReader
from tests.integration.vmslots import vm_slots

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.usefixtures("one_vm_slot")]
ISO_NAME = "CentOS-7-x86_64-Minimal-standin.iso"
ROLE_SETS = {"master": "master", "master,slave": "master-slave"}


@pytest.fixture(scope="module")
def built(
    standin: Path, rpmrepo: RpmRepos, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("role-sets")
    config, mirror = offline_build(rpmrepo, root)
    iso = standin / ISO_NAME
    # One VM per role set at once: the module holds one slot (one_vm_slot), this the rest.
    with vm_slots(len(ROLE_SETS) - 1):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "builder",
                "--config",
                str(config),
                "build",
                *ROLE_SETS,
                "--verify",
                "--iso",
                str(iso),
                "--iso-checksum",
                f"sha256:{sha256_of(iso)}",
                "--mirror",
                str(mirror),
                "--out",
                str(root / "output"),
            ],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=3600,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    return result, root / "output"


@pytest.mark.parametrize("label", list(ROLE_SETS))
def test_the_role_set_builds_and_passes_its_image_specs(
    built: tuple[subprocess.CompletedProcess[str], Path], label: str
) -> None:
    result, output = built
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    directory = output / ROLE_SETS[label]
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["role"] == label
    assert manifest["verified"] is True
    suite = ET.parse(directory / "verify.xml").getroot().find("testsuite")  # noqa: S314 - ours
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    checks = {p.get("value") for p in suite.iter("property") if p.get("name") == "check"}
    wanted = {"master: package marathon", "master: package chronos", "unit zookeeper at boot"}
    if "slave" in label:
        wanted |= {"slave: package docker", "unit mesos-slave at boot"}
    assert wanted <= checks, sorted(wanted - checks)
    if "slave" not in label:
        assert "slave: package docker" not in checks


@pytest.mark.parametrize("label", list(ROLE_SETS))
def test_the_disk_holds_its_role_set_and_units(
    built: tuple[subprocess.CompletedProcess[str], Path], label: str, tmp_path: Path
) -> None:
    """Read back from the disk: the roles file and the units provision.sh left: none
    enabled until first boot, the other role's masked (the mesos %post had enabled both
    mesos-master and mesos-slave)."""
    result, output = built
    assert result.returncode == 0, result.stderr[-3000:]
    directory = output / ROLE_SETS[label]
    manifest = json.loads((directory / "manifest.json").read_text())
    [qcow2] = [a["path"] for a in manifest["artifacts"] if a["format"] == "qcow2"]
    reader = DiskReader(directory / qcow2, tmp_path)
    try:
        assert reader.read("/etc/builder/roles") == f"{label}\n"
        wants = "/etc/systemd/system/multi-user.target.wants"
        for unit in ("mesos-master", "mesos-slave"):
            assert reader.link(f"{wants}/{unit}.service") == "", f"{unit} enabled in the image"
        masked = reader.link("/etc/systemd/system/mesos-slave.service") == "/dev/null"
        assert masked == ("slave" not in label)
    finally:
        reader.close()
