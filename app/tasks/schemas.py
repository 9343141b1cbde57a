"""Request and response schemas of the tasks API, named by direction."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.core.schemas import PageArgs, PatchSchema, StrictSchema, Text, page_schema
from app.tasks.models import TaskPriority, TaskStatus

TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
TAG_MAX = 32
TAGS_MAX = 20
SORT_KEYS = ("created_at", "due_at", "priority")
SORTS = tuple(key for name in SORT_KEYS for key in (name, f"-{name}"))


# Some character other than whitespace, and no control character anywhere.
NOT_BLANK_PATTERN = r"^[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u001f\u007f]*$"


class TrimmedText(Text):
    """``Text`` without leading or trailing whitespace and not blank: the minimum length is
    checked after trimming, the maximum on the value as sent (as the document states it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata.setdefault("pattern", NOT_BLANK_PATTERN)
        super().__init__(*args, metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        for validator in self.validators:
            if isinstance(validator, validate.Length) and validator.max is not None:
                validator(text)  # the untrimmed value must fit too
        return text.strip()


class Tags(ma.fields.List[str]):
    """A list of at most ``TAGS_MAX`` tags as sent, then de-duplicated in first-seen order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            TrimmedText(validate=validate.Length(min=1, max=TAG_MAX)),
            validate=validate.Length(max=TAGS_MAX),
            **kwargs,
        )

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str | None]:
        tags = super()._deserialize(value, attr, data, **kwargs)
        # The cap applies to the list as sent, as the document's maxItems says.
        for validator in self.validators:
            validator(tags)
        return list(dict.fromkeys(tags))


def _title(**kwargs: Any) -> Text:
    return TrimmedText(
        validate=validate.Length(min=1, max=TITLE_MAX),
        metadata={"description": f"1 to {TITLE_MAX} characters", "example": "Write the report"},
        **kwargs,
    )


def _description(**kwargs: Any) -> Text:
    return Text(
        multiline=True,
        allow_none=True,
        validate=validate.Length(max=DESCRIPTION_MAX),
        metadata={
            "description": f"Free text, at most {DESCRIPTION_MAX:,} characters; null for none",
            "example": "Quarterly numbers,\nwith charts.",
        },
        **kwargs,
    )


def _status(**kwargs: Any) -> ma.fields.Enum[Any]:
    return ma.fields.Enum(
        TaskStatus,
        by_value=True,
        metadata={"description": "Setting `done` sets completed_at", "example": "todo"},
        **kwargs,
    )


def _priority(**kwargs: Any) -> ma.fields.Enum[Any]:
    return ma.fields.Enum(TaskPriority, by_value=True, metadata={"example": "high"}, **kwargs)


def _due_at(**kwargs: Any) -> ma.fields.AwareDateTime:
    return ma.fields.AwareDateTime(
        allow_none=True,
        metadata={
            "description": "When the task is due, with a time zone (naive times are refused)",
            "example": "2030-01-31T17:00:00+00:00",
        },
        **kwargs,
    )


def _tags(**kwargs: Any) -> Tags:
    return Tags(
        metadata={
            "description": (
                f"Up to {TAGS_MAX} tags of 1 to {TAG_MAX} characters; duplicates are dropped, "
                "the order is kept"
            ),
            "example": ["work", "q1"],
        },
        **kwargs,
    )


class TaskCreate(StrictSchema):
    """A new task; omitted fields take their defaults."""

    title = _title(required=True)
    description = _description(load_default=None)
    status = _status(load_default=TaskStatus.TODO)
    priority = _priority(load_default=TaskPriority.NORMAL)
    due_at = _due_at(load_default=None)
    tags = _tags(load_default=list)


class TaskReplace(TaskCreate):
    """The whole task (PUT): omitted optional fields are reset to their defaults."""


class TaskUpdate(PatchSchema):
    """Some fields of a task (PATCH); at least one."""

    title = _title()
    description = _description()
    status = _status()
    priority = _priority()
    due_at = _due_at()
    tags = _tags()


class Task(ma.Schema):
    """A task as the API returns it."""

    id = ma.fields.Integer(required=True, metadata={"example": 42})
    owner_id = ma.fields.Integer(
        required=True, metadata={"description": "The owning user (read-only)", "example": 7}
    )
    title = ma.fields.String(required=True, metadata={"example": "Write the report"})
    description = ma.fields.String(
        allow_none=True, required=True, metadata={"example": "Quarterly numbers,\nwith charts."}
    )
    # Strings with OneOf rather than Enum: the model keeps the status as a plain string, and
    # apispec still documents the allowed values.
    status = ma.fields.String(
        required=True,
        validate=validate.OneOf([status.value for status in TaskStatus]),
        metadata={"example": "todo"},
    )
    priority = ma.fields.String(
        required=True,
        validate=validate.OneOf([priority.value for priority in TaskPriority]),
        metadata={"example": "high"},
    )
    due_at = ma.fields.AwareDateTime(
        allow_none=True, required=True, metadata={"example": "2030-01-31T17:00:00+00:00"}
    )
    tags = ma.fields.List(ma.fields.String(), required=True, metadata={"example": ["work", "q1"]})
    created_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2030-01-02T09:30:00+00:00"}
    )
    updated_at = ma.fields.AwareDateTime(
        required=True, metadata={"example": "2030-01-03T10:00:00+00:00"}
    )
    completed_at = ma.fields.AwareDateTime(
        allow_none=True,
        required=True,
        metadata={
            "description": "When the status last became `done`; null while it is not done",
            "example": None,
        },
    )
    version = ma.fields.Integer(
        required=True,
        metadata={
            "description": "Bumped on every change; the ETag is this number in quotes",
            "example": 3,
        },
    )


TaskPage = page_schema(Task, "TaskPage")


class TaskQueryArgs(PageArgs):
    """Filters, sort order and page of the task list."""

    status = ma.fields.Enum(
        TaskStatus, by_value=True, metadata={"description": "Only tasks with this status"}
    )
    priority = ma.fields.Enum(
        TaskPriority, by_value=True, metadata={"description": "Only tasks with this priority"}
    )
    tag = TrimmedText(
        validate=validate.Length(min=1, max=TAG_MAX),
        metadata={"description": "Only tasks carrying this tag (exact match)"},
    )
    due_after = ma.fields.AwareDateTime(
        metadata={
            "description": "Only tasks due at or after this time (tasks without due_at excluded)"
        }
    )
    due_before = ma.fields.AwareDateTime(
        metadata={
            "description": "Only tasks due strictly before this time (tasks without due_at "
            "excluded)"
        }
    )
    q = Text(
        validate=validate.Length(min=1, max=TITLE_MAX),
        metadata={
            "description": "Case-insensitive substring of the title (% and _ match themselves)"
        },
    )
    sort = ma.fields.String(
        load_default="-created_at",
        validate=validate.OneOf(SORTS),
        metadata={
            "description": (
                "Order by created_at, due_at or priority; a leading `-` means descending. "
                "Ties are broken by id in the same direction, so pages are stable. Tasks "
                "without due_at come last in both directions."
            ),
            "example": "-created_at",
        },
    )
    owner_id = ma.fields.Integer(
        validate=validate.Range(min=1),
        metadata={
            "description": (
                "Administrators only: list this user's tasks (without it an administrator sees "
                "every user's tasks). Anyone else passing it gets 403."
            ),
        },
    )
