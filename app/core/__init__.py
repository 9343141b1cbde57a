"""Shared kernel: database, errors, API base classes, security, logging. Imports no feature."""
