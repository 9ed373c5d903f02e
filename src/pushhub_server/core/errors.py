"""Domain errors. The api layer maps each to a gRPC status with details."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar


class ErrorCode(enum.Enum):
    """Transport-neutral error classes; the api layer maps them to gRPC codes."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class PushHubError(Exception):
    """An error a client may see: code, UPPER_SNAKE reason, message and metadata."""

    code: ErrorCode
    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)
    # Seconds after which a retry may succeed (google.rpc.RetryInfo); set on every
    # RESOURCE_EXHAUSTED, where the server refused work it could take later.
    retry_after: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def invalid_field(
    field_name: str,
    reason: str,
    message: str,
    *,
    legacy_code: str | None = None,
    limit: int | None = None,
) -> PushHubError:
    """A field error: INVALID_ARGUMENT with ErrorInfo metadata and a BadRequest violation."""
    metadata = {"field": field_name}
    if legacy_code is not None:
        metadata["legacy_code"] = legacy_code
    if limit is not None:
        metadata["limit"] = str(limit)
    return PushHubError(
        ErrorCode.INVALID_ARGUMENT,
        reason,
        message,
        metadata,
        [FieldViolation(field_name, message)],
    )


def value_too_long(field_name: str, limit: int, unit: str = "characters") -> PushHubError:
    return invalid_field(
        field_name,
        "VALUE_TOO_LONG",
        f"{field_name} exceeds the length limit of {limit} {unit}",
        legacy_code="8000",
        limit=limit,
    )


def too_many(field_name: str, limit: int, message: str | None = None) -> PushHubError:
    return invalid_field(
        field_name,
        "TOO_MANY_VALUES",
        message or f"{field_name} holds more than {limit} values",
        legacy_code="8000",
        limit=limit,
    )


def too_many_tags(field_name: str, limit: int) -> PushHubError:
    """A change that would leave a registration holding more than limit tags."""
    return too_many(
        field_name, limit, f"{field_name} would leave a registration with more than {limit} tags"
    )


def resource_exhausted(
    reason: str, message: str, retry_after: float, **metadata: str
) -> PushHubError:
    """A limit of the server, not of the request: the same call may succeed later."""
    return PushHubError(
        ErrorCode.RESOURCE_EXHAUSTED, reason, message, dict(metadata), retry_after=retry_after
    )


def required(field_name: str) -> PushHubError:
    return invalid_field(field_name, "FIELD_REQUIRED", f"{field_name} is required")


def registration_gone(registration_id: str) -> PushHubError:
    return PushHubError(
        ErrorCode.NOT_FOUND,
        "REGISTRATION_GONE",
        f"registration {registration_id!r} is unknown, deleted or expired; create it again",
        {"registration_id": registration_id, "legacy_code": "410"},
    )


def api_key_invalid(message: str = "missing or unknown API key") -> PushHubError:
    return PushHubError(ErrorCode.UNAUTHENTICATED, "API_KEY_INVALID", message)


def permission_denied(reason: str, message: str, **metadata: str) -> PushHubError:
    return PushHubError(ErrorCode.PERMISSION_DENIED, reason, message, dict(metadata))


def not_device_owner(registration_id: str) -> PushHubError:
    return permission_denied(
        "NOT_DEVICE_OWNER",
        "this registration belongs to a user; present that user's user-token",
        registration_id=registration_id,
    )


def not_found(reason: str, message: str, **metadata: str) -> PushHubError:
    return PushHubError(ErrorCode.NOT_FOUND, reason, message, dict(metadata))


_T = TypeVar("_T")


def accepted(value: _T | PushHubError) -> _T:
    """A value the api layer converted, or the refusal it made of the client's
    value instead, raised here: where the rules reach that field, in their order."""
    if isinstance(value, PushHubError):
        raise value
    return value


DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"


def database_unavailable(message: str) -> PushHubError:
    """The database cannot be reached (or is too busy): retryable, never the caller's fault."""
    return PushHubError(ErrorCode.UNAVAILABLE, DATABASE_UNAVAILABLE, message)


def is_database_unavailable(error: BaseException) -> bool:
    return isinstance(error, PushHubError) and error.reason == DATABASE_UNAVAILABLE


def server_stopping() -> PushHubError:
    return PushHubError(
        ErrorCode.UNAVAILABLE,
        "SERVER_STOPPING",
        "the server is shutting down; call again (another instance, or this one once restarted)",
    )
