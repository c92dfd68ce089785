"""What a set of roles installs, resolved to exact packages against the configured
repositories (CentOS 7, x86_64), by the host's dnf.

dnf's bindings live in the system's Python, so builder runs `dnf_resolve.py`
with the interpreter of the host's `dnf` command and talks JSON to it. Nothing
is downloaded but repository metadata; a repository that does not answer, a
package no repository has and dependencies that cannot be met are bad input:
one line, exit 2.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builder import proc
from builder.config.load import LoadedConfig
from builder.config.model import Repo
from builder.config.roles import RoleSet
from builder.errors import ConfigError, Problem, UserError

RESOLVER = Path(__file__).resolve().parent / "dnf_resolve.py"
RELEASEVER = "7"
ARCH = "x86_64"
# Seconds a repository has to answer for its repomd.xml (all asked at once, before dnf):
# a dead or silent one fails the resolution this fast.
PROBE_TIMEOUT = 5.0
# dnf's own low-speed timeout for the metadata, once every repository has answered.
REPO_TIMEOUT = 30


@dataclass(frozen=True)
class PinnedPackage:
    """One RPM exactly: what the lock file records for it."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    repo: str
    location: str  # relative to the repository's baseurl
    checksum_type: str  # the repository's own checksum of the file
    checksum: str
    size: int

    @property
    def nevra(self) -> str:
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"

    @property
    def filename(self) -> str:
        return Path(self.location).name


@dataclass(frozen=True)
class Resolution:
    packages: tuple[PinnedPackage, ...]
    comps: dict[str, bytes]  # repository name -> its comps (group) XML


def install_specs(loaded: LoadedConfig, role_sets: Sequence[RoleSet]) -> tuple[str, ...]:
    """Every package and @group the role sets install: the OS's, then each role's."""
    specs = [*loaded.config.os.base_packages]
    for roles in role_sets:
        specs += roles.packages
    return tuple(dict.fromkeys(specs))


def source_repos(loaded: LoadedConfig, role_sets: Sequence[RoleSet]) -> tuple[Repo, ...]:
    """The OS's repositories and every role set's, each once; one name, one definition."""
    found: dict[str, Repo] = {}
    for repo in (*loaded.config.os.repos, *(r for roles in role_sets for r in roles.repos)):
        known = found.setdefault(repo.name, repo)
        if known != repo:
            raise ConfigError(
                [Problem("roles-config", None, f"repos.{repo.name}", "defined twice, differently")]
            )
    return tuple(found.values())


def dnf_interpreter() -> str:
    """The Python that runs the host's dnf (its bindings are installed for that one)."""
    dnf = Path(proc.require("dnf"))
    first = dnf.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    if not first.startswith("#!"):
        raise UserError(f"{dnf}: not the dnf command this builder knows (no #! line)")
    return first[2:].strip().split()[0]


def probe(repos: Sequence[Repo]) -> None:
    """Every repository answers for its repodata/repomd.xml within PROBE_TIMEOUT, all asked
    at once; the first that does not is a UserError naming it."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(repos))) as pool:
        answers = list(pool.map(_probe_one, repos))
    for repo, problem in zip(repos, answers, strict=True):
        if problem:
            raise UserError(
                f"repository {repo.name} ({proc.redact(repo.baseurl)}) does not answer: {problem}"
            )


def _probe_one(repo: Repo) -> str:
    """Why the repository's repomd.xml cannot be read, or "" when it can."""
    import socket
    import urllib.error
    import urllib.request

    from builder.mirror.download import authorized_request

    url = repo.baseurl.rstrip("/") + "/repodata/repomd.xml"
    if url.startswith("file://"):
        return "" if Path(url.removeprefix("file://")).is_file() else f"no {url}"
    try:
        with urllib.request.urlopen(authorized_request(url), timeout=PROBE_TIMEOUT) as answer:  # noqa: S310
            answer.read(1)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} for repodata/repomd.xml"
    except TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:g} s"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError | socket.timeout):
            return f"no answer within {PROBE_TIMEOUT:g} s"
        return str(reason)
    return ""


def resolve(repos: Sequence[Repo], specs: Sequence[str]) -> Resolution:
    """Exact packages (dependencies included) for `specs` from `repos` (each probed first)."""
    probe(repos)
    with tempfile.TemporaryDirectory(prefix="builder-resolve-") as scratch:
        request = {
            "root": str(Path(scratch) / "root"),
            "cache": str(Path(scratch) / "cache"),
            "releasever": RELEASEVER,
            "arch": ARCH,
            "timeout": REPO_TIMEOUT,
            "repos": [{"name": repo.name, "baseurl": repo.baseurl} for repo in repos],
            "specs": list(specs),
        }
        result = proc.run(
            [dnf_interpreter(), str(RESOLVER)], input_text=json.dumps(request), timeout=600
        )
        answer = json.loads(result.stdout)
        if "error" in answer:
            raise _resolution_error(answer["error"], repos)
        comps = {name: _read_comps(Path(path)) for name, path in answer["comps"].items()}
    packages = tuple(
        PinnedPackage(
            name=entry["name"],
            epoch=int(entry["epoch"]),
            version=entry["version"],
            release=entry["release"],
            arch=entry["arch"],
            repo=entry["repo"],
            location=entry["location"],
            checksum_type=entry["checksum_type"],
            checksum=entry["checksum"],
            size=int(entry["size"]),
        )
        for entry in answer["packages"]
    )
    return Resolution(tuple(sorted(packages, key=lambda p: p.nevra)), comps)


def _read_comps(path: Path) -> bytes:
    data = path.read_bytes()
    for magic, module in ((b"\x1f\x8b", gzip), (b"\xfd7zXZ", lzma), (b"BZh", bz2)):
        if data.startswith(magic):
            plain: bytes = module.decompress(data)
            return plain
    return data


def _resolution_error(error: dict[str, str], repos: Sequence[Repo]) -> UserError:
    kind, subject, message = error["kind"], error["subject"], proc.redact(error["message"])
    if kind == "repo":
        where = {repo.name: repo.baseurl for repo in repos}.get(subject, "")
        name = f"repository {subject} ({proc.redact(where)})" if subject else "a repository"
        return UserError(f"{name} does not answer: {_last_line(message)}")
    if kind == "package":
        searched = ", ".join(repo.name for repo in repos)
        return UserError(f"{subject}: no configured repository has it (searched: {searched})")
    return UserError(f"the packages' dependencies cannot be met: {message}")


def _last_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else message
