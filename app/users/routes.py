"""``/api/v1/users``: the caller's own account, and user management for administrators."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.core.api import Blueprint, links
from app.core.auth import current_principal
from app.core.schemas import page_meta
from app.extensions import db
from app.users import schemas, service
from app.users.models import User

blp = Blueprint(
    "users", __name__, url_prefix="/users", description="Your account; user management (admins)"
)


@blp.route("/me", methods=["GET"])
@blp.auth()
@blp.response(200, schemas.User)
@blp.doc(operationId="getCurrentUser")
def get_me() -> User:
    """Your own account."""
    return service.get_user(session=db.session(), user_id=current_principal().user_id)


@blp.route("/me", methods=["PATCH"])
@blp.auth()
@blp.arguments(schemas.UserSelfUpdate)
@blp.response(200, schemas.User)
@blp.errors(409, 422)
@blp.doc(
    operationId="updateCurrentUser",
    description=(
        "Change your email, name or password. A new password needs `current_password`; a wrong "
        "`current_password` is a 422 on that field. Changing the password logs out every other "
        "session; this one keeps working."
    ),
)
def update_me(body: dict[str, Any]) -> User:
    """Update your own account."""
    principal = current_principal()
    return service.update_me(
        session=db.session(),
        user_id=principal.user_id,
        session_id=principal.session_id,
        changes=body,
    )


@blp.route("", methods=["GET"])
@blp.auth(admin=True)
# webargs ignores unknown query parameters by default; a mistyped filter must not list everyone.
@blp.arguments(schemas.UserQueryArgs, location="query", unknown=ma.RAISE)
@blp.response(200, schemas.UserPage)
@blp.errors(422)
@blp.doc(
    operationId="listUsers",
    responses={
        200: {
            "links": links(
                "getUser", "updateUser", "deleteUser", user_id="$response.body#/items/0/id"
            )
        }
    },
)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    """List users by id, filtered by email substring, role and active state (admins)."""
    items, total = service.list_users(session=db.session(), **args)
    return {
        "items": items,
        "meta": page_meta(page=args["page"], page_size=args["page_size"], total=total),
    }


@blp.route("/<int:user_id>", methods=["GET"])
@blp.auth(admin=True)
@blp.response(200, schemas.User)
@blp.errors(404)
@blp.doc(operationId="getUser")
def get_user(user_id: int) -> User:
    """One user (admins)."""
    return service.get_user(session=db.session(), user_id=user_id)


@blp.route("/<int:user_id>", methods=["PATCH"])
@blp.auth(admin=True)
@blp.arguments(schemas.UserAdminUpdate)
@blp.response(200, schemas.User)
@blp.errors(404, 409, 422)
@blp.doc(
    operationId="updateUser",
    description=(
        "Change a user's email, name, role or active state. Deactivating revokes the user's "
        "sessions at once. You cannot demote or deactivate yourself (409)."
    ),
)
def update_user(body: dict[str, Any], user_id: int) -> User:
    """Update a user (admins)."""
    return service.update_user(
        session=db.session(),
        actor_id=current_principal().user_id,
        user_id=user_id,
        changes=body,
    )


@blp.route("/<int:user_id>", methods=["DELETE"])
@blp.auth(admin=True)
@blp.response(204)
@blp.errors(404, 409)
@blp.doc(operationId="deleteUser")
def delete_user(user_id: int) -> None:
    """Delete a user with their tasks and sessions (admins; not yourself)."""
    service.delete_user(session=db.session(), actor_id=current_principal().user_id, user_id=user_id)
