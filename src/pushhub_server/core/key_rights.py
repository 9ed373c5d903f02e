"""What each kind of API key may do, beyond being a valid key of its app.

A server key may do anything within its app. A device key ships inside the
app, so it may only touch registrations its device could own: anonymous ones,
or those of the user its user token proves.
"""

from __future__ import annotations

from .errors import permission_denied
from .models import DeviceClaim, Principal, RegistrationInput
from .validation import is_reserved_tag


def require_server(principal: Principal, action: str) -> None:
    if not principal.is_server:
        raise permission_denied(
            "SERVER_KEY_REQUIRED", f"a device key may not {action}", action=action
        )


def claim_of(principal: Principal) -> DeviceClaim | None:
    """What a device key may touch (DeviceClaim.may_take); a server key may touch anything."""
    return None if principal.is_server else DeviceClaim(principal.user_id)


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
