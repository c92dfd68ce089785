"""The build's steps that need no Packer: options, variables, failures explained."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from builder.config.load import LoadedConfig
from builder.config.roles import RoleSet, compose
from builder.errors import BuildFailed, UserError
from builder.image import build
from builder.image.packer import PackerLog
from builder.progress import Event, EventKind


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


@dataclasses.dataclass
class FakeChecks:
    """InBuildChecks that failed two specs."""

    report_name: str = "report.xml"
    cleaned: bool = False

    def command(
        self, loaded: LoadedConfig, roles: RoleSet, work: Path, key: Path, packer_tmp: Path
    ) -> str:
        return f"check {roles.label} {key}"

    def cleanup(self, packer_tmp: Path) -> None:
        self.cleaned = True

    def failures(self, work: Path) -> list[str]:
        return ["FAIL a", "FAIL b"] if (work / self.report_name).exists() else []


def _run(loaded: LoadedConfig, tmp_path: Path, **options: object) -> build.BuildRun:
    roles = compose(loaded, ("slave",))
    run = build.BuildRun(
        loaded,
        roles,
        build.BuildOptions(output=tmp_path / "output", **options),  # type: ignore[arg-type]
        (1, 6, 6),
        Recorder(),
        "sha256:" + "a" * 64,
        "d" * 64,
    )
    run.work = tmp_path / "output" / ".slave.build-x"
    run.work.mkdir(parents=True)
    return run


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"target": build.Target.ISO, "checks": FakeChecks()}, "--verify runs inside a Packer"),
        ({"target": build.Target.ISO, "dry_run": True}, "--dry-run is for Packer builds"),
        ({"target": build.Target.QEMU, "repo_dir": Path("rpms")}, "--repo-dir is for --target"),
    ],
)
def test_options_that_do_not_go_together(options: dict[str, object], words: str) -> None:
    with pytest.raises(UserError, match=words):
        build.BuildOptions(**options)  # type: ignore[arg-type]


def test_build_variables_under_tcg_with_checks(loaded: LoadedConfig, tmp_path: Path) -> None:
    checks = FakeChecks()
    run = _run(loaded, tmp_path, checks=checks, headful=True)
    run.accelerator = "tcg"
    variables = build.build_variables(run, Path("/k/key")).arguments()
    assert variables["ssh_timeout"] == "14400s"  # 60m, 4x
    assert variables["headless"] == "false"
    assert variables["verify_command"] == "check slave /k/key"
    assert variables["http_directory"] == str(run.work / "render")
    assert "iso_url" not in variables  # no ISO resolved: the var file's
    run.accelerator = "kvm"
    assert build.build_variables(run, Path("/k")).ssh_timeout is None


def _log(run: build.BuildRun, *messages: str) -> PackerLog:
    log = PackerLog(run.work / "build.log", "slave", run.progress, run.started)
    for number, message in enumerate(messages):
        log(f"17956086{number:02d},,ui,error,{message}")
    return log


def test_an_ssh_timeout_is_explained(loaded: LoadedConfig, tmp_path: Path) -> None:
    run = _run(loaded, tmp_path)
    log = _log(run, "==> qemu.centos7: Timeout waiting for SSH.")
    failure = build._explain_failure(run, 1, log, build.build_variables(run, Path("k")))
    assert failure.message.startswith("the installed system did not answer SSH")
    assert "within 60m:" in failure.message
    assert failure.tail == ["==> qemu.centos7: Timeout waiting for SSH."]


def test_failed_specs_replace_packers_words(loaded: LoadedConfig, tmp_path: Path) -> None:
    run = _run(loaded, tmp_path, checks=FakeChecks())
    log = _log(run, "Script exited with non-zero exit status: 1")
    variables = build.build_variables(run, Path("k"))
    assert build._explain_failure(run, 1, log, variables).message == (
        "packer build failed with exit code 1"
    )
    (run.work / "report.xml").write_text("<testsuites/>")
    failure = build._explain_failure(run, 1, log, variables)
    assert failure.message == "the image failed 2 of its specs; nothing was kept"
    assert failure.tail == ["FAIL a", "FAIL b"]


def test_a_failure_keeps_the_logs_and_sends_failed(loaded: LoadedConfig, tmp_path: Path) -> None:
    run = _run(loaded, tmp_path, checks=FakeChecks())
    for name in ("build.log", "serial.log", "report.xml", "ks.cfg"):
        (run.work / name).write_text(name)
    error = BuildFailed("slave", "packer build failed with exit code 1", [], [])
    assert build._after_failure(run, error) is None
    failed = tmp_path / "output" / "slave.failed"
    assert sorted(p.name for p in failed.iterdir()) == ["build.log", "report.xml", "serial.log"]
    assert error.logs == [failed / "build.log", failed / "serial.log", failed / "report.xml"]
    assert isinstance(run.progress, Recorder)
    [event] = run.progress.events
    assert (event.event, event.detail) == (EventKind.FAILED, error.message)


def test_a_full_disk_becomes_one_line(loaded: LoadedConfig, tmp_path: Path) -> None:
    run = _run(loaded, tmp_path)
    replacement = build._after_failure(run, OSError(28, "No space left on device"))
    assert isinstance(replacement, UserError)
    assert replacement.message == f"{tmp_path / 'output'}: disk full during the build"
