"""Copies of this repository in a temporary folder, for tests that change the code itself.

A copy holds the files git tracks or would track, as they are in the working tree (so a change
is tested before it is committed), committed in a git repository of its own: the rename lists
files with git, and the tests read what changed with git status. Commands run in it borrow the
environment running the tests (``make VENV=...``, this interpreter), so nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from app.config import PROJECT_ROOT
from tests.support.commands import run

# The suite's fast part: no live stack, no browser; it still covers config, the OpenAPI document,
# the README, a whole feature's routes and the deployment manifests.
FAST_TESTS = (
    "tests/test_config.py",
    "tests/test_openapi.py",
    "tests/test_readme.py",
    "tests/tasks/test_routes.py",
    "tests/notifications/test_service.py",
    "tests/deploy/test_compose.py",
)

# The Makefile's install steps, by the files that record them.
MAKE_MARKERS = (".python-ok", ".installed-runtime", ".installed-dev")


def git(*args: str, cwd: Path) -> str:
    """Run git in ``cwd`` and return its output (fails the test on an error)."""
    result = run(["git", *args], cwd=cwd)
    assert result.returncode in (0, 1), f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def copy_repository(destination: Path) -> Path:
    """Copy the files git tracks or would track into ``destination``; make it a repository."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    for relative in {item.decode() for item in listing.split(b"\0") if item}:
        source = PROJECT_ROOT / relative
        if not source.is_file():
            continue  # deleted in the working tree and not committed yet
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    git("init", "-q", cwd=destination)
    git("add", "-A", cwd=destination)
    identity = ("-c", "user.name=template test", "-c", "user.email=template-test@example.com")
    git(*identity, "commit", "-q", "--no-verify", "-m", "copy", cwd=destination)
    return destination


def make(copy: Path, environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``make args`` in ``copy`` with this interpreter's environment as its virtualenv (never
    created nor installed into: its marker files count as up to date)."""
    venv = Path(sys.prefix)
    return run(
        [
            "make",
            "--no-print-directory",
            f"VENV={venv}",
            *(f"--old-file={venv / marker}" for marker in MAKE_MARKERS),
            *args,
        ],
        cwd=copy,
        env=environment,
        timeout=300,
    )


def copy_environment(copy: Path, database_server_url: str, redis_url: str) -> dict[str, str]:
    """The environment for commands run in ``copy``: its own code first, this run's servers."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "TEST_DATABASE_URL": database_server_url,
        "TEST_REDIS_URL": redis_url,
        # The fast tests need no plugin; not loading them saves seconds on every run.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    for name in ("APP_ENV", "DATABASE_URL", "REDIS_URL", "FLASK_APP"):
        environment.pop(name, None)
    return environment


def run_tests(
    copy: Path, paths: tuple[str, ...] | list[str], environment: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest -x -q paths`` in ``copy``, with the copy's own code; paths the copy
    does not have (an example feature removed) are left out."""
    present = [path for path in paths if (copy / path).exists()]
    return run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *present],
        cwd=copy,
        env=environment,
        timeout=timeout,
    )


def tail(result: subprocess.CompletedProcess[str], lines: int = 40) -> str:
    """The end of a command's output, for assertion messages."""
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])
