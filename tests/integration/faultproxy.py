"""A fault-injecting HTTP proxy on loopback, between boto3 and the moto server.

A seeded RNG picks, for each request, whether it passes or gets a fault:
- throttling in the real services' shapes: EBS and SSM (JSON APIs) answer 400
  with `x-amzn-ErrorType: ThrottlingException` and a JSON body; EC2 (query API)
  answers 503 with `<Response><Errors><Error><Code>RequestLimitExceeded`;
- a 500 (`InternalError` / `InternalFailure`);
- a slow answer (forwarded, then held back for `slow_seconds`, longer than the
  client's read timeout when the test sets it so);
- a dropped connection (closed without an answer, before or after forwarding).
Every request's service, action and outcome are recorded (`self.seen`), and the
EC2 query bodies of chosen actions are kept (`self.bodies`) so a test can
check the parameters the publisher really sent.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EBS_THROTTLE = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
EC2_THROTTLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>faultproxy</RequestID></Response>"
)
EC2_INTERNAL = EC2_THROTTLE.replace(b"RequestLimitExceeded", b"InternalError").replace(
    b"Request limit exceeded.", b"An internal error has occurred"
)
JSON_INTERNAL = b'{"__type":"InternalFailure","message":"internal failure"}'


@dataclass
class Faults:
    throttle: float = 0.0
    error: float = 0.0
    slow: float = 0.0
    drop: float = 0.0
    slow_seconds: float = 1.0
    seed: int = 1
    # Actions (EC2 Action=..., or the JSON target / EBS path kind) always denied.
    deny: frozenset[str] = frozenset()
    keep_bodies: frozenset[str] = frozenset({"RegisterImage", "CopyImage"})


@dataclass
class Record:
    service: str
    action: str
    outcome: str


@dataclass
class _Shared:
    faults: Faults
    upstream: tuple[str, int]
    rng: random.Random
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[Record] = field(default_factory=list)
    bodies: list[dict[str, str]] = field(default_factory=list)


def _service_and_action(path: str, headers: Message[str, str], body: bytes) -> tuple[str, str]:
    if path.startswith("/snapshots"):
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) == 1:
            return "ebs", "StartSnapshot"
        if parts[1] == "completion":
            return "ebs", "CompleteSnapshot"
        return "ebs", "PutSnapshotBlock" if len(parts) == 4 else "ListSnapshotBlocks"
    target = headers.get("X-Amz-Target")
    if target:
        return target.split(".")[0].lower(), target.split(".")[-1]
    query = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return "ec2", (query.get("Action") or ["?"])[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    shared: _Shared

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        service, action = _service_and_action(self.path, self.headers, body)
        shared = self.shared
        with shared.lock:
            roll = shared.rng.random()
            when = shared.rng.random()
        faults = shared.faults
        json_api = service != "ec2"
        if action in faults.deny:
            outcome = "denied"
        elif roll < faults.throttle:
            outcome = "throttle"
        elif roll < faults.throttle + faults.error:
            outcome = "error"
        elif roll < faults.throttle + faults.error + faults.drop:
            outcome = "drop"
        elif roll < faults.throttle + faults.error + faults.drop + faults.slow:
            outcome = "slow"
        else:
            outcome = "pass"
        with shared.lock:
            shared.seen.append(Record(service, action, outcome))
            if action in faults.keep_bodies:
                parsed = urllib.parse.parse_qs(body.decode())
                shared.bodies.append({key: values[0] for key, values in parsed.items()})
        if outcome == "denied":
            if json_api:
                self._reply(
                    403,
                    b'{"__type":"AccessDeniedException","message":"denied by test"}',
                    {
                        "Content-Type": "application/json",
                        "x-amzn-ErrorType": "AccessDeniedException",
                    },
                )
            else:
                denied = EC2_THROTTLE.replace(b"RequestLimitExceeded", b"UnauthorizedOperation")
                denied = denied.replace(b"Request limit exceeded.", b"You are not authorized.")
                self._reply(403, denied, {"Content-Type": "text/xml"})
            return
        if outcome == "throttle":
            if json_api:
                headers = {
                    "Content-Type": "application/json",
                    "x-amzn-ErrorType": "ThrottlingException",
                }
                self._reply(400, EBS_THROTTLE, headers)
            else:
                self._reply(503, EC2_THROTTLE, {"Content-Type": "text/xml"})
            return
        if outcome == "error":
            if json_api:
                self._reply(
                    500,
                    JSON_INTERNAL,
                    {"Content-Type": "application/json", "x-amzn-ErrorType": "InternalFailure"},
                )
            else:
                self._reply(500, EC2_INTERNAL, {"Content-Type": "text/xml"})
            return
        if outcome == "drop" and when < 0.5:
            self._drop()
            return
        upstream = http.client.HTTPConnection(*shared.upstream, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            answer = response.read()
            answer_headers = {
                k: v
                for k, v in response.getheaders()
                if k.lower()
                not in ("content-length", "connection", "transfer-encoding", "server", "date")
            }
        finally:
            upstream.close()
        if outcome == "drop":
            self._drop()  # after the server did the work: the answer is lost
            return
        if outcome == "slow":
            time.sleep(faults.slow_seconds)
        self._reply(response.status, answer, answer_headers)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gave up on a slow answer closed its end: expected here.
        pass


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.shared = _Shared(
            faults, (parsed.hostname or "127.0.0.1", parsed.port or 80), random.Random(faults.seed)
        )
        handler = type("Handler", (_Handler,), {"shared": self.shared})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list[Record]:
        with self.shared.lock:
            return list(self.shared.seen)

    @property
    def bodies(self) -> list[dict[str, str]]:
        with self.shared.lock:
            return list(self.shared.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
