"""``make rename``: every spelling of the service's name changes, nothing else, and it is safe to
run again; on a copy of this repository the fast part of the suite still passes afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.commands import run
from tests.support.deploy_scripts import RENAME, load_rename
from tests.template.repository import (
    FAST_TESTS,
    copy_environment,
    copy_repository,
    git,
    make,
    run_tests,
    tail,
)

# The README's example; another when the repository already has that name (it was renamed).
NEW_NAMES = (("Acme Orders", "acme-orders"), ("Beta Billing", "beta-billing"))


def recorded_name(root: Path) -> tuple[str, str]:
    """(name, slug) from ``[tool.template]`` of ``root``'s pyproject.toml."""
    record = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["template"]
    return record["name"], record["slug"]


def old_name_left(root: Path, name: str, slug: str) -> str:
    """``git grep`` lines of ``root`` still holding ``name`` or ``slug`` in any spelling."""
    words = slug.split("-")
    slug_forms = "[-_ ]".join(re.escape(word) for word in words)
    excluded = [f":(exclude,glob){pattern}" for pattern in load_rename().EXCLUDED]
    found = git("grep", "-n", "-I", "-i", "-E", slug_forms, "--", ".", *excluded, cwd=root)
    found += git("grep", "-n", "-I", "-i", "-F", name, "--", ".", *excluded, cwd=root)
    return found


def rename(root: Path, name: str, slug: str) -> subprocess.CompletedProcess[str]:
    """Run deploy/rename.py on ``root``."""
    return run([sys.executable, str(RENAME), f"--root={root}", f"--name={name}", f"--slug={slug}"])


@pytest.fixture
def small_repository(tmp_path: Path) -> Path:
    """A git repository holding the name in every spelling, and files to leave alone."""
    files = {
        "pyproject.toml": (
            '[project]\nname = "my-service"\n\n'
            '[tool.template]\nname = "My Service"\nslug = "my-service"\n'
        ),
        "app/config.py": (
            'SERVICE_NAME = "my-service"\nJWT_AUDIENCE = "my-service-api"\n'
            'MAIL_FROM = "My Service <no-reply@example.com>"\n'
            "MODULE = my_service\nPREFIX = MY_SERVICE_\n"
        ),
        "README.md": "# My Service\n\nWelcome to my-service. Not my-services, nor mymy-service.\n",
        "deploy/k8s.yaml": "labels:\n  app.kubernetes.io/name: my-service\n",
        "migrations/versions/0001_initial.py": "# created for my-service\n",
        "app/static/swagger-ui/swagger-ui-bundle.js": "/* my-service */\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\0my-service\0")
    git("init", "-q", cwd=tmp_path)
    git("add", "-A", cwd=tmp_path)
    return tmp_path


