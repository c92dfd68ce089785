"""The typed config model: OS, roles and cluster.

One frozen model drives parsing (builder/load.py), validation, the JSON Schema
(`builder schema`) and the values the templates see. Every string that reaches
a kickstart, a shell script or an HCL string is constrained here first, so a
value smuggling a newline, a quote or `$(...)` never gets that far.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

MASTER_ROLE = "master"
SLAVE_ROLE = "slave"


def _pattern(regex: str) -> StringConstraints:
    return StringConstraints(strict=True, pattern=regex)


# What each pattern means, for error messages a person can act on.
PATTERN_MEANINGS: dict[str, str] = {}


def _named(regex: str, meaning: str) -> StringConstraints:
    PATTERN_MEANINGS[regex] = meaning
    return _pattern(regex)


RoleName = Annotated[
    str,
    _named(r"^[a-z][a-z0-9_]{0,31}$", "a role name: lower-case letters, digits and _"),
]
RepoId = Annotated[
    str, _named(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", "a repo id: letters, digits, . _ -")
]
PackageName = Annotated[
    str,
    _named(
        r"^@?[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$",
        "a package or @group name: letters, digits, . _ + -",
    ),
]
UnitName = Annotated[
    str,
    _named(r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$", "a systemd unit name: letters, digits, @ . _ -"),
]
Url = Annotated[
    str,
    _named(
        r"^(https?|ftp|file)://[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+$",
        "an http(s)://, ftp:// or file:// URL without spaces, quotes, $ or backslashes",
    ),
]
SHA256_CHECKSUM = r"^sha256:[0-9a-f]{64}$"
Sha256 = Annotated[str, _named(SHA256_CHECKSUM, "sha256: followed by 64 lower-case hex digits")]
RelativeOrAbsolutePath = Annotated[
    str,
    _named(
        r"^/?[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*/?$",
        "a path of letters, digits and . _ @ + - (relative to the config directory, or /...)",
    ),
]
AbsolutePath = Annotated[
    str,
    _named(
        r"^(/[A-Za-z0-9._@+-]+)+$",
        "an absolute path of letters, digits and . _ @ + - (no spaces, no trailing /)",
    ),
]


def _quoted_mode(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f"mode {value} is a number: quote it, like '0644' (YAML reads 0644 as the number 644)"
        )
    return value


FileMode = Annotated[
    str,
    BeforeValidator(_quoted_mode),
    _named(r"^0[0-7]{3}$", "a quoted octal mode like '0644'"),
]
LinuxUser = Annotated[
    str, _named(r"^[a-z_][a-z0-9_-]{0,31}$", "a user name: lower-case letters, digits, _ -")
]
SshPublicKey = Annotated[
    str,
    _named(
        r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com)"
        r" [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9._@:+-]+)?$",
        "an OpenSSH public key: TYPE BASE64 [COMMENT], comment of letters, digits, . _ @ : + -",
    ),
]
Sha512Crypt = Annotated[
    str,
    _named(
        r"^\$6\$(rounds=[0-9]{4,9}\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}$",
        "a SHA-512 crypt hash ($6$SALT$HASH, e.g. from `openssl passwd -6`)",
    ),
]
Timezone = Annotated[
    str,
    _named(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$", "a tz database name like UTC or Europe/Paris"),
]
Locale = Annotated[
    str,
    _named(r"^[a-z]{2,3}_[A-Z]{2}(\.[A-Za-z0-9-]+)?(@[a-z]+)?$", "a locale like en_US.UTF-8"),
]
Keymap = Annotated[str, _named(r"^[a-z0-9_-]{1,32}$", "a console keymap like us or de-latin1")]
DiskDevice = Annotated[
    str, _named(r"^[a-z][a-z0-9]{1,15}$", "a disk name like vda, sda or nvme0n1")
]
KernelArg = Annotated[
    str,
    _named(
        r"^[A-Za-z0-9_.-]+(=[A-Za-z0-9_.,:/-]+)?$", "a kernel argument like console=ttyS0,115200n8"
    ),
]
Duration = Annotated[str, _named(r"^[0-9]+(s|m|h)$", "a duration like 90s, 60m or 2h")]
SysctlKey = Annotated[
    str, _named(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$", "a sysctl key like vm.swappiness")
]
OneLine = Annotated[
    str,
    _named(r"^[^\x00-\x1f\x7f\"'`$\\]*$", "one line of text without quotes, $, ` or backslashes"),
]
AwsRegion = Annotated[str, _named(r"^[a-z]{2}(-[a-z]+)+-[0-9]$", "an AWS region like us-east-1")]
SsmPath = Annotated[
    str, _named(r"^(/[A-Za-z0-9_.-]{1,64}){1,4}$", "an SSM parameter path such as /mesos-secrets")
]
KmsKey = Annotated[
    str,
    _named(
        r"^(alias/[A-Za-z0-9/_-]{1,250}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
        r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]{1,250})$",
        "a KMS key: alias/NAME, a key id or a key ARN (IAM cannot grant by alias ARN)",
    ),
]
AWS_ACCOUNT_ID = r"^[0-9]{12}$"
AwsAccount = Annotated[str, _named(AWS_ACCOUNT_ID, "a 12-digit AWS account id")]
InstanceType = Annotated[str, _named(r"^[a-z0-9]+[a-z0-9-]*\.[a-z0-9]+$", "an instance type")]
AmiNameFilter = Annotated[
    str, _named(r"^[A-Za-z0-9 ._*?()/-]{1,128}$", "an AMI name filter (letters, digits, * ?)")
]


def _hostname(value: str) -> str:
    labels = value.split(".")
    ok = len(value) <= 253 and all(
        1 <= len(label) <= 63
        and label[0].isalnum()
        and label[-1].isalnum()
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    )
    if not ok:
        raise ValueError(
            f"{value!r} is not a valid hostname (RFC 1123: letters, digits and -, "
            "1-63 per dot-separated label, no leading or trailing -)"
        )
    return value


def _ipv4(value: str) -> str:
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IPv4 address") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise ValueError(f"{value!r} cannot be a node's address")
    return value


def _ipv4_network(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IPv4 network like 10.86.255.0/24 ({exc})") from None
    return value


Hostname = Annotated[StrictStr, AfterValidator(_hostname)]
IPv4 = Annotated[StrictStr, AfterValidator(_ipv4)]
IPv4Network = Annotated[StrictStr, AfterValidator(_ipv4_network)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Port(Model):
    """A port or a range, TCP unless said otherwise. YAML: 5050, "31000-32000", "53/udp"."""

    start: StrictInt = Field(ge=1, le=65535)
    end: StrictInt = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"

    @model_validator(mode="before")
    @classmethod
    def _from_short_form(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("a port is a number or a range like '31000-32000'")
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str):
            spec, _, protocol = value.partition("/")
            first, dash, last = spec.partition("-")
            if not first.isdigit() or (dash and not last.isdigit()):
                raise ValueError(f"{value!r} is not a port like 5050, '31000-32000' or '53/udp'")
            start, end = int(first), int(last or first)
            for port in (start, end):
                if not 1 <= port <= 65535:
                    raise ValueError(f"port {port} is outside 1-65535")
            parsed: dict[str, object] = {"start": start, "end": end}
            if protocol:
                parsed["protocol"] = protocol
            return parsed
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Port:
        if self.end < self.start:
            raise ValueError(f"port range {self.start}-{self.end} ends before it starts")
        return self

    @property
    def _span(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"

    @property
    def firewalld(self) -> str:
        """As firewalld writes it: 5050/tcp, 31000-32000/tcp."""
        return f"{self._span}/{self.protocol}"

    @property
    def kickstart(self) -> str:
        """As the kickstart firewall --port option writes it: 5050:tcp."""
        return f"{self._span}:{self.protocol}"


class Repo(Model):
    """A yum repository: used by the kickstart (repo) and written to /etc/yum.repos.d."""

    name: RepoId
    description: OneLine = ""
    baseurl: Url
    gpgcheck: StrictBool = True
    gpgkey: tuple[Url, ...] = ()

    @model_validator(mode="after")
    def _keys_when_checked(self) -> Repo:
        if self.gpgcheck and not self.gpgkey:
            raise ValueError(f"repo {self.name!r} has gpgcheck on but no gpgkey")
        return self


class ManagedFile(Model):
    """A file a role writes into the image."""

    path: AbsolutePath
    content: StrictStr
    mode: FileMode = "0644"
    owner: LinuxUser = "root"


class Role(Model):
    """roles/<name>.yaml: what a role installs and how it is configured."""

    description: OneLine = ""
    repos: tuple[Repo, ...] = ()
    packages: tuple[PackageName, ...] = Field(min_length=1)
    services: tuple[UnitName, ...] = Field(
        default=(), description="units enabled and started at first boot, in this order"
    )
    ports: tuple[Port, ...] = Field(
        default=(),
        description="ports the cluster's networks reach on a node of this role (task ports), "
        "besides its services' own, which first boot always opens to the cluster's networks "
        "(ZooKeeper's, Mesos') or the admin networks (the UIs: Mesos', Marathon's, Chronos')",
    )
    sysctls: dict[SysctlKey, OneLine] = Field(default_factory=dict)
    files: tuple[ManagedFile, ...] = ()


class InstallMedia(Model):
    iso_url: Url
    iso_checksum: Sha256
    url: Url = Field(description="the install tree the kickstart's `url` command points at")


class DiskLayout(Model):
    device: DiskDevice | None = Field(
        default=None, description="only use this disk (ignoredisk --only-use); all disks if unset"
    )
    size_gb: StrictInt = Field(default=20, ge=8, le=16384)
    boot_mb: StrictInt = Field(default=1024, ge=256, le=8192)
    fstype: Literal["xfs", "ext4"] = "xfs"


class AdminUser(Model):
    name: LinuxUser = "centos"
    ssh_authorized_keys: tuple[SshPublicKey, ...] = ()
    password_hash: Sha512Crypt | None = Field(
        default=None, description="SHA-512 crypt hash; the password is locked when unset"
    )


class PackerSettings(Model):
    cpus: StrictInt = Field(default=2, ge=1, le=64)
    memory_mb: StrictInt = Field(default=2048, ge=512, le=262144)
    ssh_timeout: Duration = "60m"
    boot_wait: Duration = "10s"


class AwsSettings(Model):
    region: AwsRegion = "us-east-1"
    instance_type: InstanceType = "t3.medium"
    source_ami_owners: tuple[AwsAccount, ...] = Field(default=("125523088429",), min_length=1)
    source_ami_name: AmiNameFilter = "CentOS 7*x86_64*"
    ssh_username: LinuxUser = "centos"
    volume_size_gb: StrictInt = Field(default=20, ge=8, le=16384)


class OsConfig(Model):
    """os.yaml: the operating system every role's image starts from."""

    release: Literal["7.9.2009"] = "7.9.2009"
    install: InstallMedia
    repos: tuple[Repo, ...] = Field(min_length=1)
    base_packages: tuple[PackageName, ...] = ("@core", "cloud-init", "cloud-utils-growpart")
    locale: Locale = "en_US.UTF-8"
    keyboard: Keymap = "us"
    timezone: Timezone = "UTC"
    selinux: Literal["enforcing", "permissive", "disabled"] = "enforcing"
    disk: DiskLayout = DiskLayout()
    root_password_hash: Sha512Crypt | None = Field(
        default=None, description="SHA-512 crypt hash; root is locked when unset"
    )
    admin: AdminUser = AdminUser()
    kernel_args: tuple[KernelArg, ...] = ("console=tty0", "console=ttyS0,115200n8")
    stack_units: tuple[UnitName, ...] = Field(
        description="every unit the Mesos-stack packages may enable: all are disabled at bake time"
    )
    installer_finish: Literal["reboot", "poweroff"] = Field(
        default="poweroff",
        description="what an unattended ISO install does when done (a Packer build always reboots)",
    )
    packer: PackerSettings = PackerSettings()
    aws: AwsSettings = AwsSettings()
    mirror: RelativeOrAbsolutePath | None = Field(
        default=None,
        description="a mirror made by `builder mirror` (relative to this config directory): "
        "every build installs from it and nothing else",
    )

    def mirror_path(self, config_dir: Path) -> Path | None:
        """The mirror directory, relative paths taken from the config directory."""
        return None if self.mirror is None else config_dir / self.mirror


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


