"""Registration templates (Azure): rendered once per distinct template body, as a JSON object.

When a publish names ``template_name`` and a registration holds a template of that
name, the rendered template *is* the payload: each platform module says how it
lays its delivery options around it (apns.py, fcm.py, hms.py). A registration
without that template gets the standard rendering. The properties belong to the
message, not the recipient, so registrations sharing a template body share its
rendering; each renderer keeps up to ``TEMPLATE_CACHE_SIZE`` of them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pushhub_server.core.json_documents import parse_json
from pushhub_server.core.notifications import NotificationContent
from pushhub_server.core.templates import compile_template, template_error

TEMPLATE_CACHE_SIZE = 1024

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def template_object(content: NotificationContent, body: str) -> dict[str, Any]:
    """The template `body` rendered with the message's properties.

    Raises PushHubError TEMPLATE_RENDER_FAILED (field ``template_name``) when it
    does not render, or not to a JSON object.
    """
    name = content.template_name
    text = compile_template(body).render(content.template_properties)
    try:
        # The rule every stored document obeys (bounded nesting, finite numbers,
        # no lone surrogates): a template stored before a rule existed, or a
        # property rendering "#(n)" as 1e400, fails here, for that recipient alone.
        value = parse_json(text)
    except ValueError as exc:
        raise template_error(
            f"template {name!r} does not render to valid JSON: {exc}", "template_name"
        ) from None
    if not isinstance(value, dict):
        raise template_error(f"template {name!r} must render to a JSON object", "template_name")
    return value


def remember(cache: dict[_Key, _Value], key: _Key, value: _Value, size: int) -> _Value:
    """Stores value under key, first dropping the oldest entry once `size` are held."""
    if len(cache) >= size:
        del cache[next(iter(cache))]
    cache[key] = value
    return value
