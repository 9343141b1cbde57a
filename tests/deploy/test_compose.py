"""docker-compose.yml (and make docker-test's override): its structure, checked without an engine.

Where the docker CLI with the compose plugin is installed, ``docker compose config`` checks the
files too (that needs no running engine).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import PROJECT_ROOT, ConfigError, Settings, load_settings

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
TEST_OVERRIDE = PROJECT_ROOT / "deploy" / "compose.test.yml"
GUNICORN_CONF = (PROJECT_ROOT / "deploy" / "gunicorn.conf.py").read_text()
NGINX_CONF = (PROJECT_ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
APP_SERVICES = ("api-1", "api-2", "worker", "beat", "migrate")
API_SERVICES = ("api-1", "api-2")
# Read by gunicorn.conf.py or by OpenSSL, not by app/config.py.
PROCESS_VARIABLES = frozenset({"WEB_CONCURRENCY", "WEB_THREADS", "SSL_CERT_FILE"})
# What an operator puts in .env (docker_test.py sets the same).
OPERATOR_ENV = {
    "SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "p" * 24,
    "PUBLIC_BASE_URL": "https://tasks.example.com",
}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}|\$\$")


def load(path: Path) -> dict[str, Any]:
    """The file as data; YAML anchors and merge keys resolved (each service its own copy)."""
    return copy.deepcopy(yaml.safe_load(path.read_text()))


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` and ``$$``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group() == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return VARIABLE.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml with the operator's .env values filled in."""
    return dict(interpolate(load(COMPOSE_FILE), OPERATOR_ENV))


def services_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services."""
    return dict(compose["services"])


def test_the_project_is_named_after_the_service(compose: dict[str, Any]) -> None:
    assert compose["name"] == Settings.model_fields["SERVICE_NAME"].default


def test_only_the_load_balancer_publishes_a_port_and_its_host_port_is_configurable(
    compose: dict[str, Any],
) -> None:
    raw = load(COMPOSE_FILE)["services"]
    publishing = {name for name, service in raw.items() if service.get("ports")}
    assert publishing - {"mailpit"} == {"lb"}
    assert raw["lb"]["ports"] == ["${HTTP_PORT:-8080}:80"]
    assert interpolate(raw["lb"]["ports"], {"HTTP_PORT": "18080"}) == ["18080:80"]
    # The development-only mail catcher is reachable from this machine only.
    assert raw["mailpit"]["profiles"] == ["dev"]
    assert all(port.startswith("127.0.0.1:") for port in raw["mailpit"]["ports"])


def test_nginx_balances_the_two_api_replicas_once_they_are_healthy(
    compose: dict[str, Any],
) -> None:
    lb = services_of(compose)["lb"]
    assert lb["image"] == "nginx:1.27"
    assert lb["volumes"] == ["./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert lb["depends_on"] == {name: {"condition": "service_healthy"} for name in API_SERVICES}
    upstreams = re.findall(r"^\s*server ([\w-]+):(\d+)", NGINX_CONF, flags=re.MULTILINE)
    assert upstreams == [(name, "8000") for name in API_SERVICES]


def test_every_role_runs_the_same_image_by_command(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    assert {services[name]["image"] for name in APP_SERVICES} == {"flask-service-template:latest"}
    for name in API_SERVICES:
        assert "command" not in services[name]  # the image's CMD: gunicorn with its config
    assert services["worker"]["command"][:4] == ["celery", "-A", "celery_worker", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "celery_worker", "beat"]
    assert services["migrate"]["command"] == ["flask", "db", "upgrade"]


def test_api_worker_and_beat_wait_for_the_one_shot_migration(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    for name in ("api-1", "api-2", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    beats = [name for name, service in services.items() if "beat" in service.get("command", [])]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_postgres_and_redis_have_health_checks_and_named_volumes(
    compose: dict[str, Any],
) -> None:
    services = services_of(compose)
    postgres, redis = services["postgres"], services["redis"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert redis["image"] == "redis:7"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert redis["volumes"] == ["redis-data:/data"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}
    # The broker must keep messages across a restart and never evict them.
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    """``docker compose up --wait`` needs one (the API's is the image's HEALTHCHECK)."""
    for name in ("worker", "beat"):
        assert services_of(compose)[name]["healthcheck"]["test"]
    worker = services_of(compose)["worker"]
    port = worker["environment"]["WORKER_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])
    assert "HEALTHCHECK" in (PROJECT_ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_containers_are_hardened_like_the_kubernetes_pods(
    compose: dict[str, Any], name: str
) -> None:
    service = services_of(compose)[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    writable = {entry.split(":")[0] for entry in service["tmpfs"]}
    assert "/tmp" in writable  # the app user's $HOME, gunicorn's and beat's files
    metrics_dir = service["environment"].get("PROMETHEUS_MULTIPROC_DIR")
    assert metrics_dir is None or metrics_dir in writable


def test_secrets_are_required_not_defaulted() -> None:
    raw = load(COMPOSE_FILE)
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "PUBLIC_BASE_URL"):
        missing = {key: value for key, value in OPERATOR_ENV.items() if key != name}
        with pytest.raises(KeyError, match=name):
            interpolate(raw, missing)


def app_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings."""
    return {key: str(value) for key, value in service["environment"].items()}


