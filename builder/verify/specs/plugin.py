"""The pytest plugin behind `builder verify`: fixtures, parameters, and the results.

`node` is the testinfra Host of the machine under test; `image`/`node_contract`
are the contracts computed from the config (builder/contract.py); every spec
reports through `check(what, expected, found)`, which keeps the three for the
summary and the JUnit report (as properties) and fails the spec when they
differ. Parameters come from the contract, so each file, package, unit and
port is a check of its own.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from builder.verify.contract import HttpLogin, ImageContract, NodeContract

Check = Callable[..., None]


@dataclass
class Observation:
    what: str
    expected: object
    found: object
    passed: bool


@dataclass
class Outcome:
    """One spec's result: its checks, or the error that stopped it."""

    nodeid: str
    passed: bool
    observations: list[Observation] = field(default_factory=list)
    error: str = ""


def _id(value: object) -> str:
    for attribute in ("path", "name", "unit"):
        if hasattr(value, attribute):
            return str(getattr(value, attribute))
    if isinstance(value, tuple):
        return str(value[0])
    return str(value)


class SpecPlugin:
    """Registered by builder.verify for one run against one host."""

    def __init__(self, host: Any, image: ImageContract | None, node: NodeContract | None) -> None:
        self.host = host
        self.image = image
        self.node_contract = node
        self.outcomes: list[Outcome] = []
        self.probe = Probe(host, node.login if node else None, node.ca_file if node else None)
        self._observations: dict[str, list[Observation]] = {}

    # -- fixtures --------------------------------------------------------
    @pytest.fixture(name="node")
    def node_fixture(self) -> Any:
        return self.host

    @pytest.fixture(name="image")
    def image_fixture(self) -> ImageContract:
        if self.image is None:
            pytest.skip("no image contract in this run")
        return self.image

    @pytest.fixture(name="contract")
    def contract_fixture(self) -> NodeContract:
        if self.node_contract is None:
            pytest.skip("no node contract in this run")
        return self.node_contract

    @pytest.fixture(name="probe")
    def probe_fixture(self) -> Probe:
        """What several specs ask the node, asked once per run."""
        return self.probe

    @pytest.fixture(name="check")
    def check_fixture(self, request: pytest.FixtureRequest) -> Check:
        observations = self._observations.setdefault(request.node.nodeid, [])

        def check(what: str, expected: object, found: object, passed: bool | None = None) -> None:
            ok = found == expected if passed is None else passed
            observations.append(Observation(what, expected, found, ok))
            request.node.user_properties += [
                ("check", what),
                ("expected", repr(expected)),
                ("found", repr(found)),
            ]
            if not ok:
                pytest.fail(f"{what}: expected {expected!r}, found {found!r}", pytrace=False)

        return check

    # -- parameters from the contract ------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        values: dict[str, tuple[Any, ...]] = {}
        if self.image is not None:
            values |= {
                "package": self.image.packages,
                "managed_file": self.image.files,
                "unit_state": self.image.units,
                "account": self.image.users,
            }
        if self.node_contract is not None:
            contract = self.node_contract
            values |= {
                "first_boot_file": contract.files,
                "service": contract.services,
                "idle_unit": contract.idle_units,
                "listening": contract.listening,
                "plain_http": contract.plain_http,
                "zone": contract.zones,
                "secret_file": contract.secret_files,
                "api": contract.apis,
            }
        for name, params in values.items():
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, params, ids=[_id(value) for value in params])

    # -- results ---------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.skipped:
                return
            lines = [line for line in report.longreprtext.splitlines() if line.strip()]
            error = lines[-1].strip() if report.failed and lines else ""
            self.outcomes.append(
                Outcome(
                    report.nodeid, report.passed, self._observations.get(report.nodeid, []), error
                )
            )


