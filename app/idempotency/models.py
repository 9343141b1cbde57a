"""The remembered Idempotency-Key of a creating request and the resource it created."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.database import Base, IdType, utcnow


class IdempotencyKey(Base):
    """One user's key for one operation; committed in the same transaction as the creation."""

    __tablename__ = "idempotency_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(IdType, ForeignKey("users.id", ondelete="CASCADE"))
    operation: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 (hex) of method, path and canonical body: a reused key with another body is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Primary key of the created resource, as text so any feature's resource fits.
    resource_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (
        # The unique index is also what serialises two concurrent requests with the same key.
        UniqueConstraint("user_id", "operation", "key"),
    )
