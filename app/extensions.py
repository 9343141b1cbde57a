"""Extension singletons, created unbound and bound to each app in ``create_app``."""

from app.core.database import Database

db = Database()