# A fetch that works on CentOS 7 (curl) and on a minimal Debian (python3), and
# retries for a while: a service started by first boot may still be coming up. With a
# login, the password is read from its root-only file on the node (never carried here).
# With a CA file ($3), an https:// URL must present a certificate that CA signed for the
# URL's host name or address (curl's and python's own checks); otherwise the system's CAs.
_FETCH = (
    "for i in $(seq %s); do "
    'if [ -n "$1" ]; then printf \'user = "%%s:%%s"\\n\' "$1" "$(cat -- "$2")" | '
    'curl -fsSL --max-time 5 ${3:+--cacert "$3"} -K - "$0" 2>/dev/null && exit 0; '
    'else curl -fsSL --max-time 5 ${3:+--cacert "$3"} "$0" 2>/dev/null && exit 0; fi; '
    "python3 -c 'import base64, ssl, sys, urllib.request as u; r = u.Request(sys.argv[1]); "
    'a = sys.argv[2] and (sys.argv[2] + ":" + open(sys.argv[3]).read().strip()); '
    'a and r.add_header("Authorization", "Basic " + base64.b64encode(a.encode()).decode()); '
    "c = ssl.create_default_context(cafile=sys.argv[4] or None); "
    "sys.stdout.write(u.urlopen(r, timeout=5, context=c).read().decode())' "
    '"$0" "$1" "$2" "$3" 2>/dev/null && exit 0; sleep 1; done; exit 1'
)
# What a stranger gets: the status line and the WWW-Authenticate header, no credentials
# (over TLS only once the certificate checks out, as above: else no answer).
_STATUS = (
    "for i in $(seq 30); do "
    'curl -s -o /dev/null -D - --max-time 5 ${1:+--cacert "$1"} "$0" 2>/dev/null | '
    'tr -d "\\r" | grep -iE "^(HTTP/|WWW-Authenticate:)" && exit 0; '
    "python3 -c 'import ssl, sys, urllib.request as u, urllib.error as e\n"
    "c = ssl.create_default_context(cafile=sys.argv[2] or None)\n"
    'try:\n r = u.urlopen(sys.argv[1], timeout=5, context=c); print("HTTP/1.1 %d" % r.status)\n'
    'except e.HTTPError as x:\n print("HTTP/1.1 %d" % x.code)\n'
    ' x.headers.get("WWW-Authenticate") and '
    'print("WWW-Authenticate: " + x.headers["WWW-Authenticate"])\' '
    '"$0" "$1" 2>/dev/null && exit 0; sleep 1; done; exit 1'
)


# The ACLs of the masters' zk path and of the leading master's znode under it, read on the
# node with ZooKeeper's own wire protocol (a node has no ZooKeeper client library; CentOS 7
# has python 2.7, the stand-in python 3: the script is both): `HOST PORT PATH` -> a line
# "path ACL" and a line "leader ACL", each ACL "scheme:user perms, ..." sorted (a digest id
# shows its user only) or what stood in the way. The path's ACL governs who may add a
# contender or delete one, the leader's who may rewrite its record. Read-only: it asks for
# two ACLs and lists PATH's children, as any client may.
_ZK_ACLS = """\
import socket, struct, sys, time


def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise IOError("connection closed")
        data += chunk
    return data


def call(sock, payload):
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    return read(sock, struct.unpack(">i", read(sock, 4))[0])


def string(data, pos):
    n = struct.unpack(">i", data[pos:pos + 4])[0]
    return data[pos + 4:pos + 4 + max(n, 0)].decode(), pos + 4 + max(n, 0)


def ustr(text):
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw


def acl_of(sock, xid, znode):
    reply = call(sock, struct.pack(">ii", xid, 6) + ustr(znode))
    err = struct.unpack(">i", reply[12:16])[0]
    if err:
        return "error %d reading the ACL of %s" % (err, znode)
    count, pos, acl = struct.unpack(">i", reply[16:20])[0], 20, []
    for _ in range(count):
        perms = struct.unpack(">i", reply[pos:pos + 4])[0]
        scheme, pos = string(reply, pos + 4)
        ident, pos = string(reply, pos)
        acl.append("%s:%s %d" % (scheme, ident.split(":")[0], perms))
    return ", ".join(sorted(acl))


def leader_acl(sock, path):
    reply = call(sock, struct.pack(">ii", 2, 8) + ustr(path) + struct.pack("B", 0))
    err = struct.unpack(">i", reply[12:16])[0]
    if err:
        return "error %d listing %s" % (err, path)
    count, pos, names = struct.unpack(">i", reply[16:20])[0], 20, []
    for _ in range(count):
        name, pos = string(reply, pos)
        names.append(name)
    leaders = sorted(n for n in names if n.startswith("json.info_"))
    if not leaders:
        return "no json.info_ znode under %s" % path
    return acl_of(sock, 3, path + "/" + leaders[0])


host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for attempt in range(30):  # ZooKeeper may still be starting
    try:
        sock = socket.create_connection((host, port), 10)
        break
    except socket.error:
        time.sleep(1)
else:
    print("path nothing answers on %s:%d" % (host, port))
    print("leader nothing answers on %s:%d" % (host, port))
    sys.exit(0)
call(sock, struct.pack(">iqiq", 0, 0, 10000, 0) + ustr(chr(0) * 16))
print("path " + acl_of(sock, 1, path))
print("leader " + leader_acl(sock, path))
"""
_RUN_PYTHON = 'python3 -c "$0" "$@" 2>/dev/null || python -c "$0" "$@"'


