#!/usr/bin/python
"""Put this node's secret files in place from SSM Parameter Store, at first boot.

An EC2 seed of a cluster with `ssm_secrets` carries this script and a manifest
instead of the secret files (user-data is readable by any process on the
instance); cloud-init's runcmd runs it before anything else, and stops there
when it fails. It runs on CentOS 7's own python (2.7; 7.2 or later, for
`ssl.create_default_context`) and on python 3, with the standard library only.
builder does not import it: it is shipped as the seed's file.

    fetch_secrets.py [--root DIR] MANIFEST

The manifest (JSON, written by `builder seed`) names the region, and for each
file its path, its parameter, the SHA-256 of its content and its mode (0600, the
default; 0644 for an agent's executors' key, which every user reads). The instance's
role credentials come from the instance metadata service (IMDSv2: a token
first, never through a proxy); each GetParameters call (ten names at most) is
signed with Signature Version 4. Every value is checked against its digest, and
every file written to a temporary beside it, before any is renamed into place:
a parameter that is missing, unreadable or not the one the seed was made with
(secrets rotated but not pushed) leaves nothing behind. The last line on stderr
says why, after a line for each retry (the metadata service and SSM's
throttling or server errors are tried again, six times 5 s apart). Exit 0 or 1.
The standard SDK variables `AWS_EC2_METADATA_SERVICE_ENDPOINT` and
`AWS_ENDPOINT_URL_SSM` move the two endpoints (a VPC endpoint, an emulator).
"""

from __future__ import print_function

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import ssl
import sys
import time

if sys.version_info[0] >= 3:
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlsplit
    from urllib.request import BaseHandler, HTTPSHandler, ProxyHandler, Request, build_opener
else:  # CentOS 7's python 2.7
    from httplib import HTTPException
    from urllib2 import (
        BaseHandler,  # noqa: F401 (named in a type comment)
        HTTPError,
        HTTPSHandler,
        ProxyHandler,
        Request,
        URLError,
        build_opener,
    )
    from urlparse import urlsplit

TIMEOUT = 10
ATTEMPTS = 6  # the instance's role credentials can take a few seconds after boot
PAUSE = 5
BATCH = 10  # GetParameters takes at most ten names
TOKEN_TTL = "300"
FILE_MODE = 0o600
# What a manifest may ask: root's secrets, and an agent's executors' key (every user's)
FILE_MODES = {"0600": 0o600, "0644": 0o644}
BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
RETRIED_CODES = ("ThrottlingException", "InternalServerError", "ServiceUnavailable")


class Failure(Exception):
    """One line saying what went wrong; nothing has been written."""


class Retry(Failure):
    """A failure worth trying again (a service not ready, throttled or failing)."""


def https_context():
    # type: () -> ssl.SSLContext
    make = getattr(ssl, "create_default_context", None)
    if make is None:
        raise Failure("this python cannot verify HTTPS certificates (CentOS 7.2 or later can)")
    return make()  # type: ignore[no-any-return]


def http(method, url, headers, body=None, proxies=True):
    # type: (str, str, dict[str, str], bytes | None, bool) -> tuple[int, bytes]
    """One request: (status, body). Anything the network or the answer does wrong, reading
    the body included, is a Retry with one line."""
    handlers = [] if proxies else [ProxyHandler({})]  # type: list[BaseHandler]
    if url.startswith("https:"):
        handlers.append(HTTPSHandler(context=https_context()))
    request = Request(url, data=body, headers=headers)
    request.get_method = lambda: method  # type: ignore[method-assign]
    try:
        try:
            response = build_opener(*handlers).open(request, timeout=TIMEOUT)
        except HTTPError as error:
            return error.code, error.read()
        try:
            return response.getcode(), response.read()
        finally:
            response.close()
    except (URLError, HTTPException, socket.timeout, EnvironmentError) as error:
        raise Retry("%s %s: %s" % (method, url, getattr(error, "reason", None) or error))


def parsed(what, text):
    # type: (str, str) -> dict[str, object]
    try:
        found = json.loads(text)
    except ValueError:
        raise Failure("%s: not JSON" % what)
    if not isinstance(found, dict):
        raise Failure("%s: not a JSON object" % what)
    return found


def tried(what, function):
    # type: (str, object) -> object
    for attempt in range(ATTEMPTS):
        try:
            return function()  # type: ignore[operator]
        except Retry as failure:
            if attempt == ATTEMPTS - 1:
                raise
            print("builder: %s; again in %d s" % (failure, PAUSE), file=sys.stderr)
            time.sleep(PAUSE)
    raise AssertionError("unreachable")


def metadata_endpoint():
    # type: () -> str
    return os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def metadata(token, path):
    # type: (str, str) -> str
    url = metadata_endpoint() + "/latest/meta-data/" + path
    status, body = http("GET", url, {"X-aws-ec2-metadata-token": token}, proxies=False)
    if status != 200:
        raise Retry("instance metadata %s: HTTP %d" % (path, status))
    return body.decode("utf-8")


def role_credentials():
    # type: () -> tuple[str, str, str]
    """The instance profile's temporary credentials, through IMDSv2."""
    url = metadata_endpoint() + "/latest/api/token"
    headers = {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL}
    status, body = http("PUT", url, headers, proxies=False)
    if status != 200:
        raise Retry("instance metadata token: HTTP %d" % status)
    token = body.decode("utf-8")
    roles = metadata(token, "iam/security-credentials/").split()
    if not roles:
        raise Retry("the instance has no IAM role (an instance profile)")
    what = "the credentials of role " + roles[0]
    found = parsed(what, metadata(token, "iam/security-credentials/" + roles[0]))
    if found.get("Code") != "Success":
        raise Retry("%s: %s" % (what, found.get("Code")))
    try:
        return str(found["AccessKeyId"]), str(found["SecretAccessKey"]), str(found["Token"])
    except KeyError as missing:
        raise Failure("%s: no %s" % (what, missing))


