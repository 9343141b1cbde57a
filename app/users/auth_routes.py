"""Routes (being written)."""

from app.core.api import Blueprint

blp = Blueprint("auth", __name__, url_prefix="/auth")
