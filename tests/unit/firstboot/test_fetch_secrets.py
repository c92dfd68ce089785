"""The node's fetch_secrets.py when the network, the services or the disk misbehave: one
last line on stderr, exit 1, and nothing left behind. Against a loopback server whose
answers each test sets (the moto run is tests/integration/test_ssm_secrets.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from builder.firstboot import fetch_secrets
from tests import loopback

# (status, body) for a request, or None to send half a body and stall
Answer = tuple[int, bytes] | None
Route = Callable[[], Answer]
CREDENTIALS = {"Code": "Success", "AccessKeyId": "AKID", "SecretAccessKey": "s", "Token": "t"}
FILES = {"/etc/one": b"first secret\n", "/etc/deep/two": b"second secret"}


class Service:
    """IMDS and SSM on one loopback port: IMDS answers as it should unless told otherwise,
    SSM from `ssm`, a list of answers taken in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.imds: dict[str, Answer] = {
            "/latest/api/token": (200, b"token"),
            "/latest/meta-data/iam/security-credentials/": (200, b"node"),
            "/latest/meta-data/iam/security-credentials/node": (
                200,
                json.dumps(CREDENTIALS).encode(),
            ),
        }
        self.ssm: list[Answer] = [(200, b"{}")]
        self.calls = 0

    def answer(self, method: str, path: str) -> Answer:
        if method == "POST" and path == "/":
            self.calls += 1
            return self.ssm[min(self.calls, len(self.ssm)) - 1]
        return self.imds.get(path, (404, b""))


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    state = Service()

    class Handler(BaseHTTPRequestHandler):
        def handle_request(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found = state.answer(self.command, self.path)
            if found is None:  # a body that never comes whole
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"Param')
                self.wfile.flush()
                time.sleep(2)
                return
            status, body = found
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = handle_request

        def log_message(self, format: str, *args: object) -> None:
            pass

    with loopback.serving(Handler) as url:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", url)
        monkeypatch.setattr(fetch_secrets, "TIMEOUT", 0.5)
        monkeypatch.setattr(fetch_secrets, "PAUSE", 0)
        monkeypatch.setattr(fetch_secrets, "ATTEMPTS", 3)
        yield state


def _manifest(
    tmp_path: Path, files: dict[str, bytes] = FILES, modes: dict[str, str] | None = None
) -> Path:
    """The manifest of `files`; a mode only where `modes` gives one (0600 by default)."""
    entries: list[dict[str, str]] = [
        {"path": path, "parameter": f"/p/n{path}", "sha256": hashlib.sha256(data).hexdigest()}
        for path, data in files.items()
    ]
    for entry in entries:
        if modes and entry["path"] in modes:
            entry["mode"] = modes[entry["path"]]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"region": "eu-west-1", "endpoint": "unused", "files": entries}))
    return path


def _parameters(files: dict[str, bytes] = FILES) -> tuple[int, bytes]:
    found = [
        {"Name": f"/p/n{path}", "Value": base64.b64encode(data).decode()}
        for path, data in files.items()
    ]
    return 200, json.dumps({"Parameters": found, "InvalidParameters": []}).encode()


