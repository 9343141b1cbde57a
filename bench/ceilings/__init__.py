"""Ceilings: the least a server can do for each scenario, run under the same gunicorn settings."""
