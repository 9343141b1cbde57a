"""JSON provider that turns pathological request bodies into a 400 instead of a crash."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


class SafeJSONProvider(DefaultJSONProvider):
    """Deeply nested JSON raises ``RecursionError``; report it as invalid JSON (400)."""

    sort_keys = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s``; too deep a structure is a ``ValueError`` like any malformed JSON."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