# Each readable file as "= PATH BASE64" on one line (paths have no spaces: the model says so).
_READ_FILES = (
    'for f in PATHS; do [ -r "$f" ] && [ -f "$f" ] && printf "= %s %s\\n" "$f" '
    '"$(base64 -w0 < "$f")"; done; true'
)


# Several files' mode, owner and SHA-256 as "= PATH MODE USER:GROUP SUM" lines (a file that
# is not there: no line); never their content.
_FILE_DIGESTS = (
    'for f in PATHS; do [ -f "$f" ] && printf "= %s %s %s\\n" "$f" '
    '"$(stat -c "%a %U:%G" -- "$f")" "$(sha256sum -- "$f" | cut -d " " -f 1)"; done; true'
)
# Several units' enablement and state as "= UNIT|ENABLED|ACTIVE" lines.
_UNITS = (
    'for u in UNITS; do printf "= %s|%s|%s\\n" "$u" '
    '"$(systemctl is-enabled -- "$u" 2>/dev/null)" "$(systemctl is-active -- "$u" 2>/dev/null)"; '
    "done"
)
# The running firewalld in one command (each firewall-cmd is a Python start: seconds on a
# small node): its default zone, then every zone as `--info-zone` shows one.
# firewalld's runtime in one command. firewall-cmd gives up with "FirewallD is not running"
# (exit 252) when firewalld does not answer its D-Bus call in time, as on a node short of
# CPU: it is asked again, six times 5 s apart, before verify calls it not answering.
_FIREWALL = (
    "for try in 1 2 3 4 5 6; do "
    "out=$(firewall-cmd --get-default-zone && firewall-cmd --list-all-zones) "
    '&& printf "%s\\n" "$out" && exit 0; '
    "sleep 5; done; exit 1"
)


@dataclass(frozen=True)
class ZnodeAcls:
    """The masters' zk path's ACL and the leading master's znode's, as `_ZK_ACLS` reads them."""

    path: str
    leader: str


@dataclass(frozen=True)
class RunningFirewall:
    """firewalld's runtime: the default zone, and each zone's settings as key -> value with
    the header's state (active, default) under "state"."""

    default: str
    zones: dict[str, dict[str, str]]

    @classmethod
    def parse(cls, text: str) -> RunningFirewall:
        lines = text.splitlines()
        default = lines[0].strip() if lines else ""
        zones: dict[str, dict[str, str]] = {}
        settings: dict[str, str] = {}
        for line in lines[1:]:
            if not line.strip():
                continue
            if not line[0].isspace():  # a zone's header: NAME or NAME (active, default)
                name, _, state = line.partition(" (")
                settings = zones.setdefault(name.strip(), {"state": state.rstrip(")").strip()})
            else:
                key, _, value = line.strip().partition(":")
                settings[key] = value.strip()
        return cls(default, zones)


