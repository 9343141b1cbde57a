"""Every model, imported once so ``Base.metadata`` is complete (Alembic and the tests use it)."""

from app.core.database import Base
from app.events.models import OutboxEvent
from app.tasks.models import Task
from app.users.models import AuthSession, RefreshToken, User
from app.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "AuthSession",
    "Base",
    "OutboxEvent",
    "RefreshToken",
    "Task",
    "User",
    "Webhook",
    "WebhookDelivery",
]
