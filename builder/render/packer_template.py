"""The role's Packer template (build.pkr.hcl) and its variables (build.pkrvars.json)."""

from __future__ import annotations

from typing import Any

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet

# Packer 1.7 brought `packer init` and required_plugins; 1.6 rejects that block.
MODERN_PACKER = (1, 7, 0)
LATEST_KNOWN_PACKER = (1, 11, 2)


def modern_packer(version: tuple[int, int, int]) -> bool:
    return version >= MODERN_PACKER


def packer_variables(loaded: LoadedConfig, roles: RoleSet) -> dict[str, Any]:
    """What the Packer template reads from roles-config/ (build.pkrvars.json)."""
    os_config = loaded.config.os
    aws = os_config.aws
    return {
        "role": roles.slug,
        "iso_url": os_config.install.iso_url,
        "iso_checksum": os_config.install.iso_checksum,
        "cpus": os_config.packer.cpus,
        "memory_mb": os_config.packer.memory_mb,
        "disk_size": f"{os_config.disk.size_gb}G",
        "boot_wait": os_config.packer.boot_wait,
        "ssh_timeout": os_config.packer.ssh_timeout,
        "vm_name": f"mesos-{roles.slug}.qcow2",
        "aws_region": aws.region,
        "aws_instance_type": aws.instance_type,
        "aws_source_ami_owners": list(aws.source_ami_owners),
        "aws_source_ami_name": aws.source_ami_name,
        "aws_ssh_username": aws.ssh_username,
        "aws_volume_size_gb": aws.volume_size_gb,
        "ami_name": f"mesos-{roles.slug}-centos-{os_config.release}",
    }
