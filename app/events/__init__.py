"""Domain events through a transactional outbox, recorded in the same transaction as the change."""
