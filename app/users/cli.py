"""``flask users ...`` (being written)."""

import click

users_cli = click.Group("users", help="Manage users.")
