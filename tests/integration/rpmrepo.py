"""The stand-in RPM repositories for the tests: built once, cached, served on loopback.

tests/fixtures/rpmrepo/ (its README.md is the contract) builds, from one table,
RPMs under the real package names, a test GPG key, and the variants signed/,
unsigned/, tampered/ and newer/, each split into the os/, mesos/ and extras/
repositories. `build_rpmrepo` builds them into the test cache under the digest
of the fixture's files (and of the stand-in files the payloads come from),
once: a file lock serialises the pytest-xdist workers and a build is renamed
into place only when complete. `serve` answers them over HTTP on 127.0.0.1;
`dead_url` is a loopback URL nothing answers.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests import loopback
from tests.conftest import REPO, free_port, require_tool
from tests.integration.standin import CACHE

FIXTURE = REPO / "tests" / "fixtures" / "rpmrepo"
# The payloads' sources (units, config files, the stand-in daemon) live with the node stand-in.
PAYLOAD_SOURCES = REPO / "tests" / "fixtures" / "standin" / "files"
VARIANTS = ("signed", "unsigned", "tampered", "newer")
REPOS = ("os", "mesos", "extras")
KEY_NAME = "RPM-GPG-KEY-builder-test"


def _files(directory: Path) -> list[Path]:
    return sorted(
        path for path in directory.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    )


def fixture_digest() -> str:
    """sha256 over the fixture's files and the payload sources (relative names and contents)."""
    digest = hashlib.sha256()
    for base in (FIXTURE, PAYLOAD_SOURCES):
        for path in _files(base):
            digest.update(f"{base.name}/{path.relative_to(base)}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_rpmrepo(cache: Path = CACHE) -> Path:
    """The cached repository tree (CACHE/rpmrepo/<digest>/), built first when missing."""
    for tool in ("rpmbuild", "rpmsign", "gpg", "gpgconf", "createrepo_c"):
        require_tool(tool)
    parent = cache / "rpmrepo"
    target = parent / fixture_digest()
    if (target / "COMPLETE").exists():
        return target
    parent.mkdir(parents=True, exist_ok=True)
    with (parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it
        if (target / "COMPLETE").exists():
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f".build-{target.name}.", dir=parent))
        try:
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, str(FIXTURE / "build.py"), str(scratch / "tree")],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode != 0:
                raise RuntimeError(f"RPM repository build failed:\n{result.stderr[-4000:]}")
            seconds = time.monotonic() - started
            (scratch / "tree" / "COMPLETE").write_text(
                f"digest={target.name}\nseconds={seconds:.1f}\n"
            )
            shutil.rmtree(target, ignore_errors=True)  # an incomplete leftover
            (scratch / "tree").rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


@functools.cache
def packages() -> list[dict[str, Any]]:
    """The table's entries (tests/fixtures/rpmrepo/packages.toml)."""
    table: list[dict[str, Any]] = tomllib.loads((FIXTURE / "packages.toml").read_text())["package"]
    return table


@dataclass(frozen=True)
class RpmRepos:
    """The cache tree and, once served, its base URL (ending in /)."""

    root: Path
    base_url: str = ""

    @property
    def key(self) -> Path:
        """The public key every signed RPM verifies with (ASCII armour)."""
        return self.root / KEY_NAME

    @property
    def key_url(self) -> str:
        return self.base_url + KEY_NAME

    def path(self, variant: str, repo: str) -> Path:
        """A repository directory, e.g. path("signed", "mesos")."""
        if variant not in VARIANTS or repo not in REPOS:
            raise ValueError(f"no repository {variant}/{repo}")
        return self.root / variant / repo

    def url(self, variant: str, repo: str) -> str:
        self.path(variant, repo)
        return f"{self.base_url}{variant}/{repo}/"

    def rpm(self, variant: str, name: str) -> Path:
        """The file of package `name` in a variant (whichever repository holds it)."""
        (found,) = [
            path
            for repo in REPOS
            for path in self.path(variant, repo).glob(f"{name}-*.rpm")
            if path.name.rsplit("-", 2)[0] == name
        ]
        return found


