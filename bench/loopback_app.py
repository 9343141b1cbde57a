"""The production profile with the one override a loopback benchmark needs: webhooks may be
delivered to the receiver on 127.0.0.1 over plain HTTP.

    gunicorn -c deploy/gunicorn.conf.py bench.loopback_app:app
    celery -A bench.loopback_app:celery worker ...

Production refuses ``WEBHOOK_ALLOW_PRIVATE_TARGETS`` and a false ``WEBHOOK_REQUIRE_HTTPS``
(rightly: they open internal hosts to SSRF), and the benchmark's receiver is on loopback. Every
other production check still runs: the settings are checked as production would check them with
those two values restored, then the two are allowed. Only the event-to-webhook and delivery
benchmarks use this module; the API scenarios run ``wsgi:app`` unchanged.
"""

from __future__ import annotations

import sys

from pydantic import model_validator

from app import create_app
from app.config import ConfigError, ProductionSettings


class LoopbackWebhookSettings(ProductionSettings):
    """Production settings that let webhooks reach a receiver on this machine."""

    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = True
    WEBHOOK_REQUIRE_HTTPS: bool = False

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> LoopbackWebhookSettings:
        as_production = self.model_copy(
            update={"WEBHOOK_ALLOW_PRIVATE_TARGETS": False, "WEBHOOK_REQUIRE_HTTPS": True}
        )
        ProductionSettings._refuse_unsafe(as_production)
        return self


try:
    flask_app = create_app(LoopbackWebhookSettings())
except (ConfigError, ValueError) as error:
    sys.exit(f"configuration error: {error}")

app = flask_app
celery = flask_app.extensions["celery"]
