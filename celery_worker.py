"""Celery entry point: ``celery -A celery_worker worker`` and ``celery -A celery_worker beat``.

The Celery app is built by the Flask app factory, so tasks run inside the app context.
"""

import sys

from app import create_app
from app.config import ConfigError

try:
    flask_app = create_app()
except ConfigError as error:
    sys.exit(f"configuration error: {error}")

celery = flask_app.extensions["celery"]
