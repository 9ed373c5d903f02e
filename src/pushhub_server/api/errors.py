"""Domain errors → gRPC statuses carrying google.rpc.ErrorInfo and BadRequest.

Importing error_details_pb2 here also registers ErrorInfo and BadRequest in the
default descriptor pool, so reflection can resolve them and grpcurl prints them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, TypeVar, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..core.errors import ErrorCode, PushHubError

DOMAIN = "pushhub"

_log = logging.getLogger(__name__)

# ErrorCode values are gRPC code names, so a new ErrorCode without a gRPC twin
# fails at import rather than at the first error.
_GRPC_CODES: dict[ErrorCode, grpc.StatusCode] = {
    code: grpc.StatusCode[code.value] for code in ErrorCode
}

_INTERNAL = PushHubError(ErrorCode.INTERNAL, "INTERNAL", "internal error")

Handler = TypeVar("Handler", bound=Callable[..., Any])


# Messages echo client input (a 5,000-character tag, an unknown id). A status
# travels in trailers twice (grpc-message and grpc-status-details-bin), and
# clients refuse trailers over 8-16 KiB with RESOURCE_EXHAUSTED, hiding the real
# error. Each text is clipped to a number of UTF-8 bytes, so a status stays
# under MAX_STATUS_BYTES whatever the script (percent-encoded in grpc-message:
# about 4 KiB of trailers).
_MAX_TEXT = 256
_MAX_METADATA_KEY = 64
_MAX_METADATA_VALUE = 128
# Ours carry up to four metadata entries and one violation.
_MAX_METADATA = 6
_MAX_VIOLATIONS = 2
# No status_proto() serializes to more: a RegisterDevices answer holds one per
# failed item, so this bounds the answer of a failing batch (answer_sizes.py).
MAX_STATUS_BYTES = 2 * 1024


def status_proto(error: PushHubError) -> status_pb2.Status:
    """The google.rpc.Status of an error: one ErrorInfo, a BadRequest for field errors,
    and a RetryInfo when the server refused work it could take later."""
    metadata = {
        _clip(key, _MAX_METADATA_KEY): _clip(value, _MAX_METADATA_VALUE)
        for key, value in list(error.metadata.items())[:_MAX_METADATA]
    }
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))
    ]
    if error.violations:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=_clip(v.field, _MAX_TEXT), description=_clip(v.description, _MAX_TEXT)
            )
            for v in error.violations[:_MAX_VIOLATIONS]
        ]
        details.append(_pack(error_details_pb2.BadRequest(field_violations=violations)))
    if error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(max(1, math.ceil(error.retry_after * 1000)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    code = _GRPC_CODES[error.code].value[0]
    return status_pb2.Status(code=code, message=_clip(error.message, _MAX_TEXT), details=details)


def _clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut at a character boundary, "…" marking a cut."""
    if len(text) * 4 <= limit:  # the common case: fits whatever the characters
        return text
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


def _pack(
    detail: error_details_pb2.ErrorInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.RetryInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


async def abort(context: grpc.aio.ServicerContext, error: Exception) -> NoReturn:
    """Ends the call with the error's status; anything but a PushHubError is a bug,
    logged here and answered INTERNAL."""
    if not isinstance(error, PushHubError):
        # A bug: keep the traceback in the server log, never on the wire.
        _log.error("unhandled error in an RPC handler", exc_info=error)
        error = _INTERNAL
    await context.abort_with_status(rpc_status.to_status(status_proto(error)))


def map_errors(handler: Handler) -> Handler:
    """Turns every exception a handler raises into a status, so none answers UNKNOWN.

    Wraps coroutine handlers and async-generator (streaming) handlers alike.
    """
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream(
            self: object, request: object, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[object]:
            try:
                async for response in handler(self, request, context):
                    yield response
            except grpc.aio.AbortError:
                raise  # the call has its status already (a refused request message)
            except Exception as error:
                await abort(context, error)

        return cast(Handler, stream)

    @functools.wraps(handler)
    async def unary(self: object, request: object, context: grpc.aio.ServicerContext) -> object:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise  # the call has its status already (a refused request message)
        except Exception as error:
            await abort(context, error)

    return cast(Handler, unary)
