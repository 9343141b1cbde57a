"""WSGI entry point: ``gunicorn wsgi:app`` (and ``flask --app wsgi``)."""

import sys

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One clear line naming the setting, instead of a traceback.
    sys.exit(f"configuration error: {error}")
