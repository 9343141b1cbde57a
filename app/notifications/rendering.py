"""Email bodies from Jinja2 templates: ``<name>.txt`` and ``<name>.html`` (autoescaped)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app.config import Settings

TEMPLATE_DIR = Path(__file__).parent / "templates"
MAX_SUBJECT_LENGTH = 255

# Subjects are one short line, rendered when the email is queued (so they can be listed).
SUBJECTS = {
    "welcome": "Welcome to {{ service_name }}",
    "password_reset": "Reset your {{ service_name }} password",
    "task_due": "Reminder: {{ title }} is due soon",
    "webhook_disabled": "Your webhook has been disabled",
}
TEMPLATES = frozenset(SUBJECTS)

# StrictUndefined: a missing variable is an error, never an email with a hole in it.
_bodies = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
# Subjects are plain text headers: no HTML escaping ("Tom & Jerry" stays as typed).
_subjects = Environment(autoescape=False, undefined=StrictUndefined)  # noqa: S701


@dataclass(frozen=True)
class RenderedBody:
    """The two alternatives of an email body."""

    text: str
    html: str


def common_context(settings: Settings) -> dict[str, Any]:
    """Variables every template may use."""
    return {"service_name": settings.SERVICE_NAME, "public_base_url": settings.PUBLIC_BASE_URL}


def render_subject(template: str, context: dict[str, Any]) -> str:
    """The subject line of ``template``, on one line and at most 255 characters."""
    if template not in SUBJECTS:
        raise ValueError(f"unknown email template {template!r}")
    subject = _subjects.from_string(SUBJECTS[template]).render(context)
    return " ".join(subject.split())[:MAX_SUBJECT_LENGTH]


def render_body(template: str, context: dict[str, Any]) -> RenderedBody:
    """The text and HTML bodies of ``template`` with ``context``."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown email template {template!r}")
    return RenderedBody(
        text=_bodies.get_template(f"{template}.txt").render(context),
        html=_bodies.get_template(f"{template}.html").render(context),
    )
