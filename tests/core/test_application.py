"""The service's Flask class remembers which functions need wrapping, within a bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.core import application
from app.core.application import ServiceFlask


def test_create_app_builds_the_service_class(tmp_path: Path) -> None:
    assert isinstance(
        create_app({"APP_ENV": "testing", "INSTANCE_PATH": str(tmp_path)}), ServiceFlask
    )


def test_each_function_is_inspected_once(monkeypatch: pytest.MonkeyPatch) -> None:
    inspected: list[Any] = []
    original = Flask.ensure_sync

    def counting(self: Flask, func: Any) -> Any:
        inspected.append(func)
        return original(self, func)

    monkeypatch.setattr(Flask, "ensure_sync", counting)
    app = ServiceFlask(__name__)

    def view() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view
    assert inspected == [view]


def test_past_the_bound_functions_are_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(application, "MAX_REMEMBERED_FUNCTIONS", 2)
    app = ServiceFlask(__name__)
    functions = [lambda index=index: index for index in range(5)]

    for function in functions:
        assert app.ensure_sync(function) is function

    assert len(app._sync_functions) == 2


def test_an_unhashable_callable_is_still_answered() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> str:
            return "ok"

    app = ServiceFlask(__name__)
    callable_object = Unhashable()
    assert app.ensure_sync(callable_object) is callable_object
