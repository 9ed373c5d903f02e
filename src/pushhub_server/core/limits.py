"""Default limits, configurable through Limits(...).

A value over its limit is INVALID_ARGUMENT naming the field and the limit
(docs/architecture.md, "The error model"); the api layer derives each RPC's
largest request from these (api/message_sizes.py, docs/admission.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    device_token: int = 4096
    channel_name: int = 255
    channels_per_registration: int = 64
    tag: int = 120
    tags_per_registration: int = 60
    user_id: int = 255
    metadata_keys: int = 64
    metadata_key: int = 255
    metadata_value: int = 4096
    templates_per_registration: int = 16
    template_name: int = 255
    template_body: int = 4096
    selector: int = 1024
    callback_url: int = 2048
    callback_headers: int = 32
    callback_header: int = 1024
    registration_id: int = 64
    payload_bytes: int = 4096
    # A registration as sent (a RegisterDeviceRequest, serialized). The per-field
    # limits alone would allow about 500 KB (metadata 64 x 4 KiB, 16 templates of
    # 4 KiB, 32 callback headers of 2 KiB...); 16 KiB holds a token, every channel
    # and tag, and a few full-size templates (docs/admission.md).
    registration_bytes: int = 16 * 1024
    batch_items: int = 1000
    # A RegisterDevices message, serialized: 1,000 registrations of up to 4 KiB
    # (typical ones are 0.2-1 KB), or 256 of the largest. Each message is read whole
    # before it is checked, so this, not 1,000 x registration_bytes, bounds it.
    batch_bytes: int = 4 * 1024 * 1024
    page_size_default: int = 100
    page_size_max: int = 1000
    cleanup_targets: int = 1000
    request_ids: int = 1000
    tag_update_values: int = 60
    publish_targets: int = 1000
    # Entries of Publish.platforms, repeats included: there are two platforms.
    platforms: int = 16
    headers: int = 64
    header_key: int = 255
    header_value: int = 1024
    publisher_id: int = 255
    # Entries of notification.data: more than a 4,096-byte payload can hold.
    notification_data: int = 512
    # Characters of apns_json / fcm_json: a 4,096-byte payload with room for whitespace.
    json_document: int = 16384
    message: int = 4096
    request_id: int = 64
    tag_expression: int = 8192
    tag_expression_tags: int = 64
    template_properties: int = 64
    min_repeat_seconds: float = 1.0
    # Ten years: far beyond any real schedule, and slots stay within datetime's range.
    max_repeat_days: int = 3650
