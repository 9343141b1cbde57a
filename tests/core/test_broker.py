"""The Celery worker keeps consuming after Redis restarts while a task is running.

Found by the soak (docs/reliability.md): with acks_late, a task that finishes while Redis is down
cannot be acknowledged. kombu's Redis QoS then kept the message as "delivered", so the
prefetch window stayed full, the worker stopped reading its broker connection (and so never saw
that it had died), and it consumed nothing ever again, alive and silent. app.core.broker frees
the slot when an acknowledgement fails, so the worker notices the lost connection and reconnects.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kombu.transport import redis as kombu_redis

from app.core import broker
from tests.support.live import LiveStack, wait_for
from tests.support.services import ManagedServer, start_redis
from tests.webhooks.live_api import call, sign_up, subscribe
from tests.webhooks.receiver import Receiver, running


class FailingPipeline:
    """A Redis pipeline whose server is gone."""

    def zrem(self, *_args: Any) -> FailingPipeline:
        return self

    def hdel(self, *_args: Any) -> FailingPipeline:
        return self

    def execute(self) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def qos_holding_one_message(cls: type[Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A QoS of prefetch 1 holding one delivered message, its Redis gone."""
    qos = cls.__new__(cls)
    # What kombu's virtual QoS.__init__ sets, without a channel behind it.
    qos._delivered = {"tag-1": object()}
    qos._dirty = set()
    qos._quick_ack = qos._dirty.add
    qos.prefetch_count = 1
    monkeypatch.setattr(qos, "_remove_from_indices", lambda *_a, **_k: FailingPipeline())
    assert not qos.can_consume()
    return qos


@pytest.mark.parametrize("operation", ["ack", "reject"])
def test_a_failed_ack_frees_its_prefetch_slot(
    operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    qos = qos_holding_one_message(broker.QoS, monkeypatch)
    with pytest.raises(ConnectionError):  # still raised: kombu logs "Couldn't ack"
        getattr(qos, operation)("tag-1")
    assert qos.can_consume()


def test_kombu_itself_still_keeps_the_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    # When this fails, kombu has fixed it: app.core.broker can go.
    qos = qos_holding_one_message(kombu_redis.QoS, monkeypatch)
    with pytest.raises(ConnectionError):
        qos.ack("tag-1")
    assert not qos.can_consume()


def test_celery_uses_the_repaired_qos(app: Any) -> None:
    assert kombu_redis.Channel.QoS is broker.QoS


@pytest.mark.slow
def test_worker_consumes_again_after_redis_restarts_under_an_unacked_task(
    make_live_stack: Callable[..., LiveStack], throwaway_redis: list[ManagedServer]
) -> None:
    redis_server = start_redis()
    throwaway_redis.append(redis_server)
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    stack = make_live_stack(
        CELERY_BROKER_URL=redis_server.url,
        REDIS_URL=redis_server.url,
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_READ_TIMEOUT_SECONDS="10",
        OUTBOX_SWEEP_INTERVAL_SECONDS="0.5",
        OUTBOX_SWEEP_GRACE_SECONDS="0",
    )
    # One process: its prefetch window is the one message it is running.
    worker = stack.start_worker(concurrency=1)
    stack.start_beat()
    with running(Receiver(delay=3.0)) as receiver:
        token = sign_up(stack, f"broker-{uuid.uuid4().hex[:6]}@example.com")
        subscribe(stack, token, receiver.url)
        assert call(stack, "POST", "/tasks", {"title": "in flight"}, token)[0] == 201
        wait_for(lambda: receiver.count() == 1, 30, "the delivery to be in flight")

        redis_server.stop()  # the delivery finishes meanwhile; its ack cannot be sent
        wait_for(lambda: "Couldn't ack" in worker.log(), 30, "the failed acknowledgement")
        receiver.delay = 0
        throwaway_redis.append(start_redis(port))  # back, empty, on the same port

        assert call(stack, "POST", "/tasks", {"title": "after the restart"}, token)[0] == 201
        wait_for(
            lambda: len(receiver.ids()) == 2 or worker.popen.poll() is not None,
            60,
            "the event created after the restart to be delivered",
        )
    assert worker.popen.poll() is None, "the worker exited instead of reconnecting"
    assert "Connection to broker lost" in worker.log()
