#!/usr/bin/python
"""Put this node's secret files in place from SSM Parameter Store, at first boot.

An EC2 seed of a cluster with `ssm_secrets` carries this script and a manifest
instead of the secret files (user-data is readable by any process on the
instance); cloud-init's runcmd runs it before any service starts. It runs on
CentOS 7's own python (2.7) and on python 3, with the standard library only.

    fetch_secrets.py [--root DIR] MANIFEST

The manifest (JSON, written by `builder seed`) names the region, and for each
file its path, its parameter and the SHA-256 of its content. The instance's
role credentials come from the instance metadata service (IMDSv2: a token
first); each GetParameters call (ten names at most) is signed with Signature
Version 4. Every value is checked against its digest before any file is
written, so a parameter that is missing, unreadable or not the one the seed was
made for (secrets rotated but not pushed) writes nothing and exits 1 with one
line. Files are written 0600, each atomically. The standard SDK variables
`AWS_EC2_METADATA_SERVICE_ENDPOINT` and `AWS_ENDPOINT_URL_SSM` move the two
endpoints (a VPC endpoint, an emulator).
"""

from __future__ import print_function

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import ssl
import sys
import time

if sys.version_info[0] >= 3:
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlsplit
    from urllib.request import Request, urlopen
else:  # CentOS 7's python 2.7
    from urllib2 import HTTPError, Request, URLError, urlopen
    from urlparse import urlsplit

TIMEOUT = 10
ATTEMPTS = 6  # the instance's role credentials can take a few seconds after boot
PAUSE = 5
BATCH = 10  # GetParameters takes at most ten names
TOKEN_TTL = "300"
FILE_MODE = 0o600


class Failure(Exception):
    """One line saying what went wrong; nothing has been written."""


def http(method, url, headers, body=None):
    # type: (str, str, dict[str, str], bytes | None) -> tuple[int, bytes]
    request = Request(url, data=body, headers=headers)
    request.get_method = lambda: method  # type: ignore[method-assign]
    try:
        if url.startswith("https:"):
            response = urlopen(request, timeout=TIMEOUT, context=ssl.create_default_context())
        else:
            response = urlopen(request, timeout=TIMEOUT)
    except HTTPError as error:
        return error.code, error.read()
    except (URLError, EnvironmentError) as error:
        raise Failure("%s %s: %s" % (method, url, getattr(error, "reason", error)))
    try:
        return response.getcode(), response.read()
    finally:
        response.close()


def metadata_endpoint():
    # type: () -> str
    return os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def metadata(token, path):
    # type: (str, str) -> str
    url = metadata_endpoint() + "/latest/meta-data/" + path
    status, body = http("GET", url, {"X-aws-ec2-metadata-token": token})
    if status != 200:
        raise Failure("instance metadata %s: HTTP %d" % (path, status))
    return body.decode("utf-8")


def role_credentials():
    # type: () -> tuple[str, str, str]
    """The instance profile's temporary credentials, through IMDSv2 (tried a few times:
    they can take some seconds after boot)."""
    for attempt in range(ATTEMPTS):
        try:
            return _role_credentials()
        except Failure as failure:
            if attempt == ATTEMPTS - 1:
                raise
            print("builder: %s; again in %d s" % (failure, PAUSE), file=sys.stderr)
            time.sleep(PAUSE)
    raise AssertionError("unreachable")


def _role_credentials():
    # type: () -> tuple[str, str, str]
    url = metadata_endpoint() + "/latest/api/token"
    status, body = http("PUT", url, {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL})
    if status != 200:
        raise Failure("instance metadata token: HTTP %d" % status)
    token = body.decode("utf-8")
    roles = metadata(token, "iam/security-credentials/").split()
    if not roles:
        raise Failure("the instance has no IAM role (an instance profile)")
    found = json.loads(metadata(token, "iam/security-credentials/" + roles[0]))
    if found.get("Code") != "Success":
        raise Failure("the credentials of role %s: %s" % (roles[0], found.get("Code")))
    return found["AccessKeyId"], found["SecretAccessKey"], found.get("Token", "")


