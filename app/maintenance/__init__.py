"""Periodic clean-up of rows that have outlived their use."""
