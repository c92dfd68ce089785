"""The role's Packer variables, typed once (PackerVars), and the template's forms.

Every variable of build.pkr.hcl is a field of `PackerVars`, with its HCL type,
its HCL default (where the template has one) and its description. From those
fields come the template's `variable` blocks, the var file
(build.pkrvars.json, the values roles-config/ gives) and the `-var` values a
build or `packer validate` passes. A value of None is not given: Packer then
takes the template's default (or refuses a variable that has none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet

# Packer 1.7 brought `packer init` and required_plugins; 1.6 rejects that block.
MODERN_PACKER = (1, 7, 0)
LATEST_KNOWN_PACKER = (1, 11, 2)


def modern_packer(version: tuple[int, int, int]) -> bool:
    return version >= MODERN_PACKER


def image_name(slug: str) -> str:
    """The image Packer writes, and `builder build` keeps: mesos-SLUG.qcow2 (.raw)."""
    return f"mesos-{slug}"


class TemplateForm(StrEnum):
    """A part of the template present only in some builds (and the variables it reads)."""

    VERIFY = "verify"  # build --verify: the image specs run inside the build
    MIRROR = "mirror"  # build --mirror --target ami: the mirror is copied into the instance


def _var(
    hcl: str, *, default: Any = None, description: str = "", form: TemplateForm | None = None
) -> Any:
    """A Packer variable: its HCL type, the template's default, what it is."""
    metadata = {
        "hcl": hcl,
        "default": default,
        "description": description,
        "form": form,
    }
    return field(default=None, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class PackerVars:
    """The values of the Packer template's variables, in the template's order."""

    role: str | None = _var(
        "string",
        description="The role set, as directory names write it: master, slave, master-slave.",
    )
    iso_url: str | None = _var("string")
    iso_checksum: str | None = _var("string", description="sha256:HEX of the installer ISO.")
    accelerator: str | None = _var(
        "string", default="kvm", description="kvm, or tcg where KVM does not work (much slower)."
    )
    cpus: int | None = _var("number")
    memory_mb: int | None = _var("number")
    disk_size: str | None = _var("string")
    boot_wait: str | None = _var("string")
    ssh_timeout: str | None = _var("string")
    headless: bool | None = _var("bool", default=True)
    http_directory: str | None = _var(
        "string", description="Served by Packer's HTTP server: holds ks.cfg."
    )
    http_port_min: int | None = _var(
        "number",
        default=8000,
        description="Packer's HTTP server port range (one port when a mirror is served).",
    )
    http_port_max: int | None = _var("number", default=9000)
    provision_script: str | None = _var("string")
    ssh_private_key_file: str | None = _var(
        "string", description="This build's own key; the kickstart carries only its public half."
    )
    output_directory: str | None = _var("string", default="output")
    vm_name: str | None = _var("string")
    serial_log: str | None = _var("string", default="serial.log")
    manifest: str | None = _var("string", default="packer-manifest.json")
    verify_command: str | None = _var(
        "string",
        description="builder verify for this role set's image layer (builder build --verify).",
        form=TemplateForm.VERIFY,
    )
    mirror_directory: str | None = _var(
        "string",
        description="The mirror (builder mirror) copied into the instance to install from.",
        form=TemplateForm.MIRROR,
    )
    aws_region: str | None = _var("string")
    aws_instance_type: str | None = _var("string")
    aws_source_ami_owners: tuple[str, ...] | None = _var("list(string)")
    aws_source_ami_name: str | None = _var("string")
    aws_ssh_username: str | None = _var("string")
    aws_volume_size_gb: int | None = _var("number")
    ami_name: str | None = _var("string")

    @classmethod
    def from_config(cls, loaded: LoadedConfig, roles: RoleSet) -> PackerVars:
        """What the template reads from roles-config/ (the var file)."""
        os_config = loaded.config.os
        aws = os_config.aws
        return cls(
            role=roles.slug,
            iso_url=os_config.install.iso_url,
            iso_checksum=os_config.install.iso_checksum,
            cpus=os_config.packer.cpus,
            memory_mb=os_config.packer.memory_mb,
            disk_size=f"{os_config.disk.size_gb}G",
            boot_wait=os_config.packer.boot_wait,
            ssh_timeout=os_config.packer.ssh_timeout,
            vm_name=f"{image_name(roles.slug)}.qcow2",
            aws_region=aws.region,
            aws_instance_type=aws.instance_type,
            aws_source_ami_owners=tuple(aws.source_ami_owners),
            aws_source_ami_name=aws.source_ami_name,
            aws_ssh_username=aws.ssh_username,
            aws_volume_size_gb=aws.volume_size_gb,
            ami_name=f"{image_name(roles.slug)}-centos-{os_config.release}",
        )

    def given(self) -> dict[str, Any]:
        """The variables that have a value, as JSON values (the var file's content)."""
        values = {}
        for var in fields(self):
            value = getattr(self, var.name)
            if value is not None:
                values[var.name] = list(value) if isinstance(value, tuple) else value
        return values

    def var_file(self) -> str:
        """build.pkrvars.json: sorted, deterministic."""
        return json.dumps(self.given(), indent=2, sort_keys=True) + "\n"

    def arguments(self) -> dict[str, str]:
        """The given variables as `-var NAME=VALUE` strings (HCL's spelling of a bool)."""
        return {
            name: json.dumps(value) if isinstance(value, bool | list) else str(value)
            for name, value in self.given().items()
        }


def hcl_variables(forms: frozenset[TemplateForm]) -> str:
    """The template's `variable` blocks, one per field of PackerVars, each followed by a
    blank line (a form's own variables only in a template of that form)."""
    blocks = []
    for var in fields(PackerVars):
        if var.metadata["form"] is not None and var.metadata["form"] not in forms:
            continue
        attributes = [("type", var.metadata["hcl"])]
        if var.metadata["default"] is not None:
            attributes.append(("default", json.dumps(var.metadata["default"])))
        if var.metadata["description"]:
            attributes.append(("description", json.dumps(var.metadata["description"])))
        width = max(len(key) for key, _ in attributes)
        body = "".join(f"  {key:<{width}} = {value}\n" for key, value in attributes)
        blocks.append(f'variable "{var.name}" {{\n{body}}}\n\n')
    return "".join(blocks)
