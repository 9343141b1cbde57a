"""The README stays true: its settings table, make targets, commands and curl examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound

from app.config import PROJECT_ROOT, ConfigError, Settings, load_settings
from tests.support.settings import clear_settings_environment

README = (PROJECT_ROOT / "README.md").read_text()
ENV_EXAMPLE = (PROJECT_ROOT / ".env.example").read_text()
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text()
CODE_SPAN = re.compile(r"`([^`]*)`")


def table_after(header: str) -> list[list[str]]:
    """The rows (cells stripped) of the Markdown table whose header row starts with ``header``."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:  # skip the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def settings_rows() -> dict[str, tuple[str, str]]:
    """Setting name -> (default cell, meaning cell)."""
    rows = {}
    for name_cell, default, meaning in table_after("| Setting | Default | Meaning |"):
        match = CODE_SPAN.fullmatch(name_cell)
        assert match, f"setting names are code spans: {name_cell!r}"
        assert match.group(1) not in rows, f"{match.group(1)} is listed twice"
        rows[match.group(1)] = (default, meaning)
    return rows


def test_settings_table_names_exactly_the_settings() -> None:
    documented = set(settings_rows())
    fields = set(Settings.model_fields)
    assert fields - documented == set(), "add these settings to the README table"
    assert documented - fields == set(), "these README rows name no setting"


def test_settings_table_rows_are_complete() -> None:
    for name, (default, meaning) in settings_rows().items():
        assert default, f"{name}: no default"
        assert len(meaning) > 10, f"{name}: say what it means"


def documented_value(default_cell: str) -> str | None:
    """The first code span of a default cell, or None when the cell is prose only."""
    match = CODE_SPAN.search(default_cell)
    return match.group(1) if match else None


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_settings_table_defaults_match_the_code(name: str) -> None:
    default: Any = Settings.model_fields[name].default
    cell, _ = settings_rows().get(name, ("", ""))
    shown = documented_value(cell)
    if default is None or default == "":
        assert cell.startswith("none"), f"{name}: the README should say the default is none"
    elif isinstance(default, bool):
        assert shown == str(default).lower(), name
    elif isinstance(default, int | float):
        assert shown is not None, name
        assert float(shown) == float(default), name
    elif isinstance(default, str):
        assert shown == default, name
    elif isinstance(default, tuple | list):
        assert shown is not None, name
        assert json.loads(shown) == list(default), name
    elif isinstance(default, Path):
        assert shown is not None, name
        assert default.name in shown, name


def test_the_two_commands_come_first() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
    assert blocks[0].strip() == "make run"
    assert blocks[1].strip() == "make test"
    assert README.index("make run") < README.index("make test")


def make_targets() -> set[str]:
    """The documented targets of the Makefile (those with a ``## help`` comment)."""
    return set(re.findall(r"^([a-z-]+):.*## ", MAKEFILE, flags=re.MULTILINE))


def test_make_targets_table_names_exactly_the_makefile_targets() -> None:
    documented = {
        CODE_SPAN.fullmatch(cells[0]).group(1).removeprefix("make ")  # type: ignore[union-attr]
        for cells in table_after("| Target | What it does |")
    }
    assert documented == make_targets()


def test_flask_commands_in_the_readme_exist(app: Flask) -> None:
    mentioned = set(re.findall(r"flask(?: --app wsgi)? (db|users) ([a-z][a-z-]*)", README))
    assert ("db", "upgrade") in mentioned
    assert ("users", "create-admin") in mentioned
    for group, command in mentioned:
        commands = app.cli.commands[group].commands  # type: ignore[attr-defined]
        assert command in commands, f"flask {group} {command}"


def test_curl_examples_hit_existing_routes(app: Flask) -> None:
    adapter = app.url_map.bind("localhost")
    examples = []
    for line in README.splitlines():
        target = re.search(r"\$API(/[\w/.-]*)", line)
        if line.startswith("curl ") and target:
            method = re.search(r" -X (\w+) ", line)
            examples.append((method.group(1) if method else "", target.group(1)))
    assert len(examples) >= 8
    for method, path in examples:
        try:
            adapter.match(f"/api/v1{path}", method=method or "GET")
        except (NotFound, MethodNotAllowed) as error:
            pytest.fail(f"{method or 'GET'} /api/v1{path}: {type(error).__name__}")


def env_example_settings() -> dict[str, str]:
    """NAME -> value of every (commented-out) assignment in .env.example."""
    pairs = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, flags=re.MULTILINE)
    return dict(pairs)


def test_env_example_lists_exactly_the_settings() -> None:
    assert set(env_example_settings()) == set(Settings.model_fields)


def test_env_example_changes_nothing_until_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(ENV_EXAMPLE)
    settings = load_settings(APP_ENV="development", INSTANCE_PATH=str(tmp_path / "instance"))
    assert settings.is_sqlite


def test_env_example_values_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented, every placeholder passes validation (so copying it cannot break startup)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    values = env_example_settings()
    values.pop("INSTANCE_PATH")
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    settings = load_settings(APP_ENV="development", INSTANCE_PATH=str(tmp_path / "instance"))
    assert values["DATABASE_URL"] == settings.DATABASE_URL
    assert settings.SECRET_KEY is not None
    assert len(settings.SECRET_KEY.get_secret_value()) >= 32


SECONDS_PER_UNIT = {"": 1, "s": 1, "min": 60, "h": 3600}
STATED_RANGE = re.compile(r"\((\d+(?:\.\d+)?) ?(s|min|h)? to (\d+(?:\.\d+)?) ?(s|min|h)?\)")


def stated_ranges() -> dict[str, tuple[float, float]]:
    """Setting -> (lowest, highest) for every meaning cell that states a range, "(30 s to 24 h)"."""
    ranges = {}
    for name, (_, meaning) in settings_rows().items():
        match = STATED_RANGE.search(meaning)
        if match:
            low, low_unit, high, high_unit = match.groups()
            ranges[name] = (
                float(low) * SECONDS_PER_UNIT[low_unit or ""],
                float(high) * SECONDS_PER_UNIT[high_unit or ""],
            )
    return ranges


def test_the_ranges_the_settings_table_states_are_the_ones_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_settings_environment(monkeypatch)
    ranges = stated_ranges()
    assert {"ACCESS_TOKEN_TTL_SECONDS", "PASSWORD_RESET_TTL_SECONDS"} <= set(ranges)
    for name, (low, high) in ranges.items():
        as_type = type(Settings.model_fields[name].default)
        step = 1 if as_type is int else 0.01
        for inside in (low, high):
            settings = load_settings(
                APP_ENV="testing", INSTANCE_PATH=str(tmp_path), **{name: as_type(inside)}
            )
            assert getattr(settings, name) == as_type(inside)
        for outside in (low - step, high + step):
            with pytest.raises(ConfigError, match=name):
                load_settings(
                    APP_ENV="testing", INSTANCE_PATH=str(tmp_path), **{name: as_type(outside)}
                )