def load_production(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the app builds from exactly ``env`` (the machine's variables removed)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_production_profile_accepts_the_compose_environment(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    env = app_environment(services_of(compose)[name])
    assert env["APP_ENV"] == "production"
    assert set(env) - set(Settings.model_fields) <= PROCESS_VARIABLES, "a misspelt setting?"
    settings = load_production(env, monkeypatch)
    # nginx is the one proxy: exactly one trusted hop, or clients could pick their address.
    assert settings.PROXY_FIX_X_FOR == 1
    assert settings.database_url.host == "postgres"
    assert settings.broker_url == "redis://redis:6379/0"


def test_the_production_profile_refuses_a_short_secret_key(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = app_environment(services_of(compose)["api-1"]) | {"SECRET_KEY": "too-short"}
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_production(env, monkeypatch)


def test_the_docker_test_override_stays_in_production_with_one_named_receiver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    override = load(TEST_OVERRIDE)["services"]
    base = load(COMPOSE_FILE)["services"]
    assert "ports" not in override["receiver"]
    for name in ("api-1", "api-2", "worker"):
        merged = interpolate(
            base[name]["environment"] | override[name]["environment"],
            OPERATOR_ENV,
        )
        settings = load_production({k: str(v) for k, v in merged.items()}, monkeypatch)
        assert settings.APP_ENV == "production"
        assert settings.WEBHOOK_ALLOWED_PRIVATE_HOSTS == ("receiver",)
        assert settings.WEBHOOK_REQUIRE_HTTPS
        assert not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS


def gunicorn_default(name: str) -> int:
    """A default of deploy/gunicorn.conf.py (``_int("NAME", default)``)."""
    match = re.search(rf'_int\("{name}", (\d+)\)', GUNICORN_CONF)
    assert match, f"deploy/gunicorn.conf.py no longer reads {name}"
    return int(match.group(1))


def seconds(value: str) -> int:
    """``40s`` / ``2m`` as seconds."""
    number, unit = re.fullmatch(r"(\d+)([sm])", value).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit == "m" else 1)


def test_timeouts_fit_together(compose: dict[str, Any]) -> None:
    """Graceful shutdown fits in the stop period; nginx closes idle upstreams before gunicorn."""
    graceful = gunicorn_default("GUNICORN_GRACEFUL_TIMEOUT")
    for name in API_SERVICES:
        assert seconds(services_of(compose)[name]["stop_grace_period"]) > graceful
    upstream_idle = re.search(r"upstream api \{[^}]*keepalive_timeout (\d+)s;", NGINX_CONF)
    assert upstream_idle
    assert int(upstream_idle.group(1)) < gunicorn_default("GUNICORN_KEEPALIVE")
    read_timeout = re.search(r"proxy_read_timeout (\d+)s;", NGINX_CONF)
    assert read_timeout
    assert int(read_timeout.group(1)) > gunicorn_default("GUNICORN_TIMEOUT")


def test_the_body_limit_matches_max_content_length() -> None:
    match = re.search(r"client_max_body_size (\d+)m;", NGINX_CONF)
    assert match
    assert int(match.group(1)) * 1024 * 1024 == Settings.model_fields["MAX_CONTENT_LENGTH"].default


def test_the_load_balancer_forwards_the_client_and_request_id() -> None:
    headers = dict(re.findall(r"proxy_set_header ([\w-]+) ([^;]+);", NGINX_CONF))
    assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["X-Request-ID"] == "$request_id_out"
    assert headers["Connection"] == "$upstream_connection"  # upstream keepalive
    assert re.search(r"upstream api \{[^}]*\n\s*keepalive \d+;", NGINX_CONF)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode
    != 0,
    reason="the docker CLI with the compose plugin is not installed",
)
@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", TEST_OVERRIDE]])
def test_docker_compose_accepts_the_files(files: list[str | Path], tmp_path: Path) -> None:
    env = OPERATOR_ENV | {"DOCKER_TEST_DIR": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    arguments = [arg for file in files for arg in ("--file", str(file))]
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(PROJECT_ROOT), *arguments, "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
