"""A stand-in for EC2's instance metadata service with IMDSv2 required, on loopback.

It follows the documented behaviour an instance registered with ImdsSupport v2.0
sees (AWS EC2 User Guide, "Use the Instance Metadata Service"): a session token
comes only from `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
between 1 and 21600 (400 otherwise; 403 for a PUT carrying X-Forwarded-For);
every GET needs a live token in `X-aws-ec2-metadata-token` (401 otherwise);
`iam/security-credentials/` lists the instance profile's role and
`iam/security-credentials/ROLE` gives its temporary credentials; anything else
is 404, and methods other than GET and PUT are 405. The credentials are the ones
the test made with STS in moto: nothing here decides whether a call succeeds.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests import loopback

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
MAX_TTL = 21600


@dataclass
class InstanceMetadata:
    role: str | None
    credentials: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        if method == "PUT":
            if path != TOKEN_PATH:
                return 405, ""
            if "x-forwarded-for" in headers:
                return 403, ""
            ttl = headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
                return 400, ""
            token = secrets.token_urlsafe(32)
            self.tokens[token] = time.monotonic() + int(ttl)
            return 200, token
        if method != "GET":
            return 405, ""
        token = headers.get("x-aws-ec2-metadata-token", "")
        if self.tokens.get(token, 0.0) < time.monotonic():
            return 401, ""
        if path == CREDENTIALS_PATH and self.role:
            return 200, self.role
        if self.role and path == CREDENTIALS_PATH + self.role:
            return 200, json.dumps({"Code": "Success", "Type": "AWS-HMAC", **self.credentials})
        return 404, ""


@contextmanager
def serving(metadata: InstanceMetadata) -> Iterator[str]:
    """The service on a free loopback port, as its base URL; stopped on exit."""

    class Handler(BaseHTTPRequestHandler):
        def handle_request(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = metadata.answer(self.command, self.path, headers)
            metadata.requests.append((self.command, self.path, status))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = handle_request

        def log_message(self, format: str, *args: object) -> None:
            pass

    with loopback.serving(Handler) as url:
        yield url