InterfaceName = Annotated[
    str, _named(r"^[a-z][a-z0-9]{0,14}$", "an interface name like eth0 or ens3")
]
MacAddress = Annotated[
    str, _named(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", "a MAC address like 52:54:00:12:34:56")
]
MesosKey = Annotated[str, _named(r"^[a-z][a-z0-9_]{0,31}$", "a name like rack or cpus")]
MesosValue = Annotated[
    str,
    _named(
        r"^[A-Za-z0-9_.:/()\[\],-]{1,128}$",
        "a value like r1, 4 or [31000-32000] (letters, digits, . : / ( ) [ ] , -)",
    ),
]


class StaticNetwork(Model):
    """A node's static address: the node's `ip` with this prefix, written to network-config."""

    interface: InterfaceName = "eth0"
    mac: MacAddress | None = Field(default=None, description="match the interface by MAC")
    prefix: StrictInt = Field(ge=1, le=32)
    gateway: IPv4 | None = None
    dns: tuple[IPv4, ...] = ()
    search: tuple[Hostname, ...] = ()


class Node(Model):
    hostname: Annotated[Hostname, BeforeValidator(_lower)]
    ip: IPv4
    roles: tuple[RoleName, ...] = Field(min_length=1)
    network: StaticNetwork | None = Field(
        default=None, description="a static address; DHCP on the first NIC when unset"
    )
    attributes: dict[MesosKey, MesosValue] = Field(
        default_factory=dict, description="slave attributes: /etc/mesos-slave/attributes/KEY"
    )
    resources: dict[MesosKey, MesosValue] = Field(
        default_factory=dict, description="slave resources: /etc/mesos-slave/resources/KEY"
    )
    ssh_authorized_keys: tuple[SshPublicKey, ...] = ()


class SsmSecrets(Model):
    """Where EC2 nodes fetch their secrets at first boot, instead of from user-data."""

    region: AwsRegion
    prefix: SsmPath = Field(
        default="/mesos-secrets",
        description="parameters are PREFIX/CLUSTER/HOSTNAME/PATH, one per secret file",
    )
    kms_key: KmsKey | None = Field(
        default=None, description="the KMS key of the SecureStrings; SSM's own (aws/ssm) if unset"
    )


class Cluster(Model):
    """cluster.yaml: the inventory first boot turns into each node's identity."""

    name: Annotated[str, _named(r"^[a-z0-9][a-z0-9-]{0,62}$", "a cluster name: a-z 0-9 -")]
    domain: Annotated[Hostname, BeforeValidator(_lower)] | None = Field(
        default=None, description="nodes' FQDN is HOSTNAME.DOMAIN when set"
    )
    network: IPv4Network | None = Field(
        default=None,
        description="the cluster's network (the single form of `networks`; not both): every "
        "node's IP must lie in it, e.g. 10.86.255.0/24",
    )
    networks: tuple[IPv4Network, ...] = Field(
        default=(),
        description="the cluster's networks: every node's IP must lie in one of them; they "
        "reach the cluster-internal ports (ZooKeeper, Mesos, task ports). When neither this "
        "nor `network` is set: each node's own address",
    )
    admin_networks: tuple[IPv4Network, ...] = Field(
        default=(),
        description="the networks that reach SSH and the web UIs and APIs (Mesos 5050, "
        "Marathon 8443 and Chronos 4443 over HTTPS; 8080 and 4400 with `security: none`); "
        "the cluster's networks when unset",
    )
    ssh_authorized_keys: tuple[SshPublicKey, ...] = Field(
        default=(), description="keys every node's admin user accepts, from its seed"
    )
    security: Literal["authenticated", "none"] = Field(
        default="authenticated",
        description="authenticated (the default): agents and frameworks authenticate to the "
        "Mesos masters, every HTTP API asks for basic authentication, Mesos and Marathon use "
        "ZooKeeper digest credentials and ACLs, with the secrets of `builder secrets init`; "
        "none: all of that off (a lab), with a warning at every seed and up",
    )
    ssm_secrets: SsmSecrets | None = Field(
        default=None,
        description="EC2 seeds (`seed --format ec2`) carry no secret: at first boot each node "
        "fetches its secret files from SSM Parameter Store, where `builder secrets push` puts "
        "them (SecureString)",
    )
    nodes: tuple[Node, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ssm_needs_secrets(self) -> Cluster:
        if self.ssm_secrets is not None and not self.secured:
            raise ValueError("ssm_secrets: a cluster with `security: none` has no secrets")
        return self

    @property
    def secured(self) -> bool:
        return self.security == "authenticated"

    @property
    def cluster_networks(self) -> tuple[str, ...]:
        """The cluster's networks: as given (either key), else each node's own address."""
        if self.networks:
            return self.networks
        if self.network is not None:
            return (self.network,)
        return tuple(dict.fromkeys(f"{node.ip}/32" for node in self.nodes))

    @property
    def admin_sources(self) -> tuple[str, ...]:
        """Who reaches SSH and the UIs: the admin networks, else the cluster's own."""
        return self.admin_networks or self.cluster_networks


class Config(Model):
    """Everything under roles-config/: os.yaml, roles/*.yaml and cluster.yaml."""

    os: OsConfig
    roles: dict[RoleName, Role] = Field(min_length=1)
    cluster: Cluster