class _QuietHandler(SimpleHTTPRequestHandler):
    """Files as a mirror's web server serves them, single byte ranges included (RFC 9110:
    `Range: bytes=N-` answers 206 with the rest); each request noted in `requests`."""

    def __init__(
        self, *args: Any, requests: list[tuple[str, str]], auth: str | None, **kwargs: Any
    ) -> None:
        self.requests = requests
        self.auth = auth
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        self.requests.append((self.path, self.headers.get("Range", "")))
        if self.auth is not None:  # HTTP basic authentication, as a private mirror asks
            token = base64.b64encode(self.auth.encode()).decode()
            if self.headers.get("Authorization", "") != f"Basic {token}":
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        wanted = self.headers.get("Range", "")
        path = Path(self.translate_path(self.path))
        if not wanted.startswith("bytes=") or not wanted.endswith("-") or not path.is_file():
            return super().send_head()
        start, size = int(wanted[6:-1]), path.stat().st_size
        if start >= size:
            self.send_error(416)
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return handle


@contextmanager
def serve(
    root: Path, requests: list[tuple[str, str]] | None = None, auth: str | None = None
) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1 (a free port); yields the base URL. Each
    request's path and Range header go to `requests` when given; with `auth`
    ("user:password") every request needs that HTTP basic authentication."""
    handler = functools.partial(
        _QuietHandler,
        directory=str(root),
        requests=requests if requests is not None else [],
        auth=auth,
    )
    with loopback.serving(handler) as url:
        yield f"{url}/"


def dead_url() -> str:
    """A loopback URL that refuses connections (a port bound, then closed)."""
    return f"http://127.0.0.1:{free_port()}/"


def write_config(
    directory: Path, repos: RpmRepos, variant: str = "signed", urls: dict[str, str] | None = None
) -> Path:
    """A copy of the embedded default config whose repositories are these stand-ins:
    os.yaml's `base` (os/) and `extras` (extras/), the roles' `mesosphere` (mesos/).
    `urls` replaces a repository's baseurl by name (a dead one, another variant)."""
    from ruamel.yaml import YAML

    from builder.config.load import embedded_config_dir

    shutil.copytree(embedded_config_dir(), directory, ignore=shutil.ignore_patterns("__*"))
    chosen = {"base": "os", "extras": "extras", "mesosphere": "mesos"}
    yaml = YAML()

    def repo(name: str) -> dict[str, Any]:
        url = (urls or {}).get(name) or repos.url(variant, chosen[name])
        return {"name": name, "baseurl": url, "gpgkey": [f"file://{repos.key}"]}

    for path, names in [
        (directory / "os.yaml", ["base", "extras"]),
        (directory / "roles" / "master.yaml", ["mesosphere"]),
        (directory / "roles" / "slave.yaml", ["mesosphere"]),
    ]:
        document = yaml.load(path)
        document["repos"] = [repo(name) for name in names]
        yaml.dump(document, path)
    return directory


def make_mirror(config: Path, role: str, mirror: Path) -> None:
    """`builder mirror ROLE --to MIRROR` with `config`, as a user runs it; it must succeed."""
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "builder",
            "--config",
            str(config),
            "mirror",
            role,
            "--to",
            str(mirror),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    if made.returncode != 0:
        raise AssertionError(f"builder mirror failed:\n{made.stderr}")


def offline_build(repos: RpmRepos, root: Path) -> tuple[Path, Path]:
    """A build's config with every configured repository dead and an 8 GB disk, and a
    mirror of master,slave (which holds every role set's packages, the JRE included):
    a build from it needs no network. Returns (config, mirror)."""
    mirror = root / "mirror"
    make_mirror(write_config(root / "live", repos), "master,slave", mirror)
    dead = dead_url()
    config = write_config(
        root / "roles-config", repos, urls=dict.fromkeys(["base", "extras", "mesosphere"], dead)
    )
    os_yaml = config / "os.yaml"
    text = os_yaml.read_text().replace("  size_gb: 20", "  size_gb: 8")
    # One vCPU: under TCG a second one costs the 2-core host CPU more than it saves
    os_yaml.write_text(text.replace("  cpus: 2\n", "  cpus: 1\n"))
    return config, mirror
