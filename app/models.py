"""Every model, imported once so ``Base.metadata`` is complete (Alembic and the tests use it)."""

from app.core.database import Base
from app.events.models import OutboxEvent
from app.idempotency.models import IdempotencyKey
from app.jobs.models import Job, JobFile
from app.notifications.models import EmailMessage
from app.tasks.models import Task
from app.users.models import AuthSession, PasswordResetToken, RefreshToken, User
from app.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "AuthSession",
    "Base",
    "EmailMessage",
    "IdempotencyKey",
    "Job",
    "JobFile",
    "OutboxEvent",
    "PasswordResetToken",
    "RefreshToken",
    "Task",
    "User",
    "Webhook",
    "WebhookDelivery",
]
