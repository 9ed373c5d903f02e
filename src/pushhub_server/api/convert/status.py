"""StatusService messages ⇄ domain: tracked registration requests and message statuses."""

from __future__ import annotations

from pushhub.v1 import status_pb2

from ...core.messages import MessageStatus
from ...core.models import FailureReason, RequestState, TrackedRequest
from .common import message_state, platform_number
from .proto_time import set_time

# Core and proto enums are mapped by name, so a rename on either side fails at import.
_REGISTRATION_STATES = {
    state: status_pb2.RegistrationState.Value(f"REGISTRATION_STATE_{state.name}")
    for state in RequestState
}
_FAILURE_REASONS = {
    reason: status_pb2.RegistrationFailureReason.Value(f"REGISTRATION_FAILURE_REASON_{reason.name}")
    for reason in FailureReason
}


def registration_status(request: TrackedRequest) -> status_pb2.RegistrationStatus:
    reason = request.failure_reason
    return status_pb2.RegistrationStatus(
        request_id=request.request_id,
        state=_REGISTRATION_STATES[request.state],
        failure_reason=_FAILURE_REASONS[reason] if reason else 0,
    )


def message_status(status: MessageStatus) -> status_pb2.MessageStatus:
    out = status_pb2.MessageStatus(
        message_id=status.message_id,
        state=message_state(status.state),
        targeted_count=status.targeted,
        sent_count=status.sent,
        failed_count=status.failed,
        failure_reasons=status.failure_reasons,
        run_count=status.run_count,
        error_message=status.error_message or "",
    )
    counts_by_number = {platform_number(p): counts for p, counts in status.per_platform.items()}
    for number, counts in sorted(counts_by_number.items()):
        out.platform_counts.add(
            platform=number,
            targeted_count=counts.targeted,
            sent_count=counts.sent,
            failed_count=counts.failed,
        )
    if status.next_run_at is not None:
        set_time(out.next_run_at, status.next_run_at)
    return out
