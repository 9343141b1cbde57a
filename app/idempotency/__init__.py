"""``Idempotency-Key`` support: a retried POST returns the first result instead of acting twice."""
