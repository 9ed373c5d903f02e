"""Handlers an interceptor wraps once, then finds again by identity."""

from __future__ import annotations

from collections.abc import Callable

import grpc

Wrap = Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]
# A method sees a few handlers: the servicer's, a refusal, a checked one.
_KEPT_PER_METHOD = 8


class WrappedHandlers:
    """`wrap(method, handler)` once per method and handler. Handlers are told apart
    by identity, which costs less than hashing their eight fields on every call:
    the server's handlers, and those the interceptors return, are the same objects
    call after call. Past a few per method, new ones are wrapped without keeping."""

    def __init__(self, wrap: Wrap) -> None:
        self._wrap = wrap
        self._by_method: dict[str, list[tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]]] = {}

    def of(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        pairs = self._by_method.setdefault(method, [])
        for original, wrapped in pairs:
            if original is handler:
                return wrapped
        wrapped = self._wrap(method, handler)
        if len(pairs) < _KEPT_PER_METHOD:
            pairs.append((handler, wrapped))
        return wrapped