class Probe:
    """Answers the node gives once per run: HTTP bodies, its listening sockets, files and
    the running firewall."""

    def __init__(
        self, node: Any, login: HttpLogin | None = None, ca_file: str | None = None
    ) -> None:
        self.node = node
        self.login = login
        self.ca_file = ca_file or ""
        self._bodies: dict[str, str | None] = {}
        self._sockets: list[str] | None = None
        self._files: dict[str, str | None] = {}
        self._secrets: dict[str, str] | None = None
        self._units: dict[str, str] | None = None
        self._firewall: RunningFirewall | None = None
        self._firewall_asked = False  # firewalld not answering is an answer too (None)
        self.firewall_error = ""  # then firewall-cmd's last error line
        self._zk_acls: ZnodeAcls | None = None

    def http(self, url: str, attempts: int = 30) -> str | None:
        """The body at `url` as seen from the node itself, or None when it never answered."""
        if url not in self._bodies:
            user, password_file = (
                (self.login.user, self.login.password_file) if self.login else ("", "")
            )
            result = self.node.run(
                "sh -c %s %s %s %s %s",
                _FETCH.replace("%s", str(attempts), 1).replace("%%", "%"),
                url,
                user,
                password_file,
                self.ca_file,
            )
            self._bodies[url] = str(result.stdout) if result.rc == 0 else None
        return self._bodies[url]

    def stranger(self, url: str) -> str:
        """What `url` answers a client without credentials: status and challenge, one line."""
        result = self.node.run("sh -c %s %s %s", _STATUS, url, self.ca_file)
        if result.rc != 0:
            return "no answer"
        lines = [line.strip() for line in str(result.stdout).splitlines() if line.strip()]
        status = next((line.split()[1] for line in lines if line.startswith("HTTP/")), "?")
        challenge = next(
            (
                line.split(":", 1)[1].strip()
                for line in lines
                if ":" in line and line.lower().startswith("www-authenticate")
            ),
            "",
        )
        return f"{status} {challenge}".strip()

    def files(self, paths: Sequence[str]) -> dict[str, str | None]:
        """Several files' contents in one command (None for a file that cannot be read)."""
        missing = [path for path in paths if path not in self._files]
        if missing:
            command = _READ_FILES.replace("PATHS", " ".join(map(shlex.quote, missing)))
            listing = self.node.run(command)
            for line in listing.stdout.splitlines():
                mark, _, rest = line.partition(" ")
                path, _, encoded = rest.partition(" ")
                if mark == "=" and path in missing:
                    self._files[path] = base64.b64decode(encoded).decode("utf-8", "replace")
            for path in missing:
                self._files.setdefault(path, None)
        return {path: self._files[path] for path in paths}

    def secret_files(self, paths: Sequence[str]) -> dict[str, str]:
        """Each file's "MODE USER:GROUP sha256:SUM" (SUM whole), or "missing"; one command."""
        if self._secrets is None:
            self._secrets = {}
            command = _FILE_DIGESTS.replace("PATHS", " ".join(map(shlex.quote, paths)))
            result = self.node.run(command)
            for line in str(result.stdout).splitlines():
                fields = line.split(" ")
                if len(fields) == 5 and fields[0] == "=" and fields[1] in paths:
                    self._secrets[fields[1]] = f"{fields[2]} {fields[3]} sha256:{fields[4]}"
        return {path: self._secrets.get(path, "missing") for path in paths}

    def units(self, units: Sequence[str]) -> dict[str, str]:
        """Each unit's "ENABLED, ACTIVE" as systemctl says them ("unknown": it says
        neither); one command."""
        if self._units is None:
            self._units = {}
            result = self.node.run(_UNITS.replace("UNITS", " ".join(map(shlex.quote, units))))
            for line in str(result.stdout).splitlines():
                mark, _, rest = line.partition(" ")
                unit, *states = rest.split("|")
                if mark == "=" and unit in units:
                    self._units[unit] = ", ".join(state for state in states if state)
        return {unit: self._units.get(unit) or "unknown" for unit in units}

    def firewall(self) -> RunningFirewall | None:
        """The running firewalld, asked once (None when it does not answer)."""
        if not self._firewall_asked:
            result = self.node.run(_FIREWALL)
            self._firewall_asked = True
            if result.rc == 0:
                self._firewall = RunningFirewall.parse(str(result.stdout))
            else:
                errors = [line for line in str(result.stderr).splitlines() if line.strip()]
                self.firewall_error = errors[-1].strip() if errors else f"exit {result.rc}"
        return self._firewall

    def zk_acls(self, host: str, port: int, path: str) -> ZnodeAcls:
        """The ACLs of `path` and of the leading master's znode under it, as ZooKeeper
        answers them (asked once: two specs read them)."""
        if self._zk_acls is None:
            self._zk_acls = self._ask_zk_acls(host, port, path)
        return self._zk_acls

    def _ask_zk_acls(self, host: str, port: int, path: str) -> ZnodeAcls:
        result = self.node.run("sh -c %s %s %s %s %s", _RUN_PYTHON, _ZK_ACLS, host, str(port), path)
        answered = dict(
            line.strip().split(" ", 1)
            for line in str(result.stdout).splitlines()
            if result.rc == 0 and " " in line.strip()
        )
        missing = "no answer from ZooKeeper"
        return ZnodeAcls(answered.get("path", missing), answered.get("leader", missing))

    def listening(self) -> list[str]:
        """Listening sockets as testinfra writes them: tcp://0.0.0.0:5050, ..."""
        if self._sockets is None:
            self._sockets = list(self.node.socket.get_listening_sockets())
        return self._sockets


def read_file(node: Any, path: str) -> str | None:
    """A file's content in one command (None when it cannot be read)."""
    result = node.run("cat -- %s", path)
    return str(result.stdout) if result.rc == 0 else None
