"""Platform payloads: one published message in each platform's wire format.

============  ==================================================================
module        holds
============  ==================================================================
apns          APNs: the body and ``apns-*`` headers, the dry run's silent push
fcm           FCM HTTP v1: the request body, the dry run's validation message
hms           Huawei Push Kit: the ``message`` object without its target
webpush       Web Push: the RFC 8030 headers and the RFC 8291 encrypted body
renderer      PayloadRenderer: APNs and FCM per recipient at fan-out speed
templates     registration templates rendered to a JSON object
content       what every platform reads alike from a message's content
json_text     compact JSON and RFC 7396 merge patches
size          the 4 KiB limit and its error
============  ==================================================================

A payload is what the message says; the request around it (the target tokens
of a multicast, ``validate_only``, authentication) is the provider's
(delivery.providers).
"""

from .renderer import PayloadRenderer, RenderedPayload, check_publish_size, dry_run_payload

__all__ = ["PayloadRenderer", "RenderedPayload", "check_publish_size", "dry_run_payload"]
