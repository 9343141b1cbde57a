"""``/api/v1/tasks``: every operation's success and failure paths over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.tasks.models import Task, TaskPriority
from app.users.models import User
from tests.factories import auth_headers
from tests.tasks.factories import TaskFactory
from tests.tasks.helpers import event_names, task_events

TASKS = "/api/v1/tasks"
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def url(task: Task | int) -> str:
    """The URL of ``task``."""
    return f"{TASKS}/{task if isinstance(task, int) else task.id}"


def create(client: FlaskClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    """Create a task through the API; its body."""
    response = client.post(TASKS, json={"title": "A task", **fields}, headers=headers)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json
    return body


def ids(response: Any) -> list[int]:
    """The ids of a list response's items."""
    return [item["id"] for item in response.json["items"]]


@pytest.fixture
def headers(user: User) -> dict[str, str]:
    """``user``'s Authorization header."""
    return auth_headers(user)


# --- POST /tasks -------------------------------------------------------------------------------


def test_create_returns_201_with_location_etag_and_the_task(
    client: FlaskClient, user: User, headers: dict[str, str], db_session: Session
) -> None:
    response = client.post(
        TASKS,
        json={
            "title": "Write the report",
            "description": "Numbers,\nwith charts.",
            "priority": "high",
            "due_at": "2030-01-31T17:00:00+01:00",
            "tags": ["work", "q1"],
        },
        headers=headers,
    )

    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"] == url(body["id"])
    assert response.headers["ETag"] == '"1"'
    assert body == {
        "id": body["id"],
        "owner_id": user.id,
        "title": "Write the report",
        "description": "Numbers,\nwith charts.",
        "status": "todo",
        "priority": "high",
        "due_at": "2030-01-31T16:00:00+00:00",
        "tags": ["work", "q1"],
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "completed_at": None,
        "version": 1,
    }
    assert client.get(response.headers["Location"], headers=headers).json == body
    assert event_names(db_session) == ["task.created"]


