"""The enums of common.proto that several services carry."""

from __future__ import annotations

from pushhub.v1 import common_pb2

from ...core.messages import MessageState

# Core and proto enums are mapped by name, so a rename on either side fails at import.
_MESSAGE_STATES = {
    state: common_pb2.MessageState.Value(f"MESSAGE_STATE_{state.name}") for state in MessageState
}


def message_state(state: MessageState) -> int:
    return _MESSAGE_STATES[state]