def _run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: Path | None = None
) -> tuple[int, list[str], dict[str, bytes]]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    code = fetch_secrets.main(["--root", str(root), str(manifest or _manifest(tmp_path))])
    lines = capsys.readouterr().err.strip().splitlines()
    left = {"/" + str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return code, lines, left


def test_the_files_are_written(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service.ssm = [_parameters()]
    code, lines, left = _run(tmp_path, capsys)
    assert (code, lines, left) == (0, [], FILES)
    assert {(tmp_path / "root" / p.lstrip("/")).stat().st_mode & 0o777 for p in FILES} == {0o600}


def test_a_file_gets_the_mode_its_manifest_entry_says(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An executors' key (0644) whatever the umask; an entry without a mode is 0600."""
    service.ssm = [_parameters()]
    [first, second] = FILES
    old = os.umask(0o077)
    try:
        code, lines, left = _run(tmp_path, capsys, _manifest(tmp_path, modes={first: "0644"}))
    finally:
        os.umask(old)
    assert (code, lines, left) == (0, [], FILES)
    modes = {p: (tmp_path / "root" / p.lstrip("/")).stat().st_mode & 0o777 for p in FILES}
    assert modes == {first: 0o644, second: 0o600}


def test_a_mode_the_fetcher_does_not_know_writes_nothing(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service.ssm = [_parameters()]
    [first, _] = FILES
    code, lines, left = _run(tmp_path, capsys, _manifest(tmp_path, modes={first: "0666"}))
    assert code == 1
    assert lines[-1].endswith("mode 0666 is not one of 0600, 0644"), lines
    assert left == {}


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("ssm-not-json", "SSM GetParameters in eu-west-1: not JSON"),
        ("credentials-not-json", "the credentials of role node: not JSON"),
        ("no-manifest", "manifest "),
        ("stalled-body", "timed out"),
        ("not-base64", "/p/n/etc/deep/two: not base64"),
        ("last-stale", "/p/n/etc/deep/two is not what this seed was made with"),
        ("missing", "SSM has no parameter /p/n/etc/deep/two"),
        ("denied", "AccessDeniedException: no"),
        ("unwritable", "writing "),
    ],
)
def test_a_fault_leaves_nothing_and_one_last_line(
    service: Service,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    said: str,
) -> None:
    manifest = None
    good = _parameters()
    service.ssm = [good]
    if fault == "ssm-not-json":
        service.ssm = [(200, b"<html>maintenance</html>")]
    elif fault == "credentials-not-json":
        service.imds["/latest/meta-data/iam/security-credentials/node"] = (200, b"oops")
    elif fault == "no-manifest":
        manifest = tmp_path / "absent.json"
    elif fault == "stalled-body":
        service.ssm = [None]
    elif fault == "not-base64":
        service.ssm = [(200, good[1].replace(b'"c2Vjb25kIHNlY3JldA=="', b'"%%%"'))]
    elif fault == "last-stale":
        service.ssm = [_parameters({**FILES, "/etc/deep/two": b"rotated"})]
    elif fault == "missing":
        service.ssm = [(200, b'{"Parameters": [], "InvalidParameters": ["/p/n/etc/deep/two"]}')]
    elif fault == "denied":
        service.ssm = [(400, b'{"__type": "AccessDeniedException", "message": "no"}')]
    elif fault == "unwritable":
        (tmp_path / "root" / "etc").mkdir(parents=True)
        (tmp_path / "root" / "etc" / "deep").write_text("a file where a directory goes")
    code, lines, left = _run(tmp_path, capsys, manifest)
    assert code == 1
    assert lines[-1].startswith("builder: secrets not fetched: "), lines
    assert said in lines[-1], lines
    assert all("again in 0 s" in line for line in lines[:-1]), lines  # only retries before
    expected = {"/etc/deep": b"a file where a directory goes"} if fault == "unwritable" else {}
    assert left == expected  # no file, no temporary


def test_throttling_and_server_errors_are_tried_again(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    throttled = (400, b'{"__type": "ThrottlingException", "message": "Rate exceeded"}')
    service.ssm = [throttled, (503, b""), _parameters()]
    code, lines, left = _run(tmp_path, capsys)
    assert (code, left) == (0, FILES)
    assert len(lines) == 2, lines
    assert "ThrottlingException: Rate exceeded; again in 0 s" in lines[0]
    assert "HTTP 503; again in 0 s" in lines[1]
    service.calls = 0
    service.ssm = [throttled]
    again = tmp_path / "again"
    again.mkdir()
    code, lines, left = _run(again, capsys)
    assert (code, left) == (1, {})
    assert len(lines) == fetch_secrets.ATTEMPTS, lines  # a retry line each, then the last
