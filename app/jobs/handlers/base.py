"""The handler contract: its signature, the progress callback and the ways a job ends early."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from sqlalchemy.orm import Session

from app.jobs.models import Job

# ``progress(percent)``: commit the work so far, renew the lease, stop if cancelled.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ResultFile:
    """A file a job produced, downloadable at ``GET /api/v1/jobs/{id}/result``."""

    filename: str
    content_type: str
    data: bytes


Handler = Callable[[Session, Job, Progress], ResultFile | None]


class JobError(Exception):
    """The job cannot be done; ``message`` is shown to its owner as the job's error."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class JobCancelled(Exception):
    """The owner asked to cancel; raised by ``progress`` after committing the work so far."""


def percent(done: int, total: int) -> int:
    """``done`` of ``total`` as a whole percentage (100 when there is nothing to do)."""
    if total <= 0:
        return 100
    return max(0, min(100, done * 100 // total))


def load_params(schema: ma.Schema, params: Mapping[str, Any]) -> dict[str, Any]:
    """The job's stored parameters, validated again: a bad value fails the job with a message."""
    try:
        loaded: dict[str, Any] = schema.load(params)
    except ma.ValidationError as error:
        raise JobError(f"The job's parameters are invalid: {_flatten(error.messages)}") from None
    return loaded


def _flatten(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, Mapping):
        return "; ".join(
            _flatten(value, f"{prefix}{key}." if key != "_schema" else prefix)
            for key, value in messages.items()
        )
    if isinstance(messages, list):
        text = " ".join(str(item) for item in messages)
        return f"{prefix.rstrip('.')}: {text}" if prefix else text
    return f"{prefix.rstrip('.')}: {messages}" if prefix else str(messages)
