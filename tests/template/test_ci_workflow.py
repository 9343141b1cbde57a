"""The users' CI (.github/workflows/ci.yml) is valid for actionlint and runs what `make lint` and
`make test` run; the pre-commit hooks run the same tools with the same settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from app.config import PROJECT_ROOT
from tests.support.commands import run

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"
PRE_COMMIT = PROJECT_ROOT / ".pre-commit-config.yaml"
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A tool installed by requirements-dev.txt (beside this interpreter, else on PATH)."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is missing: make install-dev"
    return found


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on ``paths``; shellcheck and pyflakes integrations off, so the result does not
    depend on what else is installed."""
    return run([tool("actionlint"), "-shellcheck=", "-pyflakes=", *map(str, paths)])


def lint_commands() -> list[str]:
    """The commands of `make lint`, without the ``$(BIN)/`` prefix."""
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", MAKEFILE, flags=re.MULTILINE)
    assert recipe
    return [line.strip().removeprefix("$(BIN)/") for line in recipe.group(1).splitlines()]


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def run_steps(job: dict[str, Any]) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    workflows = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in workflows

    result = actionlint(*workflows)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        WORKFLOW.read_text().replace(
            "runs-on: ubuntu-24.04", "runs-on: ubuntu-24.04\n    needs: nope", 1
        )
    )

    result = actionlint(broken)

    assert result.returncode == 1
    assert '"nope" which does not exist' in result.stdout
    assert "[job-needs]" in result.stdout


def test_the_lint_job_runs_make_lint_and_the_test_job_the_suite() -> None:
    jobs = workflow()["jobs"]
    assert run_steps(jobs["lint"]) == ["make lint"]
    assert lint_commands() == [
        "ruff check .",
        "ruff format --check .",
        "mypy",
        "lint-imports --no-logo",
    ]
    assert run_steps(jobs["test"])[-2:] == ["make install-dev", ".venv/bin/pytest -q"]


def test_the_test_job_uses_postgresql_16_and_redis_7_service_containers() -> None:
    job = workflow()["jobs"]["test"]
    assert job["services"]["postgres"]["image"] == "postgres:16"
    assert job["services"]["redis"]["image"] == "redis:7"
    assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in job["env"]["TEST_DATABASE_URL"]
    assert job["env"]["TEST_REDIS_URL"].startswith("redis://redis:6379/")


def test_the_image_job_builds_the_dockerfile_without_pushing() -> None:
    build = next(
        step
        for step in workflow()["jobs"]["image"]["steps"]
        if step.get("uses", "").startswith("docker/build-push-action@")
    )
    assert build["with"]["context"] == "."
    assert build["with"]["push"] is False
    assert (PROJECT_ROOT / "Dockerfile").is_file()


def test_pre_commit_config_is_valid_and_runs_the_lint_tools() -> None:
    result = run([tool("pre-commit"), "validate-config", str(PRE_COMMIT)])
    assert result.returncode == 0, result.stdout + result.stderr

    hooks = [
        hook for repo in yaml.safe_load(PRE_COMMIT.read_text())["repos"] for hook in repo["hooks"]
    ]
    entries = [hook["entry"].removeprefix(".venv/bin/") for hook in hooks]
    # The same tools as `make lint`; per-file hooks get the file names instead of "." (and
    # --force-exclude so pyproject's excludes still apply), whole-project ones none.
    expected = [
        command.replace(" .", " --force-exclude").replace(
            "--check --force-exclude", "--force-exclude"
        )
        for command in lint_commands()
    ]
    assert entries == expected
    for hook in hooks:
        assert hook["language"] == "system", "local tools: installing the hooks downloads nothing"
        assert hook.get("pass_filenames", True) == ("--force-exclude" in hook["entry"])


def test_the_licence_is_mit() -> None:
    licence = (PROJECT_ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in licence


def test_the_changelog_keeps_an_unreleased_section() -> None:
    changelog = (PROJECT_ROOT / "CHANGELOG.md").read_text()
    assert "https://keepachangelog.com/en/1.1.0/" in changelog
    sections = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.MULTILINE)
    assert sections[0] == "Unreleased"
    assert re.search(r"^### (Added|Changed|Deprecated|Removed|Fixed|Security)$", changelog, re.M)


def test_contributing_names_only_real_make_targets() -> None:
    contributing = (PROJECT_ROOT / "CONTRIBUTING.md").read_text()
    targets = set(re.findall(r"^([a-z-]+):", MAKEFILE, flags=re.MULTILINE))
    mentioned = set(re.findall(r"\bmake ([a-z][a-z-]*)", contributing))
    assert {"run", "test", "lint"} <= mentioned
    assert mentioned <= targets
