"""The retry layer: what is retried, what fails at once, and how concurrency backs off."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from builder.publish.aws import AwsError, Concurrency, Retrier, classify


def client_error(code: str, status: int, operation: str = "PutSnapshotBlock") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} message"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("ThrottlingException", 400), "throttle"),
        (client_error("RequestLimitExceeded", 503), "throttle"),
        (client_error("InternalError", 500), "transient"),
        (client_error("500", 500), "transient"),
        (ReadTimeoutError(endpoint_url="http://x"), "transient"),
        (ConnectionClosedError(endpoint_url="http://x"), "transient"),
        (client_error("AccessDeniedException", 403), "fatal"),
        (client_error("ValidationException", 400), "fatal"),
        (ValueError("a bug"), "fatal"),
    ],
)
def test_classify(error: Exception, kind: str) -> None:
    assert classify(error) == kind


class Flaky:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def __call__(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"ok": kwargs}


def retrier(concurrency: Concurrency | None = None) -> Retrier:
    return Retrier(attempts=5, base=0.0, concurrency=concurrency, rng=random.Random(1))


def test_transient_errors_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    flaky = Flaky([client_error("InternalError", 500), ReadTimeoutError(endpoint_url="u")])
    retry = retrier()
    assert retry.call("PutSnapshotBlock 1", flaky, BlockIndex=1) == {"ok": {"BlockIndex": 1}}
    assert flaky.calls == 3
    assert retry.retries == 2
    assert "retry 1/4 PutSnapshotBlock 1" in caplog.text


def test_denied_fails_at_once() -> None:
    flaky = Flaky([client_error("AccessDeniedException", 403)])
    with pytest.raises(AwsError) as raised:
        retrier().call("StartSnapshot in us-east-1", flaky)
    assert flaky.calls == 1
    assert raised.value.exit_code == 2
    assert raised.value.message == (
        "StartSnapshot in us-east-1: AccessDeniedException: AccessDeniedException message"
    )


def test_gives_up_after_the_attempts() -> None:
    flaky = Flaky([client_error("InternalError", 500)] * 5)
    with pytest.raises(AwsError, match="still failing after 5 attempts"):
        retrier().call("CompleteSnapshot", flaky)
    assert flaky.calls == 5


def test_not_found_is_retried_only_within_its_window() -> None:
    missing = client_error("ResourceNotFoundException", 404)
    flaky = Flaky([missing, missing])
    assert retrier().call("PutSnapshotBlock", flaky, not_found_window=60.0)
    with pytest.raises(AwsError):
        retrier().call("PutSnapshotBlock", Flaky([missing]), not_found_window=0.0)


def test_probe_finds_what_a_lost_answer_created() -> None:
    flaky = Flaky([ConnectionClosedError(endpoint_url="u"), client_error("Duplicate", 400)])
    found = retrier().call("RegisterImage", flaky, probe=lambda: "ami-123")
    assert found == "ami-123"
    assert flaky.calls == 1


def test_throttling_halves_concurrency_and_success_restores_it() -> None:
    concurrency = Concurrency(16)
    retry = retrier(concurrency)
    retry.call("x", Flaky([client_error("ThrottlingException", 400)] * 2))
    assert concurrency.limit == 4  # halved twice; the call's success counts one
    for _ in range(3):
        retry.call("x", Flaky([]))
    assert concurrency.limit == 5
    for _ in range(200):
        retry.call("x", Flaky([]))
    assert concurrency.limit == 16  # never above the start
