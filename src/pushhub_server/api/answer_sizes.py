"""No answer larger than a client accepts: 4 MiB, gRPC's default receive limit.

The server sends nothing larger (grpc.max_send_message_length). Answers that
grow with the request are kept under it before any work is done:
- a RegisterDevices message whose answer could exceed it is refused as a whole
  (answer_bound); its answer echoes every registration, adds two maps of
  subscription ids per channel, and carries a google.rpc.Status per failed item;
- a ListRegistrations page ends early when the next registration would not fit.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.errors import invalid_field
from .errors import MAX_STATUS_BYTES

MAX_ANSWER_BYTES = 4 * 1024 * 1024
# Per answered registration, beyond what its request holds: the result's wrappers,
# a new registration id, two timestamps, a request id, and the "default" channel
# when none was given (in the list and in both id maps).
_ITEM_OVERHEAD = 256
# Per channel, in each of the two maps: an entry's framing and a 36-character id.
_CHANNEL_ENTRY = 46
_FAILED_ITEM = MAX_STATUS_BYTES + 8
# Room for the answer message's own framing.
_MESSAGE_OVERHEAD = 64


def answer_bound(
    sizes: Sequence[int], channel_counts: Sequence[int], channel_bytes: Sequence[int] | None = None
) -> int:
    """The most a RegisterDevices answer can hold, from its items' serialized sizes,
    their numbers of channels and, when known, their channel names' UTF-8 bytes
    (each name comes back twice more, as map keys; without them, twice the item)."""
    total = _MESSAGE_OVERHEAD
    names = channel_bytes if channel_bytes is not None else sizes
    for size, channels, name_bytes in zip(sizes, channel_counts, names, strict=True):
        answered = size + 2 * (name_bytes + channels * _CHANNEL_ENTRY) + _ITEM_OVERHEAD
        total += max(answered, _FAILED_ITEM)
    return total


def check_answer_fits(bound: int) -> None:
    if bound > MAX_ANSWER_BYTES:
        raise invalid_field(
            "registrations",
            "ANSWER_TOO_LARGE",
            f"the answer to this message could reach {bound} bytes, more than the "
            f"{MAX_ANSWER_BYTES} a client accepts; send fewer registrations per message",
            limit=MAX_ANSWER_BYTES,
        )