def contents(root: Path) -> dict[str, bytes]:
    """Every file of ``root`` outside .git, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


def test_every_spelling_changes_and_nothing_else(small_repository: Path) -> None:
    result = rename(small_repository, "Acme Orders", "acme-orders")

    assert result.returncode == 0, result.stderr
    assert "renamed My Service (my-service) to Acme Orders (acme-orders)" in result.stdout
    config = (small_repository / "app/config.py").read_text()
    assert config == (
        'SERVICE_NAME = "acme-orders"\nJWT_AUDIENCE = "acme-orders-api"\n'
        'MAIL_FROM = "Acme Orders <no-reply@example.com>"\n'
        "MODULE = acme_orders\nPREFIX = ACME_ORDERS_\n"
    )
    assert (small_repository / "README.md").read_text() == (
        "# Acme Orders\n\nWelcome to acme-orders. Not my-services, nor mymy-service.\n"
    )
    assert (
        "app.kubernetes.io/name: acme-orders" in (small_repository / "deploy/k8s.yaml").read_text()
    )
    assert recorded_name(small_repository) == ("Acme Orders", "acme-orders")
    assert 'name = "acme-orders"' in (small_repository / "pyproject.toml").read_text()


def test_history_vendored_and_binary_files_are_left_alone(small_repository: Path) -> None:
    untouched = (
        "migrations/versions/0001_initial.py",
        "app/static/swagger-ui/swagger-ui-bundle.js",
    )
    before = contents(small_repository)

    assert rename(small_repository, "Acme Orders", "acme-orders").returncode == 0

    after = contents(small_repository)
    for relative in (*untouched, "logo.png"):
        assert after[relative] == before[relative], relative


def test_running_it_again_changes_nothing_and_a_second_rename_works(
    small_repository: Path,
) -> None:
    assert rename(small_repository, "Acme Orders", "acme-orders").returncode == 0
    renamed = contents(small_repository)

    again = rename(small_repository, "Acme Orders", "acme-orders")

    assert again.returncode == 0, again.stderr
    assert "already named Acme Orders (acme-orders); nothing to do" in again.stdout
    assert contents(small_repository) == renamed

    second = rename(small_repository, "Beta Billing", "beta-billing")

    assert second.returncode == 0, second.stderr
    assert recorded_name(small_repository) == ("Beta Billing", "beta-billing")
    assert old_name_left(small_repository, "Acme Orders", "acme-orders") == ""
    assert 'JWT_AUDIENCE = "beta-billing-api"' in (small_repository / "app/config.py").read_text()


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "Acme-Orders",
        "acme_orders",
        "acme orders",
        "-acme",
        "acme-",
        "acme--orders",
        "1acme",
        "a" * 51,
    ],
)
def test_a_malformed_slug_is_refused_in_one_line(small_repository: Path, slug: str) -> None:
    before = contents(small_repository)

    result = rename(small_repository, "Acme Orders", slug)

    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert f"SLUG {slug!r} is not a valid slug" in result.stderr
    assert contents(small_repository) == before


@pytest.mark.parametrize("name", ["", "   ", " Acme", 'Acme "Orders"', "Acme\nOrders", "A" * 81])
def test_an_empty_or_unsafe_name_is_refused_in_one_line(small_repository: Path, name: str) -> None:
    before = contents(small_repository)

    result = rename(small_repository, name, "acme-orders")

    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("rename: NAME ")
    assert contents(small_repository) == before


def test_a_name_the_code_already_uses_is_refused(small_repository: Path) -> None:
    (small_repository / "app/orders.py").write_text("def list_orders() -> None: ...\n")
    (small_repository / "CONTRIBUTING.md").write_text("make rename NAME=Orders SLUG=orders\n")
    before = contents(small_repository)

    result = rename(small_repository, "Orders", "orders")

    assert result.returncode == 2
    assert "already appears in app/orders.py:1;" in result.stderr  # not the usage example
    assert contents(small_repository) == before


@pytest.mark.slow
def test_the_renamed_copy_has_no_old_name_and_passes_the_fast_suite(
    tmp_path: Path, postgres_server_url: str, redis_url: str
) -> None:
    copy = copy_repository(tmp_path / "copy")
    old_name, old_slug = recorded_name(copy)
    new_name, new_slug = next(names for names in NEW_NAMES if names != (old_name, old_slug))
    environment = copy_environment(copy, postgres_server_url, redis_url)

    renamed = make(copy, environment, "rename", f"NAME={new_name}", f"SLUG={new_slug}")

    assert renamed.returncode == 0, tail(renamed)
    assert old_name_left(copy, old_name, old_slug) == ""
    # Where the name lives (spot checks; the grep above proves the rest).
    assert recorded_name(copy) == (new_name, new_slug)
    assert (copy / "README.md").read_text().startswith(f"# {new_name}\n")
    assert f'SERVICE_NAME: str = "{new_slug}"' in (copy / "app/config.py").read_text()
    assert f"name: {new_slug}\n" in (copy / "docker-compose.yml").read_text()
    k8s = (copy / "deploy/k8s/base/api-deployment.yaml").read_text()
    assert f"app.kubernetes.io/name: {new_slug}" in k8s
    workflow = (copy / ".github/workflows/ci.yml").read_text()
    assert f"name: {new_name} CI" in workflow
    title = run(
        [
            sys.executable,
            "-c",
            "from app import create_app; "
            "app = create_app({'APP_ENV': 'testing', 'DATABASE_URL': 'sqlite://'}); "
            "print(app.extensions['api'].spec.to_dict()['info']['title'])",
        ],
        cwd=copy,
        env=environment,
    )
    assert title.stdout.strip() == new_slug, tail(title)

    changed = git("diff", "--stat", cwd=copy)
    again = make(copy, environment, "rename", f"NAME={new_name}", f"SLUG={new_slug}")
    assert again.returncode == 0, tail(again)
    assert "nothing to do" in again.stdout
    assert git("diff", "--stat", cwd=copy) == changed

    suite = run_tests(copy, FAST_TESTS, environment, timeout=240)
    print(tail(suite, 3))
    assert suite.returncode == 0, tail(suite)
