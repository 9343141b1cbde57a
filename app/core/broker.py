"""A repair of kombu's Redis transport: a failed acknowledgement frees its prefetch slot.

With ``task_acks_late``, a task that finishes while Redis is unreachable cannot be acknowledged.
kombu 5.7's Redis QoS forgets the message only after Redis has accepted the acknowledgement, so
the slot stays taken. Once every prefetch slot is taken that way, the worker stops reading its
broker connection (it has no room for a message), so it never sees that the connection died: it
consumes nothing ever again, alive and silent, with no supervisor to notice. Found by the soak
(docs/reliability.md); ``tests/core/test_broker.py`` reproduces it.

Freeing the slot lets the worker read again, meet the dead connection and reconnect. No message
is lost: one Redis kept is redelivered after the visibility timeout (tasks are idempotent), and
one a restarted Redis lost belonged to a task that had finished.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis, virtual


class QoS(redis.QoS):
    """kombu's Redis QoS, releasing the prefetch slot even when Redis does not answer."""

    def ack(self, delivery_tag: Any) -> None:
        """Acknowledge; on failure the slot is freed and the error raised (kombu logs it)."""
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except Exception:
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
            raise

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """Reject; on failure the slot is freed and the error raised."""
        try:
            super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]
        except Exception:
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
            raise


def repair_redis_acknowledgements() -> None:
    """Make kombu's Redis channels use the repaired QoS (in every process; idempotent)."""
    redis.Channel.QoS = QoS
