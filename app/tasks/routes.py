"""Routes (being written)."""

from app.core.api import Blueprint

blp = Blueprint("tasks", __name__, url_prefix="/tasks")
