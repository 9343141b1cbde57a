"""Identity: users, roles, login sessions and their tokens."""
