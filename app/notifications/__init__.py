"""Email notifications: a row per email (the source of truth), sent by a worker with retries."""
