"""What each caller may do, beyond holding a valid key.

A server key may do anything within its app. A device key ships inside the
app, so it may only touch registrations its device could own: anonymous ones,
or those of the user its user token proves. The operator's admin token
administers every app; only it may act across apps.
"""

from __future__ import annotations

from .errors import permission_denied
from .models import DeviceActor, Principal, RegistrationInput
from .validation import is_reserved_tag


def require_publisher(principal: Principal) -> None:
    """Only server keys publish or cancel (Backendless error 5007 otherwise)."""
    if not principal.is_server:
        raise permission_denied(
            "PUBLISH_NOT_ALLOWED", "a device key may not publish", legacy_code="5007"
        )


def require_server(principal: Principal, action: str) -> None:
    if not principal.is_server:
        raise permission_denied(
            "SERVER_KEY_REQUIRED", f"a device key may not {action}", action=action
        )


def actor_of(principal: Principal) -> DeviceActor | None:
    """What a device key may touch (DeviceActor.may_take); a server key may touch anything."""
    return None if principal.is_server else DeviceActor(principal.user_id)


def authorize_fields(principal: Principal, item: RegistrationInput) -> None:
    """Only a server key or a matching user token may set user_id or user: tags."""
    if principal.is_server:
        return
    reserved = [tag for tag in item.tags if is_reserved_tag(tag)]
    if item.user_id is None and not reserved:
        return
    if principal.user_id is None:
        # Say why a token that was sent did not count (expired, another app's...).
        why = f" ({principal.user_token_error})" if principal.user_token_error else ""
        raise permission_denied(
            "USER_TOKEN_REQUIRED",
            f"a device key needs a valid user-token to set user_id or user: tags{why}",
            field="user_id" if item.user_id else "tags",
        )
    if item.user_id not in (None, principal.user_id):
        raise permission_denied(
            "USER_TOKEN_MISMATCH", "user_id does not match the user token", field="user_id"
        )
    for tag in reserved:
        if tag != f"user:{principal.user_id}":
            raise permission_denied(
                "RESERVED_TAG", f"tag {tag!r} is reserved for user {tag[5:]!r}", field="tags"
            )


def require_app_access(principal: Principal | None, is_admin: bool, app_id: str) -> None:
    """The operator may administer every app; a server key only its own."""
    if is_admin:
        return
    if principal is None or not principal.is_server or principal.app_id != app_id:
        raise permission_denied(
            "ADMIN_NOT_ALLOWED", "this key may not administer that app", app_id=app_id
        )


def require_operator(is_admin: bool, action: str) -> None:
    """Some actions span every app, so only the operator's admin token may take them."""
    if not is_admin:
        raise permission_denied(
            "ADMIN_TOKEN_REQUIRED", f"only the operator's admin token may {action}", action=action
        )
