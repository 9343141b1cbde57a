"""``make docker-test``: the image and the compose stack, end to end, through the load balancer.

Builds the image, brings up docker-compose.yml (plus deploy/compose.test.yml: a webhook receiver)
under a unique project name on a free host port, then, through nginx only: registers, logs in,
creates a webhook pointing at the receiver container, creates a task, and waits until the
receiver got the ``task.created`` delivery, whose Standard Webhooks signature it verifies with
the secret the API returned. The stack is always torn down (``docker compose down -v``).

Needs a Docker engine with the compose plugin and the base images; without them it runs
``../shared/containers/build-standin-images.sh`` when that script exists. Standard library plus
the app's own requirements (cryptography for the test CA, standardwebhooks to verify).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook

REPO = Path(__file__).resolve().parent.parent
STANDIN_SCRIPT = REPO.parent / "shared" / "containers" / "build-standin-images.sh"
BASE_IMAGES = ("python:3.12-slim", "postgres:16", "redis:7", "nginx:1.27")
IMAGE = "flask-service-template:docker-test"
RECEIVER_URL = "https://receiver:8443/hooks/tasks"
UP_TIMEOUT_SECONDS = 300
DELIVERY_TIMEOUT_SECONDS = 90

T = TypeVar("T")


class DockerTestError(RuntimeError):
    """A step failed; the message says which and why."""


def step(message: str) -> None:
    """One progress line."""
    print(f"docker-test: {message}", flush=True)


def docker_binary() -> str:
    """The docker CLI's absolute path, or a one-line explanation of what is missing."""
    path = shutil.which("docker")
    if path is None:
        raise DockerTestError("the docker CLI is not installed (docker-test needs Docker)")
    return path


