"""Web Push encryption per recipient: figures, not assertions.

Prints CPU µs per recipient (median of --runs runs of --recipients each) for:

- ``http_ece.encrypt``, called as pywebpush calls it (a new ephemeral key, a
  random salt, ``version="aes128gcm"``);
- PushHub's ``payloads.webpush.encrypt``: the same RFC 8291 steps with
  ``cryptography``'s primitives called directly;

then where one recipient's time goes, step by step (each step timed alone,
median of the runs), and what is paid once per message rather than per
recipient (the JSON payload, the VAPID token); which steps release the GIL
(measured, not assumed: a thread blocked behind a step that holds it waits a
whole switch interval). Last, the encryption's recipients/s on 1 and 2 threads.

    .venv/bin/python -m benchmarks.webpush_crypto [--recipients 2000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import http_ece
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pushhub_server.core.clock import ManualClock
from pushhub_server.core.web_push import (
    SubscriptionKeys,
    WebPushKeys,
    encode_base64url,
    subscription_keys,
    web_push_credentials,
)
from pushhub_server.delivery.payloads.webpush import encrypt
from pushhub_server.delivery.providers.vapid import VapidTokens

CURVE = ec.SECP256R1()
SHA256 = hashes.SHA256()
X962 = serialization.Encoding.X962
UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
PAYLOAD = {
    "title": "Sale",
    "body": "Everything is 20% off today",
    "icon": "https://example.com/icon.png",
    "data": {"kind": "promo", "campaign": "spring"},
}


def subscriptions(count: int) -> list[WebPushKeys]:
    """Browser-made keys: each recipient encrypts to its own p256dh."""
    made = []
    for _ in range(count):
        point = ec.generate_private_key(CURVE).public_key().public_bytes(X962, UNCOMPRESSED)
        made.append(WebPushKeys(encode_base64url(point), encode_base64url(os.urandom(16))))
    return made


def per_item(runs: int, items: list[object], step: Callable[[object], object]) -> float:
    """Median over runs of CPU µs per item: this thread's CPU time, which other
    processes on a shared machine inflate far less than wall time."""
    samples = []
    for _ in range(runs):
        start = time.thread_time()
        for item in items:
            step(item)
        samples.append((time.thread_time() - start) / len(items) * 1e6)
    return statistics.median(samples)


def compare(runs: int, keys: list[WebPushKeys], plaintext: bytes) -> None:
    decoded = [subscription_keys(k, check_point=False) for k in keys]

    def with_http_ece(k: SubscriptionKeys) -> bytes:
        return http_ece.encrypt(
            plaintext,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(CURVE),
            dh=k.p256dh,
            auth_secret=k.auth,
            version="aes128gcm",
        )

    print(f"CPU per recipient, {len(keys):,} recipients, median of {runs} runs:")
    ece = per_item(runs, decoded, with_http_ece)  # type: ignore[arg-type]
    direct = per_item(runs, decoded, lambda k: encrypt(plaintext, k))  # type: ignore[arg-type]
    print(f"  http_ece.encrypt (pywebpush's)          {ece:7.1f} µs")
    print(f"  cryptography directly (PushHub's)       {direct:7.1f} µs")


Step = tuple[str, Callable[[int], object]]


def encryption_steps(keys: list[WebPushKeys], plaintext: bytes) -> list[Step]:
    """Each step of payloads.webpush.encrypt, callable on recipient i alone."""
    decoded = [subscription_keys(k, check_point=False) for k in keys]
    peers = [ec.EllipticCurvePublicKey.from_encoded_point(CURVE, k.p256dh) for k in decoded]
    ephemerals = [ec.generate_private_key(CURVE) for _ in keys]
    publics = [e.public_key().public_bytes(X962, UNCOMPRESSED) for e in ephemerals]
    secrets = [e.exchange(ec.ECDH(), p) for e, p in zip(ephemerals, peers, strict=True)]
    salt, key, nonce = os.urandom(16), os.urandom(16), os.urandom(12)
    steps: list[tuple[str, Callable[[int], object]]] = [
        ("base64url decode of p256dh and auth",
         lambda i: subscription_keys(keys[i], check_point=False)),
        ("load the peer's point (from_encoded_point)",
         lambda i: ec.EllipticCurvePublicKey.from_encoded_point(CURVE, decoded[i].p256dh)),
        ("generate the ephemeral key pair", lambda i: ec.generate_private_key(CURVE)),
        ("serialize its public key",
         lambda i: ephemerals[i].public_key().public_bytes(X962, UNCOMPRESSED)),
        ("ECDH", lambda i: ephemerals[i].exchange(ec.ECDH(), peers[i])),
        ("HKDF: IKM, content key, nonce",
         lambda i: _hkdf(decoded[i], publics[i], secrets[i], salt)),
        ("random salt", lambda i: os.urandom(16)),
        ("AES-128-GCM", lambda i: AESGCM(key).encrypt(nonce, plaintext + b"\x02", None)),
    ]  # fmt: skip
    return steps


def breakdown(runs: int, keys: list[WebPushKeys], plaintext: bytes) -> None:
    """Each step of payloads.webpush.encrypt, timed alone over the same recipients."""
    index = list(range(len(keys)))
    print("Where one recipient's time goes (each step alone):")
    total = 0.0
    for name, step in encryption_steps(keys, plaintext):
        micros = per_item(runs, index, step)  # type: ignore[arg-type]
        total += micros
        print(f"  {name:44s} {micros:6.1f} µs")
    print(f"  {'sum of the steps':44s} {total:6.1f} µs")
    print("Once per message, not per recipient:")
    dumps = per_item(runs, [PAYLOAD] * 1000, lambda p: json.dumps(p, separators=(",", ":")))
    print(f"  {'JSON payload (json.dumps)':44s} {dumps:6.1f} µs")
    credentials = web_push_credentials("", "mailto:ops@example.com")
    origins = [f"https://host{i}.push.services.mozilla.com" for i in range(200)]
    signs = []
    for _ in range(runs):  # a fresh cache each run: every header() signs
        tokens = VapidTokens(credentials, ManualClock(datetime.now(UTC)))
        start = time.thread_time()
        for origin in origins:
            tokens.header(origin)
        signs.append((time.thread_time() - start) / len(origins) * 1e6)
    sign = statistics.median(signs)
    print(f"  {'VAPID token (ES256), once per origin per 6 h':44s} {sign:6.1f} µs")


def _hkdf(keys: SubscriptionKeys, as_public: bytes, secret: bytes, salt: bytes) -> bytes:
    info = b"WebPush: info\x00" + keys.p256dh + as_public
    ikm = HKDF(SHA256, 32, keys.auth, info).derive(secret)
    HKDF(SHA256, 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
    return HKDF(SHA256, 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)


def gil(keys: list[WebPushKeys], plaintext: bytes) -> None:
    """Which steps release the GIL: a thread runs one step in a loop while this one
    counts how long it waits between two of its own iterations. With a switch
    interval of 0.25 s, a step that holds the GIL keeps this thread out for about
    that long; one that releases it lets this thread in at every call."""
    interval = 0.25
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    print(f"Does the step release the GIL? (another thread's longest wait; switch {interval} s)")
    try:
        for name, step in encryption_steps(keys, plaintext):
            stop = threading.Event()

            def spin(step: Callable[[int], object] = step, stop: threading.Event = stop) -> None:
                i = 0
                while not stop.is_set():
                    step(i % len(keys))
                    i += 1

            worker = threading.Thread(target=spin)
            worker.start()
            longest, last = 0.0, time.perf_counter()
            end = last + 4 * interval
            while last < end:
                now = time.perf_counter()
                longest, last = max(longest, now - last), now
            stop.set()
            worker.join()
            verdict = "holds it" if longest > interval / 2 else "releases it"
            print(f"  {name:44s} {longest * 1e3:6.1f} ms  {verdict}")
    finally:
        sys.setswitchinterval(previous)


def threaded(runs: int, keys: list[WebPushKeys], plaintext: bytes) -> None:
    decoded = [subscription_keys(k, check_point=False) for k in keys]

    def work(part: list[SubscriptionKeys]) -> None:
        for k in part:
            encrypt(plaintext, k)

    print("Encryption throughput (recipients/s of wall time, median):")
    for count in (1, 2):
        rates = []
        for _ in range(runs):
            size = -(-len(decoded) // count)
            threads = [
                threading.Thread(target=work, args=(decoded[i : i + size],))
                for i in range(0, len(decoded), size)
            ]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rates.append(len(decoded) / (time.perf_counter() - start))
        print(f"  {count} thread{'s' if count > 1 else ' '}  {statistics.median(rates):9,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    keys = subscriptions(args.recipients)
    plaintext = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.2f}; payload {len(plaintext)} bytes")
    compare(args.runs, keys, plaintext)
    breakdown(args.runs, keys, plaintext)
    gil(keys, plaintext)
    threaded(args.runs, keys, plaintext)


if __name__ == "__main__":
    main()
