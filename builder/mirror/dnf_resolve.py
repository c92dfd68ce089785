"""Resolve package specs against repositories with dnf's own Python API.

Run by the interpreter of the host's `dnf` (Debian's too), not by builder's
own: dnf's bindings live in the system's Python. It reads one JSON request on
standard input and writes one JSON answer on standard output, nothing else:

    request: {"root": DIR, "cache": DIR, "releasever": "7", "arch": "x86_64",
              "timeout": SECONDS, "repos": [{"name", "baseurl"}], "specs": ["@core", "mesos"]}
    answer:  {"packages": [{"name", "epoch", "version", "release", "arch", "repo",
              "location", "url", "checksum_type", "checksum", "size"}],
              "comps": {REPO: PATH}}
         or  {"error": {"kind": "repo" | "package" | "depsolve", "subject", "message"}}

Only the standard library and dnf are imported here (builder is not on this
interpreter's path).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def resolve(request: dict[str, Any]) -> dict[str, Any]:
    import dnf
    import dnf.exceptions
    import hawkey

    base = dnf.Base()
    conf = base.conf
    conf.installroot = request["root"]
    conf.cachedir = request["cache"]
    conf.reposdir = []
    conf.substitutions["releasever"] = request["releasever"]
    conf.substitutions["basearch"] = request["arch"]
    conf.substitutions["arch"] = request["arch"]
    conf.arch = request["arch"]
    conf.ignorearch = True
    conf.install_weak_deps = False  # CentOS 7's yum knows no weak dependencies
    conf.gpgcheck = False  # builder checks each RPM's signature itself, after download
    conf.retries = 1
    conf.timeout = request["timeout"]
    conf.skip_if_unavailable = False
    for repo in request["repos"]:
        base.repos.add_new_repo(
            repo["name"], conf, baseurl=[repo["baseurl"]], skip_if_unavailable=False
        )
        base.repos[repo["name"]].enable()
    try:
        base.fill_sack(load_system_repo=False)
    except dnf.exceptions.RepoError as exc:
        return _error("repo", _failed_repo(str(exc), request), str(exc))
    base.read_comps(arch_filter=True)
    for spec in request["specs"]:
        try:
            if spec.startswith("@"):
                group = base.comps.group_by_pattern(spec[1:])
                if group is None:
                    return _error("package", spec, f"no repository has the group {spec}")
                base.group_install(group.id, dnf.const.GROUP_PACKAGE_TYPES)
            else:
                base.install(spec)
        except dnf.exceptions.MarkingError:
            return _error("package", spec, f"no repository has the package {spec}")
    try:
        base.resolve()
    except dnf.exceptions.DepsolveError as exc:
        return _error("depsolve", "", " ".join(str(exc).split()))
    packages = []
    for package in sorted(base.transaction.install_set, key=str):
        kind, digest = package.chksum
        packages.append(
            {
                "name": package.name,
                "epoch": package.epoch,
                "version": package.version,
                "release": package.release,
                "arch": package.arch,
                "repo": package.reponame,
                "location": package.location,
                "url": package.remote_location(),
                "checksum_type": hawkey.chksum_name(kind),
                "checksum": digest.hex(),
                "size": package.downloadsize,
            }
        )
    comps = {}
    for repo in base.repos.iter_enabled():
        path = repo.get_metadata_path("group_gz") or repo.get_metadata_path("group")
        if path:
            comps[repo.id] = path
    return {"packages": packages, "comps": comps}


def _failed_repo(message: str, request: dict[str, Any]) -> str:
    for repo in request["repos"]:
        if f"'{repo['name']}'" in message or f'"{repo["name"]}"' in message:
            return str(repo["name"])
    return ""


def _error(kind: str, subject: str, message: str) -> dict[str, Any]:
    return {"error": {"kind": kind, "subject": subject, "message": message}}


if __name__ == "__main__":
    answer = resolve(json.load(sys.stdin))
    json.dump(answer, sys.stdout)