def test_create_with_only_a_title_takes_the_defaults(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    body = create(client, headers, title="Minimal")

    assert {key: body[key] for key in ("description", "status", "priority", "due_at", "tags")} == {
        "description": None,
        "status": "todo",
        "priority": "normal",
        "due_at": None,
        "tags": [],
    }


def test_create_trims_the_title_and_de_duplicates_tags_in_order(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    body = create(client, headers, title="  Spaced  ", tags=["b", "a", " b ", "a", "c"])

    assert (body["title"], body["tags"]) == ("Spaced", ["b", "a", "c"])


def test_create_as_done_sets_completed_at(client: FlaskClient, headers: dict[str, str]) -> None:
    body = create(client, headers, status="done")

    assert body["completed_at"] == body["created_at"]


def test_create_requires_a_token(client: FlaskClient) -> None:
    response = client.post(TASKS, json={"title": "A"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_create_refuses_a_body_that_is_not_json(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    response = client.post(TASKS, data="title=A", headers=headers, content_type="text/plain")

    assert response.status_code == 415


def test_create_refuses_malformed_json(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post(
        TASKS, data='{"title": ', headers=headers, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json["code"] == "bad_request"


@pytest.mark.parametrize(
    "field", ["id", "owner_id", "created_at", "updated_at", "completed_at", "version", "role"]
)
def test_create_refuses_read_only_and_unknown_fields(
    client: FlaskClient, headers: dict[str, str], db_session: Session, field: str
) -> None:
    response = client.post(TASKS, json={"title": "A", field: 1}, headers=headers)

    assert response.status_code == 422
    assert field in response.json["errors"]["json"]
    assert db_session.scalar(select(func.count()).select_from(Task)) == 0


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ({"title": ""}, False),
        ({"title": "   "}, False),
        ({"title": "x"}, True),
        ({"title": "x" * 200}, True),
        ({"title": "x" * 201}, False),
        ({"title": "two\nlines"}, False),
        ({"title": "nul\x00"}, False),
        ({"title": None}, False),
        ({"description": "d" * 10_000}, True),
        ({"description": "d" * 10_001}, False),
        ({"description": "tab\tand\r\nnewline"}, True),
        ({"description": "bell\x07"}, False),
        ({"description": None}, True),
        ({"status": "finished"}, False),
        ({"status": None}, False),
        ({"priority": "urgent"}, False),
        ({"priority": 2}, False),
        ({"due_at": "2030-01-01T09:00:00Z"}, True),
        ({"due_at": "2030-01-01T09:00:00"}, False),
        ({"due_at": "tomorrow"}, False),
        ({"due_at": None}, True),
        ({"tags": [f"t{i}" for i in range(20)]}, True),
        ({"tags": [f"t{i}" for i in range(21)]}, False),
        # The list as sent is capped (the document's maxItems), duplicates included.
        ({"tags": [*[f"t{i}" for i in range(20)], "t0"]}, False),
        ({"tags": ["x" * 32]}, True),
        ({"tags": ["x" * 33]}, False),
        ({"tags": [""]}, False),
        ({"tags": [" "]}, False),
        ({"tags": "work"}, False),
        ({"tags": [1]}, False),
        ({"tags": None}, False),
    ],
)
def test_create_validates_each_field(
    client: FlaskClient, headers: dict[str, str], fields: dict[str, Any], valid: bool
) -> None:
    response = client.post(TASKS, json={"title": "A", **fields}, headers=headers)

    if valid:
        assert response.status_code == 201, response.json
    else:
        assert response.status_code == 422
        assert response.json["code"] == "validation_error"
        assert set(response.json["errors"]["json"]) == set(fields)


def test_create_requires_a_title(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post(TASKS, json={"description": "no title"}, headers=headers)

    assert response.status_code == 422
    assert "title" in response.json["errors"]["json"]


# --- GET /tasks/{id} ---------------------------------------------------------------------------


def test_get_returns_the_task_with_a_strong_etag(
    client: FlaskClient, user: User, headers: dict[str, str]
) -> None:
    task = TaskFactory(owner=user, title="Mine")

    response = client.get(url(task), headers=headers)

    assert response.status_code == 200
    assert response.json["title"] == "Mine"
    assert response.headers["ETag"] == '"1"'
    assert "Authorization" in response.headers["Vary"]


def test_get_answers_304_while_the_etag_is_current_and_200_after_a_change(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    created = create(client, headers)

    not_modified = client.get(url(created["id"]), headers={**headers, "If-None-Match": '"1"'})
    weak = client.get(url(created["id"]), headers={**headers, "If-None-Match": 'W/"1", "9"'})
    client.patch(url(created["id"]), json={"title": "changed"}, headers=headers)
    modified = client.get(url(created["id"]), headers={**headers, "If-None-Match": '"1"'})

    assert not_modified.status_code == 304
    assert not_modified.data == b""
    assert not_modified.headers["ETag"] == '"1"'
    assert weak.status_code == 304
    assert modified.status_code == 200
    assert (modified.headers["ETag"], modified.json["title"]) == ('"2"', "changed")


def test_get_of_a_missing_task_is_404(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get(url(2**40), headers=headers)

    assert response.status_code == 404
    assert response.json["code"] == "not_found"


def test_get_of_an_id_beyond_64_bits_is_404(client: FlaskClient, headers: dict[str, str]) -> None:
    assert client.get(url(2**63), headers=headers).status_code == 404


def test_get_requires_a_token(client: FlaskClient, user: User) -> None:
    task = TaskFactory(owner=user)

    assert client.get(url(task)).status_code == 401


# --- cross-user access -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("get", None),
        ("put", {"title": "mine now"}),
        ("patch", {"title": "mine now"}),
        ("delete", None),
    ],
)
def test_another_users_task_is_404_never_403(
    client: FlaskClient,
    headers: dict[str, str],
    other_user: User,
    db_session: Session,
    method: str,
    body: dict[str, Any] | None,
) -> None:
    theirs = TaskFactory(owner=other_user, title="Theirs")

    response = getattr(client, method)(url(theirs), json=body, headers=headers)

    assert response.status_code == 404
    assert response.json["code"] == "not_found"
    db_session.expire_all()
    assert db_session.get(Task, theirs.id).title == "Theirs"
    assert task_events(db_session) == []


def test_an_administrator_cannot_read_a_users_single_task(
    client: FlaskClient, admin: User, user: User
) -> None:
    task = TaskFactory(owner=user)

    assert client.get(url(task), headers=auth_headers(admin)).status_code == 404


# --- PUT /tasks/{id} ---------------------------------------------------------------------------


def test_put_replaces_every_field_and_resets_omitted_ones(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    created = create(
        client,
        headers,
        description="old",
        status="done",
        priority="high",
        due_at="2030-01-01T00:00:00Z",
        tags=["x"],
    )

    response = client.put(url(created["id"]), json={"title": "Replaced"}, headers=headers)

    assert response.status_code == 200
    body = response.json
    assert {
        key: body[key]
        for key in ("title", "description", "status", "priority", "due_at", "tags", "completed_at")
    } == {
        "title": "Replaced",
        "description": None,
        "status": "todo",
        "priority": "normal",
        "due_at": None,
        "tags": [],
        "completed_at": None,
    }
    assert (body["version"], response.headers["ETag"]) == (2, '"2"')
    assert event_names(db_session) == ["task.completed", "task.created", "task.updated"]


def test_put_requires_a_title(client: FlaskClient, headers: dict[str, str]) -> None:
    created = create(client, headers)

    response = client.put(url(created["id"]), json={"status": "done"}, headers=headers)

    assert response.status_code == 422
    assert "title" in response.json["errors"]["json"]


@pytest.mark.parametrize("field", ["id", "owner_id", "version", "completed_at"])
def test_put_refuses_read_only_fields(
    client: FlaskClient, headers: dict[str, str], field: str
) -> None:
    created = create(client, headers)

    response = client.put(url(created["id"]), json={"title": "B", field: 5}, headers=headers)

    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


def test_put_of_a_missing_task_is_404(client: FlaskClient, headers: dict[str, str]) -> None:
    assert client.put(url(2**40), json={"title": "B"}, headers=headers).status_code == 404


# --- PATCH /tasks/{id} -------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    created = create(client, headers, description="keep", tags=["keep"], priority="low")

    response = client.patch(url(created["id"]), json={"title": "New title"}, headers=headers)

    assert response.status_code == 200
    body = response.json
    assert (body["title"], body["description"], body["tags"], body["priority"]) == (
        "New title",
        "keep",
        ["keep"],
        "low",
    )
    assert response.headers["ETag"] == '"2"'
    assert body["updated_at"] > created["updated_at"]
    assert event_names(db_session) == ["task.created", "task.updated"]


def test_patch_can_clear_nullable_fields(client: FlaskClient, headers: dict[str, str]) -> None:
    created = create(client, headers, description="d", due_at="2030-01-01T00:00:00Z")

    body = client.patch(
        url(created["id"]), json={"description": None, "due_at": None}, headers=headers
    ).json

    assert (body["description"], body["due_at"]) == (None, None)


def test_patch_to_done_sets_completed_at_and_back_clears_it(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    created = create(client, headers)

    done = client.patch(url(created["id"]), json={"status": "done"}, headers=headers).json
    reopened = client.patch(url(created["id"]), json={"status": "todo"}, headers=headers).json

    assert done["completed_at"] == done["updated_at"]
    assert reopened["completed_at"] is None
    assert event_names(db_session) == [
        "task.completed",
        "task.created",
        "task.updated",
        "task.updated",
    ]


def test_patch_with_the_current_values_is_not_a_change(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    created = create(client, headers, title="Same")

    response = client.patch(url(created["id"]), json={"title": "Same"}, headers=headers)

    assert (response.status_code, response.headers["ETag"]) == (200, '"1"')
    assert response.json == created
    assert event_names(db_session) == ["task.created"]


@pytest.mark.parametrize("body", [{}, None])
def test_patch_needs_at_least_one_field(
    client: FlaskClient, headers: dict[str, str], body: dict[str, Any] | None
) -> None:
    created = create(client, headers)

    response = client.patch(url(created["id"]), json=body, headers=headers)

    assert response.status_code == 422
    assert response.json["code"] == "validation_error"


@pytest.mark.parametrize(
    "fields",
    [
        {"owner_id": 1},
        {"id": 1},
        {"version": 9},
        {"completed_at": "2030-01-01T00:00:00Z"},
        {"title": ""},
        {"status": "closed"},
        {"due_at": "2030-01-01T09:00:00"},
        {"tags": ["x" * 33]},
    ],
)
def test_patch_refuses_invalid_and_read_only_fields(
    client: FlaskClient, headers: dict[str, str], db_session: Session, fields: dict[str, Any]
) -> None:
    created = create(client, headers)

    response = client.patch(url(created["id"]), json=fields, headers=headers)

    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == set(fields)
    assert event_names(db_session) == ["task.created"]


def test_patch_of_a_missing_task_is_404(client: FlaskClient, headers: dict[str, str]) -> None:
    assert client.patch(url(2**40), json={"title": "B"}, headers=headers).status_code == 404


# --- DELETE /tasks/{id} ------------------------------------------------------------------------


def test_delete_returns_204_and_the_task_is_gone(
    client: FlaskClient, headers: dict[str, str], db_session: Session
) -> None:
    created = create(client, headers)

    response = client.delete(url(created["id"]), headers=headers)

    assert (response.status_code, response.data) == (204, b"")
    assert client.get(url(created["id"]), headers=headers).status_code == 404
    assert client.delete(url(created["id"]), headers=headers).status_code == 404
    assert task_events(db_session)[-1] == (
        "task.deleted",
        {"task_id": created["id"], "owner_id": created["owner_id"]},
    )


# --- If-Match ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"),
    [("put", {"title": "B"}), ("patch", {"title": "B"}), ("delete", None)],
)
@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', '"one"', ""])
def test_writes_with_a_stale_or_weak_if_match_fail_with_412(
    client: FlaskClient,
    headers: dict[str, str],
    db_session: Session,
    method: str,
    body: dict[str, Any] | None,
    if_match: str,
) -> None:
    created = create(client, headers, title="A")

    response = getattr(client, method)(
        url(created["id"]), json=body, headers={**headers, "If-Match": if_match}
    )

    assert response.status_code == 412
    assert response.json["code"] == "precondition_failed"
    assert client.get(url(created["id"]), headers=headers).json == created
    assert event_names(db_session) == ["task.created"]


@pytest.mark.parametrize(
    ("method", "body", "status"),
    [("put", {"title": "B"}, 200), ("patch", {"title": "B"}, 200), ("delete", None, 204)],
)
@pytest.mark.parametrize("if_match", ['"1"', '"7", "1"', "*"])
def test_writes_with_a_matching_if_match_succeed(
    client: FlaskClient,
    headers: dict[str, str],
    method: str,
    body: dict[str, Any] | None,
    status: int,
    if_match: str,
) -> None:
    created = create(client, headers, title="A")

    response = getattr(client, method)(
        url(created["id"]), json=body, headers={**headers, "If-Match": if_match}
    )

    assert response.status_code == status
    if status == 200:
        assert response.headers["ETag"] == '"2"'


def test_the_etag_of_a_read_guards_the_next_write(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    created = create(client, headers)
    etag = client.get(url(created["id"]), headers=headers).headers["ETag"]

    first = client.patch(
        url(created["id"]), json={"title": "1st"}, headers={**headers, "If-Match": etag}
    )
    second = client.patch(
        url(created["id"]), json={"title": "2nd"}, headers={**headers, "If-Match": etag}
    )
    third = client.patch(
        url(created["id"]),
        json={"title": "3rd"},
        headers={**headers, "If-Match": first.headers["ETag"]},
    )

    assert (first.status_code, second.status_code, third.status_code) == (200, 412, 200)


# --- GET /tasks: pagination --------------------------------------------------------------------


def test_list_returns_the_envelope_of_the_callers_tasks(
    client: FlaskClient, user: User, other_user: User, headers: dict[str, str]
) -> None:
    mine = [TaskFactory(owner=user, created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    TaskFactory(owner=other_user)

    response = client.get(TASKS, headers=headers)

    assert response.status_code == 200
    assert ids(response) == [task.id for task in reversed(mine)]
    assert response.json["meta"] == {"page": 1, "page_size": 20, "total": 3, "pages": 1}
    assert response.json["items"][0]["owner_id"] == user.id


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("page_size=0", 422),
        ("page_size=1", 200),
        ("page_size=100", 200),
        ("page_size=101", 422),
        ("page=0", 422),
        ("page=-1", 422),
        ("page=abc", 422),
        ("page=1", 200),
    ],
)
def test_list_page_bounds(
    client: FlaskClient, headers: dict[str, str], query: str, status: int
) -> None:
    response = client.get(f"{TASKS}?{query}", headers=headers)

    assert response.status_code == status
    if status == 422:
        assert set(response.json["errors"]["query"]) == {query.split("=")[0]}


def test_list_pages_through_everything_and_beyond_the_last_page_is_empty(
    client: FlaskClient, user: User, headers: dict[str, str]
) -> None:
    tasks = [TaskFactory(owner=user, created_at=T0 + timedelta(seconds=i)) for i in range(5)]

    pages = [
        client.get(f"{TASKS}?page={page}&page_size=2&sort=created_at", headers=headers)
        for page in (1, 2, 3, 4)
    ]

    assert [ids(page) for page in pages] == [
        [tasks[0].id, tasks[1].id],
        [tasks[2].id, tasks[3].id],
        [tasks[4].id],
        [],
    ]
    assert pages[3].json["meta"] == {"page": 4, "page_size": 2, "total": 5, "pages": 3}


def test_list_of_a_user_without_tasks_is_empty(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    response = client.get(TASKS, headers=headers)

    assert response.json == {
        "items": [],
        "meta": {"page": 1, "page_size": 20, "total": 0, "pages": 0},
    }


# --- GET /tasks: filters and sort --------------------------------------------------------------


def test_list_filters_by_status_priority_tag_due_and_title(
    client: FlaskClient, user: User, headers: dict[str, str]
) -> None:
    done = TaskFactory(owner=user, status="done", title="Ship the release")
    high = TaskFactory(owner=user, priority=TaskPriority.HIGH, title="Fix 100% CPU")
    tagged = TaskFactory(owner=user, tags=["home", "garden"], title="Mow")
    due = TaskFactory(owner=user, due_at=T0, title="Pay rent")
    snake = TaskFactory(owner=user, title="Rename snake_case", due_at=T0 + timedelta(days=30))

    def query(params: str) -> list[int]:
        response = client.get(f"{TASKS}?{params}", headers=headers)
        assert response.status_code == 200, response.json
        return ids(response)

    assert query("status=done") == [done.id]
    assert query("priority=high") == [high.id]
    assert query("tag=garden") == [tagged.id]
    assert query("tag=gard") == []
    assert query("due_after=2029-12-31T00:00:00Z&due_before=2030-01-02T00:00:00Z") == [due.id]
    assert query("q=SHIP") == [done.id]
    # % and _ are characters, not wildcards (as wildcards both would match "Ship the release").
    assert query("q=100%25") == [high.id]
    assert query("q=S%25e") == []
    assert query("q=e_c") == [snake.id]
    assert query("q=e_r") == []


@pytest.mark.parametrize(
    "query",
    [
        "status=finished",
        "priority=urgent",
        "sort=title",
        "sort=--created_at",
        "due_before=2030-01-01T00:00:00",
        "due_after=yesterday",
        "tag=" + "x" * 33,
        "q=",
        "owner_id=0",
    ],
)
def test_list_refuses_invalid_query_arguments(
    client: FlaskClient, headers: dict[str, str], query: str
) -> None:
    response = client.get(f"{TASKS}?{query}", headers=headers)

    assert response.status_code == 422
    assert set(response.json["errors"]["query"]) == {query.split("=")[0]}


@pytest.mark.parametrize(
    "sort", ["created_at", "-created_at", "due_at", "-due_at", "priority", "-priority"]
)
def test_list_sorts_with_ties_broken_by_id_in_the_same_direction(
    client: FlaskClient, user: User, headers: dict[str, str], sort: str
) -> None:
    # Identical sort keys everywhere: only the id decides, in the direction asked.
    tasks = [
        TaskFactory(owner=user, created_at=T0, due_at=T0, priority=TaskPriority.NORMAL)
        for _ in range(4)
    ]
    ascending = sorted(task.id for task in tasks)

    response = client.get(f"{TASKS}?sort={sort}", headers=headers)

    expected = list(reversed(ascending)) if sort.startswith("-") else ascending
    assert ids(response) == expected


def test_list_sorts_by_priority_rank_and_due_at_with_undated_last(
    client: FlaskClient, user: User, headers: dict[str, str]
) -> None:
    low = TaskFactory(owner=user, priority=TaskPriority.LOW, due_at=T0 + timedelta(days=1))
    high = TaskFactory(owner=user, priority=TaskPriority.HIGH, due_at=None)
    normal = TaskFactory(owner=user, priority=TaskPriority.NORMAL, due_at=T0)

    def order(sort: str) -> list[int]:
        return ids(client.get(f"{TASKS}?sort={sort}", headers=headers))

    assert order("priority") == [low.id, normal.id, high.id]
    assert order("-priority") == [high.id, normal.id, low.id]
    assert order("due_at") == [normal.id, low.id, high.id]
    assert order("-due_at") == [low.id, normal.id, high.id]


# --- GET /tasks: administrators ----------------------------------------------------------------


def test_an_administrator_lists_all_tasks_or_one_owners(
    client: FlaskClient, admin: User, user: User, other_user: User
) -> None:
    users_task = TaskFactory(owner=user, created_at=T0)
    other_task = TaskFactory(owner=other_user, created_at=T0 + timedelta(seconds=1))
    admin_headers = auth_headers(admin)

    everyone = client.get(TASKS, headers=admin_headers)
    one_owner = client.get(f"{TASKS}?owner_id={user.id}", headers=admin_headers)

    assert ids(everyone) == [other_task.id, users_task.id]
    assert ids(one_owner) == [users_task.id]
    assert one_owner.json["meta"]["total"] == 1


def test_a_user_filtering_by_owner_is_forbidden(
    client: FlaskClient, user: User, other_user: User, headers: dict[str, str]
) -> None:
    TaskFactory(owner=other_user)

    for owner in (other_user, user):
        response = client.get(f"{TASKS}?owner_id={owner.id}", headers=headers)
        assert response.status_code == 403
        assert response.json["code"] == "forbidden"


def test_list_requires_a_token(client: FlaskClient) -> None:
    assert client.get(TASKS).status_code == 401


# --- GET /tasks: ETag --------------------------------------------------------------------------


def test_list_has_a_weak_etag_answering_304_until_a_task_changes(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    created = create(client, headers)
    first = client.get(TASKS, headers=headers)
    etag = first.headers["ETag"]

    not_modified = client.get(TASKS, headers={**headers, "If-None-Match": etag})
    other_page = client.get(f"{TASKS}?page=2", headers={**headers, "If-None-Match": etag})
    client.patch(url(created["id"]), json={"title": "changed"}, headers=headers)
    after_change = client.get(TASKS, headers={**headers, "If-None-Match": etag})

    assert etag.startswith('W/"')
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert (not_modified.status_code, not_modified.data) == (304, b"")
    assert not_modified.headers["ETag"] == etag
    assert other_page.status_code == 200
    assert after_change.status_code == 200
    assert after_change.headers["ETag"] != etag


# --- OpenAPI -----------------------------------------------------------------------------------


def test_every_task_operation_is_documented_with_its_errors(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    operations = {
        (path, method): operation
        for path, item in spec["paths"].items()
        if path.startswith(TASKS)
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }

    assert {op["operationId"] for op in operations.values()} == {
        "listTasks",
        "createTask",
        "getTask",
        "replaceTask",
        "updateTask",
        "deleteTask",
    }
    for (path, method), operation in operations.items():
        assert operation["summary"], (path, method)
        assert operation["tags"] == ["tasks"], (path, method)
        assert "401" in operation["responses"], (path, method)
        if method in ("put", "patch", "delete"):
            assert "412" in operation["responses"], (path, method)
            assert "If-Match" in [p["name"] for p in operation["parameters"]], (path, method)
        if method == "get":
            assert "304" in operation["responses"], (path, method)
            assert "If-None-Match" in [p["name"] for p in operation["parameters"]], (path, method)


def test_unknown_query_parameter_is_refused_not_ignored(client: FlaskClient, user: User) -> None:
    response = client.get("/api/v1/tasks?stauts=done", headers=auth_headers(user))
    assert response.status_code == 422
    assert "stauts" in response.json["errors"]["query"]


def test_idempotency_key_makes_a_retried_create_return_the_first_task(
    client: FlaskClient, user: User, db_session: Session
) -> None:
    headers = {**auth_headers(user), "Idempotency-Key": "create-task-7f1c"}
    body = {"title": "Pay the invoice", "priority": "high"}
    first = client.post("/api/v1/tasks", json=body, headers=headers)
    replay = client.post("/api/v1/tasks", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json["id"] == first.json["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]
    count = db_session.scalar(
        select(func.count()).select_from(Task).where(Task.owner_id == user.id)
    )
    assert count == 1

    reused = client.post("/api/v1/tasks", json={**body, "title": "Other"}, headers=headers)
    assert reused.status_code == 422
    assert reused.json["code"] == "idempotency_key_reused"


def test_without_idempotency_key_each_create_is_a_new_task(client: FlaskClient, user: User) -> None:
    body = {"title": "Water the plants"}
    first = client.post("/api/v1/tasks", json=body, headers=auth_headers(user))
    second = client.post("/api/v1/tasks", json=body, headers=auth_headers(user))
    assert first.json["id"] != second.json["id"]
