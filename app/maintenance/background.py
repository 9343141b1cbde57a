"""Celery task of the clean-up, run by beat every CLEANUP_INTERVAL_SECONDS."""

from __future__ import annotations

import logging

from celery import shared_task

from app.config import current_settings
from app.core.database import utcnow
from app.extensions import db
from app.maintenance.service import cleanup as cleanup_rows

logger = logging.getLogger(__name__)


@shared_task(name="maintenance.cleanup")
def cleanup() -> dict[str, int]:
    """Delete expired tokens and sessions, old emails and old outbox rows."""
    deleted = cleanup_rows(db.session(), settings=current_settings(), now=utcnow())
    if any(deleted.values()):
        logger.info("clean-up deleted expired rows", extra={"deleted": deleted})
    return deleted
