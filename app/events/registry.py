"""Which consumers handle which events.

A consumer is a function ``(session, event) -> list[FollowUp]``: it writes its effect in
``session`` (the dispatcher commits it together with the "consumed" marker, so a redelivered event
has no second effect) and returns background tasks to enqueue once that commit succeeded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.events.models import OutboxEvent


@dataclass(frozen=True)
class FollowUp:
    """A Celery task to send after the consumer's transaction commits.

    With ``here``, the dispatching worker does the task's work itself right after the commit
    instead of sending it (the first attempt of a webhook delivery): one broker round trip and
    one task fewer. ``here`` must do what the task would, and leave its work to the feature's
    sweep when it fails, like a task that died would.
    """

    task_name: str
    args: tuple[Any, ...] = ()
    countdown: float | None = None
    here: Callable[[], object] | None = field(default=None, compare=False)


Handler = Callable[[Session, OutboxEvent], list[FollowUp]]


@dataclass(frozen=True)
class Consumer:
    """A named handler for some event names ("*" means every event)."""

    name: str
    event_names: frozenset[str]
    handler: Handler = field(compare=False)

    def wants(self, event_name: str) -> bool:
        """True when this consumer handles ``event_name``."""
        return "*" in self.event_names or event_name in self.event_names


_consumers: dict[str, Consumer] = {}


def consumer(name: str, event_names: Iterable[str]) -> Callable[[Handler], Handler]:
    """Register the decorated function as consumer ``name`` of ``event_names``."""

    def decorator(handler: Handler) -> Handler:
        existing = _consumers.get(name)
        if existing is not None and existing.handler is not handler:
            raise ValueError(f"consumer {name!r} is already registered")
        _consumers[name] = Consumer(name, frozenset(event_names), handler)
        return handler

    return decorator


def consumers_for(event_name: str) -> list[Consumer]:
    """The consumers of ``event_name``, in registration order."""
    return [entry for entry in _consumers.values() if entry.wants(event_name)]


def all_consumers() -> list[Consumer]:
    """Every registered consumer."""
    return list(_consumers.values())
