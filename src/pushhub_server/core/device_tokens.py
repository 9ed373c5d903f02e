"""Device-token syntax per platform: the one rule wherever a token enters.

- APNs: the device token is 32 bytes (longer in future, Apple says) that the
  app hex-encodes itself; it goes into the request path ``/3/device/<token>``.
  64-200 hex digits of whole bytes, either case, stored in lowercase: apps
  format the bytes with ``%02x`` or ``%02X``, and one device must stay one
  registration whichever an app version used (APNs reads either case alike).
- FCM: registration tokens are opaque text of letters, digits, ``_``, ``-`` and
  ``:`` (Firebase publishes no grammar; this is the alphabet every token it
  issues uses), at most the configured ``Limits.device_token``. Case matters.
- HMS: Push Kit tokens are opaque text too, of FCM's alphabet plus ``.``; they
  travel in a JSON body, never in a URL. Case matters.
- Web Push: the token is the subscription's endpoint, a URL of visible ASCII
  at most ``ENDPOINT_LENGTH`` (4,096) characters. Which URLs may be sent to
  (https, the push services' hosts) is core.web_push_endpoints', applied
  where a registration is written; here only what any stored endpoint obeys.

A token of neither shape (a space, a control character, ``/``) could end a
URL path or a JSON string early; it is refused with INVALID_DEVICE_TOKEN.
"""

from __future__ import annotations

import re
from binascii import unhexlify

from .errors import PushHubError, invalid_field, value_too_long
from .models import Platform
from .web_push_endpoints import ENDPOINT_LENGTH

APNS_MIN_LENGTH = 64
APNS_MAX_LENGTH = 200
_FCM = re.compile(r"[A-Za-z0-9_:-]+")
_HMS = re.compile(r"[A-Za-z0-9_.:-]+")
_ENDPOINT = re.compile(r"https?://[\x21-\x7e]+", re.IGNORECASE)


def check_device_token(field_name: str, platform: Platform, token: str, limit: int) -> str:
    """The token as stored (APNs in lowercase); INVALID_ARGUMENT naming field_name otherwise.

    On the bulk-import path: unhexlify is the cheapest strict hex check (a
    quarter of a regular expression's time on 160 digits).
    """
    if platform is Platform.APNS:
        if _is_apns(token):
            return token.lower()
        if len(token) > APNS_MAX_LENGTH:
            raise value_too_long(field_name, APNS_MAX_LENGTH)
        raise _invalid(
            field_name,
            f"an APNs {field_name} is {APNS_MIN_LENGTH}-{APNS_MAX_LENGTH} hex digits"
            " (whole bytes: an even count)",
        )
    if platform is Platform.WEB_PUSH:
        limit = min(limit, ENDPOINT_LENGTH)
    if len(token) > limit:
        raise value_too_long(field_name, limit)
    if platform is Platform.FCM:
        if _FCM.fullmatch(token):
            return token
        raise _invalid(field_name, f"an FCM {field_name} is 1-{limit} characters of [A-Za-z0-9_:-]")
    if platform is Platform.HMS:
        if _HMS.fullmatch(token):
            return token
        raise _invalid(
            field_name, f"an HMS {field_name} is 1-{limit} characters of [A-Za-z0-9_.:-]"
        )
    if _ENDPOINT.fullmatch(token):
        return token
    raise _invalid(
        field_name,
        f"a Web Push {field_name} is the subscription's endpoint: an https URL"
        f" of at most {limit} characters",
    )


def token_forms(field_name: str, token: str, limit: int) -> tuple[str, ...]:
    """A token given without its platform (CleanupDevices): the forms it is stored
    under, as the one platform or the other would store it."""
    forms: list[str] = []
    refusal: PushHubError | None = None
    for platform in (Platform.FCM, Platform.HMS, Platform.WEB_PUSH):
        try:
            forms.append(check_device_token(field_name, platform, token, limit))
        except PushHubError as error:
            refusal = refusal or error
    if _is_apns(token):
        forms.append(token.lower())
    if not forms and refusal is not None:
        raise refusal
    return tuple(dict.fromkeys(forms))


def _is_apns(token: str) -> bool:
    if not APNS_MIN_LENGTH <= len(token) <= APNS_MAX_LENGTH:
        return False
    try:
        unhexlify(token)  # hex digits only, either case, whole bytes; no spaces, no "0x"
    except ValueError:  # binascii.Error, or text that is not ASCII
        return False
    return True


def _invalid(field_name: str, message: str) -> PushHubError:
    return invalid_field(field_name, "INVALID_DEVICE_TOKEN", message)
