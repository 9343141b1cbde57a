"""The example domain: a user's tasks."""