def run(
    args: Sequence[str], *, env: dict[str, str] | None = None, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; raise on a non-zero exit."""
    result = subprocess.run(  # noqa: S603 (fixed argument lists, no shell)
        list(args), cwd=REPO, env=env, text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:] if capture else ""
        raise DockerTestError(f"{' '.join(args[:4])} ... exited {result.returncode}\n{detail}")
    return result


def succeeds(args: Sequence[str]) -> bool:
    """True when the command exits 0 (its output is discarded)."""
    return (
        subprocess.run(  # noqa: S603 (fixed argument lists, no shell)
            list(args), capture_output=True, check=False
        ).returncode
        == 0
    )


def ensure_engine_and_base_images(docker: str) -> None:
    """A running engine and the four base images, via the stand-in script when they are missing."""
    engine = succeeds([docker, "info"])
    missing = [image for image in BASE_IMAGES if not succeeds([docker, "image", "inspect", image])]
    if engine and not missing:
        return
    if not STANDIN_SCRIPT.is_file():
        raise DockerTestError(
            "needs a running Docker engine and the images "
            + ", ".join(BASE_IMAGES)
            + f" (pull them, or provide {STANDIN_SCRIPT} to build local stand-ins)"
        )
    step(f"engine or base images missing ({', '.join(missing) or 'engine'}): {STANDIN_SCRIPT}")
    run(["bash", str(STANDIN_SCRIPT)])


def write_test_certificates(directory: Path) -> None:
    """A throw-away CA, and a certificate for the host ``receiver`` signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docker-test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("receiver")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (directory / "receiver.crt").write_bytes(cert.public_bytes(pem))
    (directory / "receiver.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    shutil.copy(REPO / "deploy" / "docker-test" / "receiver.py", directory / "receiver.py")
    # The containers run as uid 10001: the throw-away files must be readable by it.
    directory.chmod(0o755)
    for path in directory.iterdir():
        path.chmod(0o644)


def free_port() -> int:
    """A TCP port free on the host right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request; the status, headers and parsed JSON body (or text) whatever the status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http://127.0.0.1)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    text = raw.decode(errors="replace")
    try:
        return status, headers, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, headers, text


def expect(
    what: str, result: tuple[int, dict[str, str], Any], status: int
) -> tuple[dict[str, str], Any]:
    """The headers and body of ``result``, or an error naming the step and the answer."""
    got, headers, body = result
    if got != status:
        raise DockerTestError(f"{what}: expected {status}, got {got}: {str(body)[:500]}")
    return headers, body


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns a value (not None), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise DockerTestError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


class Stack:
    """``docker compose`` for this run's project."""

    def __init__(self, docker: str, project: str, env: dict[str, str]) -> None:
        self.base = [docker, "compose", "--project-name", project, "--file", "docker-compose.yml"]
        self.base += ["--file", "deploy/compose.test.yml"]
        self.env = env

    def __call__(self, *args: str, capture: bool = False) -> str:
        """Run ``docker compose <args>``; its stdout when captured."""
        return run([*self.base, *args], env=self.env, capture=capture).stdout or ""

    def receiver_requests(self) -> list[dict[str, Any]]:
        """Every request the receiver printed so far."""
        output = self("logs", "--no-log-prefix", "--no-color", "receiver", capture=True)
        records = []
        for line in output.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "body" in record:
                records.append(record)
        return records

    def upstreams_used(self) -> set[str]:
        """The replica addresses nginx sent requests to (from its JSON access log)."""
        output = self("logs", "--no-log-prefix", "--no-color", "lb", capture=True)
        used = set()
        for line in output.splitlines():
            try:
                upstream = json.loads(line).get("upstream")
            except (json.JSONDecodeError, AttributeError):
                continue
            if upstream:
                used.add(upstream)
        return used


def verified_delivery(
    stack: Stack, secret: str, task_id: int
) -> Callable[[], dict[str, Any] | None]:
    """A predicate: the receiver's verified ``task.created`` payload for ``task_id``, or None."""

    def check() -> dict[str, Any] | None:
        for record in stack.receiver_requests():
            body = base64.b64decode(record["body"])
            payload: dict[str, Any] = Webhook(secret).verify(body, record["headers"])
            if payload.get("type") == "task.created" and payload["data"].get("task_id") == task_id:
                return {"payload": payload, "headers": record["headers"], "path": record["path"]}
        return None

    return check


def exercise(base: str, stack: Stack) -> None:
    """The user's path through the load balancer, up to the verified webhook delivery."""
    step(f"through the load balancer at {base}")
    wait_for(
        lambda: True if http("GET", f"{base}/health/ready")[0] == 200 else None,
        60,
        "GET /health/ready to answer 200 through nginx",
    )
    _, page = expect("GET /docs", http("GET", f"{base}/docs"), 200)
    if "swagger-ui" not in str(page).lower():
        raise DockerTestError("GET /docs did not return the Swagger UI page")
    step("GET /health/ready 200, GET /docs 200 (Swagger UI)")

    email = f"docker-test-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(18)
    _, user = expect(
        "register",
        http("POST", f"{base}/api/v1/auth/register", {"email": email, "password": password}),
        201,
    )
    step(f"registered user {user['id']} ({email})")
    _, tokens = expect(
        "login",
        http("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password}),
        200,
    )
    token = tokens["access_token"]
    step("logged in (access token received)")
    _, webhook = expect(
        "create webhook",
        http(
            "POST",
            f"{base}/api/v1/webhooks",
            {"url": RECEIVER_URL, "event_types": ["task.created"]},
            token,
        ),
        201,
    )
    step(f"created webhook {webhook['id']} -> {RECEIVER_URL}")
    headers, task = expect(
        "create task",
        http("POST", f"{base}/api/v1/tasks", {"title": "Ship the container image"}, token),
        201,
    )
    step(f"created task {task['id']} (request id {headers.get('X-Request-ID')})")

    delivery = wait_for(
        verified_delivery(stack, webhook["secret"], task["id"]),
        DELIVERY_TIMEOUT_SECONDS,
        "the receiver to get the signed task.created webhook",
    )
    step(
        f"receiver got {delivery['path']} webhook-id {delivery['headers']['webhook-id']}: "
        f"signature verified, type {delivery['payload']['type']}, "
        f"task_id {delivery['payload']['data']['task_id']}"
    )
    request_id = headers.get("X-Request-ID", "")
    worker_log = stack("logs", "--no-log-prefix", "--no-color", "worker", capture=True)
    carried = [line for line in worker_log.splitlines() if request_id and request_id in line]
    if not carried:
        raise DockerTestError(f"no worker log line carries the request id {request_id!r}")
    step(f"{len(carried)} worker log lines carry the request id {request_id}")
    for _ in range(6):  # a few more requests, so each replica has served some
        expect("GET /tasks", http("GET", f"{base}/api/v1/tasks", token=token), 200)
    used = stack.upstreams_used()
    if len(used) < 2:
        raise DockerTestError(f"nginx used {len(used)} replica(s), expected 2: {used}")
    step(f"nginx spread requests over {len(used)} replicas: {', '.join(sorted(used))}")


def main() -> int:
    """Build, bring up, exercise, tear down; 0 on success."""
    # SIGTERM (a killed make) unwinds like Ctrl-C does, so the stack is still torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        docker = docker_binary()
        ensure_engine_and_base_images(docker)
    except DockerTestError as error:
        step(str(error))
        return 2
    step(f"building {IMAGE}")
    started = time.monotonic()
    run([docker, "build", "--quiet", "--tag", IMAGE, "."], capture=True)
    size = run([docker, "image", "inspect", "--format", "{{.Size}}", IMAGE], capture=True)
    step(f"built in {time.monotonic() - started:.0f} s, {int(size.stdout) / 1e6:.0f} MB")

    project = f"fst-docker-test-{secrets.token_hex(3)}"
    port = free_port()
    files = Path(tempfile.mkdtemp(prefix="docker-test-"))
    write_test_certificates(files)
    env = {
        **os.environ,
        "APP_IMAGE": IMAGE,
        "DOCKER_TEST_DIR": str(files),
        "HTTP_PORT": str(port),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "PUBLIC_BASE_URL": "https://tasks.example.com",
    }
    stack = Stack(docker, project, env)
    failed = True
    try:
        step(f"docker compose up (project {project}, load balancer on 127.0.0.1:{port})")
        started = time.monotonic()
        stack(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(UP_TIMEOUT_SECONDS),
            "--no-build",
            capture=True,
        )
        step(f"stack healthy in {time.monotonic() - started:.0f} s")
        exercise(f"http://127.0.0.1:{port}", stack)
        failed = False
    except DockerTestError as error:
        step(f"FAILED: {error}")
    finally:
        if failed:
            with contextlib.suppress(DockerTestError):
                print(stack("ps", "--all", capture=True), flush=True)
                print(stack("logs", "--no-color", "--tail", "40", capture=True)[-12000:])
        step("docker compose down -v")
        try:
            stack("down", "--volumes", "--remove-orphans", "--timeout", "20", capture=True)
        finally:
            shutil.rmtree(files, ignore_errors=True)
    if failed:
        return 1
    step("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
