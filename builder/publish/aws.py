"""AWS access for `builder publish`: one boto3 session, one retry layer, clear errors.

botocore's own retries are off (`total_max_attempts=1`): every call goes
through `Retrier.call`, which retries throttling, 5xx, timeouts and dropped
connections with exponential backoff and full jitter, logs each retry, and
tells the `Concurrency` limiter about throttling so the uploader sends fewer
requests at once. Access denied, validation errors and other client errors
fail at once as one line (`AwsError`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from builder.errors import BAD_INPUT, BuilderError, UserError

log = logging.getLogger("builder.publish")
T = TypeVar("T")

THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "RequestThrottled",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
    }
)
TRANSIENT = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "IDPCommunicationError",
    }
)
# A user can fix these: exit 2. Other client errors are failures of the publish: exit 1.
USER_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "OptInRequired",
        "ValidationException",
        "InvalidParameter",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "MissingParameter",
        "InvalidAMIName.Malformed",
        "InvalidAMIName.Duplicate",
        "InvalidUserID.Malformed",
        "InvalidKeyUsageException",
        "KMSInvalidStateException",
        "NotFoundException",
        "DisabledException",
    }
)


class AwsError(BuilderError):
    """A call AWS failed: one line naming the call, region and AWS's own code; exit 1."""

    def __init__(self, message: str, code: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.code = code


class AwsRefused(AwsError):
    """A call AWS refused for a reason the user can fix (access, input, credentials): exit 2."""

    exit_code: ClassVar[int] = BAD_INPUT


def aws_error(message: str, code: str, hint: str | None = None) -> AwsError:
    """The error for AWS's `code`: refused (the user's to fix) or failed."""
    refused = code in USER_CODES or code.startswith("NoCredentials")
    return (AwsRefused if refused else AwsError)(message, code, hint)


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def classify(exc: BaseException) -> str:
    """`throttle`, `transient` (retry), or `fatal`."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING or _status(exc) == 429:
            return "throttle"
        if code in TRANSIENT or _status(exc) >= 500:
            return "transient"
        return "fatal"
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return "transient"
    return "fatal"


class Concurrency:
    """How many requests may be in flight: halved on throttling, one more after as many
    successes in a row as the current limit (additive increase, multiplicative decrease)."""

    def __init__(self, limit: int) -> None:
        self.maximum = max(1, limit)
        self.limit = self.maximum
        self.in_flight = 0
        self.successes = 0
        self.cond = threading.Condition()

    def acquire(self) -> None:
        with self.cond:
            while self.in_flight >= self.limit:
                self.cond.wait()
            self.in_flight += 1

    def release(self) -> None:
        with self.cond:
            self.in_flight -= 1
            self.cond.notify_all()

    def throttled(self) -> None:
        with self.cond:
            if self.limit > 1:
                self.limit = max(1, self.limit // 2)
                log.warning("throttled: at most %d requests in flight now", self.limit)
            self.successes = 0

    def succeeded(self) -> None:
        with self.cond:
            self.successes += 1
            if self.successes >= self.limit and self.limit < self.maximum:
                self.limit += 1
                self.successes = 0
                self.cond.notify_all()


@dataclass
class Retrier:
    """The one retry layer: exponential backoff with full jitter, bounded attempts."""

    attempts: int = 10
    base: float = 0.25
    cap: float = 20.0
    concurrency: Concurrency | None = None
    rng: random.Random = field(default_factory=random.Random)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.base * 2**attempt))

    def call(
        self,
        what: str,
        function: Callable[..., T],
        *,
        not_found_window: float = 0.0,
        probe: Callable[[], T | None] | None = None,
        **kwargs: Any,
    ) -> T:
        """function(**kwargs), retried. `probe` runs before a retry: a value it finds is the
        result (a create that succeeded although its answer was lost). A not-found error is
        retried for `not_found_window` seconds (a resource just created, not yet visible)."""
        started = time.monotonic()
        for attempt in range(self.attempts):
            if attempt and probe is not None and (found := probe()) is not None:
                return found
            try:
                result = function(**kwargs)
            except Exception as exc:
                kind = classify(exc)
                code = error_code(exc)
                if kind == "fatal" and not (
                    "NotFound" in code and time.monotonic() - started < not_found_window
                ):
                    raise as_user_error(what, exc) from None
                if attempt == self.attempts - 1:
                    raise aws_error(
                        f"{what}: still failing after {self.attempts} attempts: {describe(exc)}",
                        code or type(exc).__name__,
                    ) from None
                if kind == "throttle" and self.concurrency:
                    self.concurrency.throttled()
                pause = self.delay(attempt)
                with self.lock:
                    self.retries += 1
                log.warning(
                    "retry %d/%d %s in %.2f s: %s",
                    attempt + 1,
                    self.attempts - 1,
                    what,
                    pause,
                    describe(exc),
                )
                time.sleep(pause)
                continue
            if self.concurrency:
                self.concurrency.succeeded()
            return result
        raise AssertionError("unreachable")


def describe(exc: BaseException) -> str:
    code = error_code(exc)
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        return one_line(f"{code}: {message}".rstrip(": ") if message else code)
    return one_line(f"{type(exc).__name__}: {exc}")


def one_line(text: str) -> str:
    """An error body that botocore could not parse (XML where JSON was due) on one line."""
    return " ".join(text.split())


def as_user_error(what: str, exc: BaseException) -> AwsError:
    code = error_code(exc) or type(exc).__name__
    hint = None
    if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
        hint = "README.md lists the IAM permissions `builder publish` needs"
    return aws_error(f"{what}: {describe(exc)}", code, hint)


@dataclass(frozen=True)
class AwsSettings:
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    # Per-request timeouts (seconds); BUILDER_AWS_TIMEOUT overrides the read timeout.
    connect_timeout: float = 10.0
    read_timeout: float = float(os.environ.get("BUILDER_AWS_TIMEOUT", "60"))
    pool: int = 64


class Aws:
    """A boto3 session and its clients (one per service and region, thread-safe)."""

    def __init__(self, settings: AwsSettings) -> None:
        import boto3
        from botocore.exceptions import ProfileNotFound

        self.settings = settings
        try:
            self.session = boto3.Session(profile_name=settings.profile)
        except ProfileNotFound as exc:
            raise UserError(f"--profile {settings.profile}: no such AWS profile") from exc
        self.region: str = settings.region or self.session.region_name or ""
        if not self.region:
            raise UserError("no AWS region: give --region or set AWS_REGION / a profile's region")
        self.check_region(self.region)
        if self.session.get_credentials() is None:
            raise aws_error(
                "no AWS credentials found (environment, ~/.aws/credentials, --profile, "
                "instance role)",
                "NoCredentials",
            )
        self.clients: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()

    def check_region(self, region: str) -> None:
        known = set()
        for partition in self.session.get_available_partitions():
            known.update(self.session.get_available_regions("ec2", partition_name=partition))
        if region not in known:
            raise UserError(f"unknown AWS region {region!r}", hint="e.g. us-east-1, eu-west-1")

    def client(self, service: str, region: str) -> Any:
        from botocore.config import Config

        with self.lock:
            key = (service, region)
            if key not in self.clients:
                config = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=self.settings.connect_timeout,
                    read_timeout=self.settings.read_timeout,
                    max_pool_connections=self.settings.pool,
                    user_agent_extra="builder-publish",
                )
                self.clients[key] = self.session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.settings.endpoint_url,
                    config=config,
                )
            return self.clients[key]
