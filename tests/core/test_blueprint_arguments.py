"""Argument schemas are built once, not for every request."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from app.tasks.schemas import TaskQueryArgs
from tests.factories import auth_headers


def test_the_query_schema_is_not_instantiated_per_request(
    client: FlaskClient, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    original = TaskQueryArgs.__init__

    def counting(self: TaskQueryArgs, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(TaskQueryArgs, "__init__", counting)
    for _ in range(3):
        response = client.get("/api/v1/tasks?page_size=5&status=todo", headers=auth_headers(user))
        assert response.status_code == 200
    assert built == []