def _hmac(key, text):
    # type: (bytes, str) -> bytes
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signed_headers(credentials, region, endpoint, target, body, stamp):
    # type: (tuple[str, str, str], str, str, str, bytes, str) -> dict[str, str]
    """The headers of an SSM JSON call signed with Signature Version 4 at `stamp`
    (YYYYMMDDTHHMMSSZ)."""
    access_key, secret_key, session_token = credentials
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
    # type: (int, bytes) -> tuple[str, str]
    """An AWS error answer: its code, and `Code: message` on one line. JSON (what SSM
    speaks), XML (what some front ends answer), or else the status and first line."""
    text = body.decode("utf-8", "replace")
    code = message = ""
    try:
        found = json.loads(text)
        code = str(found.get("__type", "")).rpartition("#")[2]
        message = str(found.get("message") or found.get("Message") or "")
    except (ValueError, AttributeError):
        xml_code = re.search(r"<Code>([^<]*)</Code>", text)
        xml_message = re.search(r"<Message>([^<]*)</Message>", text)
        code = xml_code.group(1) if xml_code else ""
        message = xml_message.group(1) if xml_message else ""
    if code:
        return code, ("%s: %s" % (code, " ".join(message.split()))).rstrip(": ")
    lines = text.strip().splitlines()
    return "", "HTTP %d%s" % (status, (": " + lines[0][:200]) if lines else "")


def get_parameters(credentials, region, endpoint, names):
    # type: (tuple[str, str, str], str, str, list[str]) -> dict[str, str]
    values = {}  # type: dict[str, str]
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        body = json.dumps({"Names": batch, "WithDecryption": True}).encode("utf-8")

        def call(body=body):
            # type: (bytes) -> dict[str, object]
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = "AmazonSSM.GetParameters"
            headers = signed_headers(credentials, region, endpoint, target, body, stamp)
            status, answer = http("POST", endpoint + "/", headers, body)
            if status != 200:
                code, line = aws_error(status, answer)
                failure = Retry if status >= 500 or code in RETRIED_CODES else Failure
                raise failure("SSM GetParameters in %s: %s" % (region, line))
            return parsed("SSM GetParameters in " + region, answer.decode("utf-8", "replace"))

        found = tried("SSM GetParameters", call)
        missing = found.get("InvalidParameters") or []  # type: ignore[attr-defined]
        if missing:
            raise Failure("SSM has no parameter %s (builder secrets push puts them)" % missing[0])
        for parameter in found.get("Parameters") or []:  # type: ignore[attr-defined]
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
        value = values[parameter]
        if len(value) % 4 or not BASE64.match(value):  # b64decode skips what it cannot read
            raise Failure("%s: not base64 (was it written by builder secrets push?)" % parameter)
        content = base64.b64decode(value.encode("ascii"))
        if hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise Failure(
                "%s is not what this seed was made with (secrets rotated: run builder secrets "
                "push, then seed again)" % parameter
            )
        files.append((entry["path"], content))
    return files


def write_all(files):
    # type: (list[tuple[str, bytes, int]]) -> None
    """Every file to a temporary beside it (0600), then all given their modes and renamed
    into place; a failure before the renames removes the temporaries."""
    temporaries = []  # type: list[tuple[str, str]]
    try:
        for path, content, mode in files:
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            temporary = "%s.builder-%d" % (path, os.getpid())
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            temporaries.append((temporary, path))
            try:
                os.write(descriptor, content)
                os.fsync(descriptor)
                os.fchmod(descriptor, mode)  # as the manifest says, whatever the umask
            finally:
                os.close(descriptor)
    except EnvironmentError as error:
        for temporary, _ in temporaries:
            os.unlink(temporary)
        raise Failure("writing %s: %s" % (getattr(error, "filename", ""), error.strerror))
    for temporary, path in temporaries:
        os.rename(temporary, path)


def fetch(manifest_path, root):
    # type: (str, str) -> int
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        region, default_endpoint = str(manifest["region"]), str(manifest["endpoint"])
        entries = [
            {
                "path": str(e["path"]),
                "parameter": str(e["parameter"]),
                "sha256": str(e["sha256"]),
                "mode": str(e.get("mode", "0600")),
            }
            for e in manifest["files"]
        ]
    except (EnvironmentError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise Failure("manifest %s: %s" % (manifest_path, error))
    for entry in entries:
        if entry["mode"] not in FILE_MODES:
            raise Failure(
                "manifest %s: %s: mode %s is not one of %s"
                % (manifest_path, entry["path"], entry["mode"], ", ".join(sorted(FILE_MODES)))
            )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SSM", default_endpoint).rstrip("/")
    credentials = tried("instance role credentials", role_credentials)
    names = [entry["parameter"] for entry in entries]
    try:
        values = get_parameters(credentials, region, endpoint, names)  # type: ignore[arg-type]
    except (KeyError, TypeError) as error:
        raise Failure("SSM GetParameters in %s: an answer without %s" % (region, error))
    files = contents(entries, values)
    modes = dict((entry["path"], FILE_MODES[entry["mode"]]) for entry in entries)
    write_all([(root.rstrip("/") + path, content, modes[path]) for path, content in files])
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
