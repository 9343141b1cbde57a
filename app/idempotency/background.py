"""Celery task of Idempotency-Key: delete expired keys (run by beat)."""

from __future__ import annotations

import logging

from celery import shared_task

from app.config import current_settings
from app.core.database import utcnow
from app.extensions import db
from app.idempotency.service import purge_expired

logger = logging.getLogger(__name__)


@shared_task(name="maintenance.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Delete Idempotency-Keys older than IDEMPOTENCY_KEY_TTL_SECONDS."""
    deleted = purge_expired(db.session(), now=utcnow(), batch=current_settings().CLEANUP_BATCH)
    if deleted:
        logger.info("expired idempotency keys deleted", extra={"count": deleted})
    return deleted
