"""The enums of common.proto that several services carry."""

from __future__ import annotations

from collections.abc import Sequence

from pushhub.v1 import common_pb2

from ...core.errors import PushHubError, invalid_field
from ...core.messages import MessageState
from ...core.models import Platform

# Each core Platform and its number in the contract; a new platform is one line.
_PLATFORM_NUMBERS: dict[Platform, int] = {
    Platform.APNS: common_pb2.PLATFORM_APNS,
    Platform.FCM: common_pb2.PLATFORM_FCM,
    Platform.WEB_PUSH: common_pb2.PLATFORM_WEB_PUSH,
    Platform.HMS: common_pb2.PLATFORM_HMS,
}
_PLATFORMS = {number: platform for platform, number in _PLATFORM_NUMBERS.items()}
_PLATFORM_NAMES = [common_pb2.Platform.Name(number) for number in _PLATFORM_NUMBERS.values()]
# "PLATFORM_APNS, PLATFORM_FCM, PLATFORM_WEB_PUSH or PLATFORM_HMS", for the refusal
# of any other number.
_ANY_PLATFORM = " or ".join((", ".join(_PLATFORM_NAMES[:-1]), _PLATFORM_NAMES[-1]))

# Core and proto enums are mapped by name, so a rename on either side fails at import.
_MESSAGE_STATES = {
    state: common_pb2.MessageState.Value(f"MESSAGE_STATE_{state.name}") for state in MessageState
}


def platform_number(platform: Platform) -> int:
    return _PLATFORM_NUMBERS[platform]


def platform_or_refusal(number: int, field: str = "platform") -> Platform | PushHubError:
    """The platform a number names, or (PLATFORM_UNSPECIFIED, or any number the
    contract does not define: proto3 enums are open) the refusal of the field.
    Core raises a refusal where its rules reach the field, so errors keep their order."""
    platform = _PLATFORMS.get(number)
    if platform is None:
        return invalid_field(field, "INVALID_PLATFORM", f"{field} must be {_ANY_PLATFORM}")
    return platform


def platforms_or_refusals(numbers: Sequence[int], field: str) -> list[Platform | PushHubError]:
    """Each entry as platform_or_refusal, the refused ones named field[index]."""
    return [
        _PLATFORMS.get(number) or platform_or_refusal(number, f"{field}[{index}]")
        for index, number in enumerate(numbers)
    ]


def optional_platform(number: int, field: str = "platform") -> Platform | PushHubError | None:
    """PLATFORM_UNSPECIFIED (None) means any platform, or none given."""
    return platform_or_refusal(number, field) if number else None


def message_state(state: MessageState) -> int:
    return _MESSAGE_STATES[state]