def _hmac(key, text):
    # type: (bytes, str) -> bytes
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signed_headers(credentials, region, endpoint, target, body, now):
    # type: (tuple[str, str, str], str, str, str, bytes, datetime.datetime) -> dict[str, str]
    """The headers of an SSM JSON call signed with Signature Version 4."""
    access_key, secret_key, session_token = credentials
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": urlsplit(endpoint).netloc,
        "x-amz-date": stamp,
        "x-amz-target": target,
    }
    if session_token:
        headers["x-amz-security-token"] = session_token
    names = sorted(headers)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join("%s:%s\n" % (name, headers[name]) for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = "%s/%s/ssm/aws4_request" % (day, region)
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode("utf-8")
    for part in (day, region, "ssm", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    headers["authorization"] = "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        "AWS4-HMAC-SHA256",
        access_key,
        scope,
        ";".join(names),
        signature,
    )
    return headers


def aws_error(status, body):
    # type: (int, bytes) -> str
    """An AWS error answer as `Code: message`: JSON (what SSM speaks), XML (what some
    front ends answer), or else the status and the first line."""
    text = body.decode("utf-8", "replace")
    code = message = ""
    try:
        found = json.loads(text)
        code = found.get("__type", "").rpartition("#")[2]
        message = found.get("message") or found.get("Message") or ""
    except (ValueError, AttributeError):
        xml_code = re.search(r"<Code>([^<]*)</Code>", text)
        xml_message = re.search(r"<Message>([^<]*)</Message>", text)
        code = xml_code.group(1) if xml_code else ""
        message = xml_message.group(1) if xml_message else ""
    if code:
        return ("%s: %s" % (code, " ".join(message.split()))).rstrip(": ")
    lines = text.strip().splitlines()
    return "HTTP %d%s" % (status, (": " + lines[0][:200]) if lines else "")


def get_parameters(credentials, region, endpoint, names):
    # type: (tuple[str, str, str], str, str, list[str]) -> dict[str, str]
    values = {}  # type: dict[str, str]
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        body = json.dumps({"Names": batch, "WithDecryption": True}).encode("utf-8")
        now = datetime.datetime.utcnow()
        target = "AmazonSSM.GetParameters"
        headers = signed_headers(credentials, region, endpoint, target, body, now)
        status, answer = http("POST", endpoint + "/", headers, body)
        if status != 200:
            raise Failure("SSM GetParameters in %s: %s" % (region, aws_error(status, answer)))
        found = json.loads(answer.decode("utf-8"))
        missing = found.get("InvalidParameters") or []
        if missing:
            raise Failure("SSM has no parameter %s (builder secrets push puts them)" % missing[0])
        for parameter in found.get("Parameters", []):
            values[parameter["Name"]] = parameter["Value"]
    return values


def contents(entries, values):
    # type: (list[dict[str, str]], dict[str, str]) -> list[tuple[str, bytes]]
    """Every file's bytes, each checked against the digest the seed was made with."""
    files = []
    for entry in entries:
        parameter = entry["parameter"]
        if parameter not in values:
            raise Failure("SSM did not return %s" % parameter)
        try:
            content = base64.b64decode(values[parameter].encode("ascii"))
        except (TypeError, ValueError):
            raise Failure("%s: not base64 (was it written by builder secrets push?)" % parameter)
        if hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise Failure(
                "%s is not what this seed was made with (secrets rotated: run builder secrets "
                "push, then seed again)" % parameter
            )
        files.append((entry["path"], content))
    return files


def write_atomically(path, content):
    # type: (str, bytes) -> None
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    temporary = "%s.builder-%d" % (path, os.getpid())
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.write(descriptor, content)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.rename(temporary, path)


def fetch(manifest_path, root):
    # type: (str, str) -> int
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    region = manifest["region"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SSM", manifest["endpoint"]).rstrip("/")
    credentials = role_credentials()
    names = [entry["parameter"] for entry in manifest["files"]]
    files = contents(manifest["files"], get_parameters(credentials, region, endpoint, names))
    for path, content in files:
        write_atomically(root.rstrip("/") + path, content)
    print("builder: %d secret files from SSM in %s" % (len(files), region))
    return 0


def main(arguments):
    # type: (list[str]) -> int
    root = "/"
    if arguments[:1] == ["--root"] and len(arguments) > 1:
        root, arguments = arguments[1], arguments[2:]
    if len(arguments) != 1:
        print("usage: fetch_secrets.py [--root DIR] MANIFEST", file=sys.stderr)
        return 2
    try:
        return fetch(arguments[0], root)
    except Failure as failure:
        print("builder: secrets not fetched: %s" % failure, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
