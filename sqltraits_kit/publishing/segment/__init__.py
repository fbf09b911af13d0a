"""Publish traits to Segment: payload conversion, batching, delivery and read-back."""

from __future__ import annotations

from sqltraits_kit.publishing.segment.batching import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_MESSAGES,
    SEGMENT_MAX_BATCH_MESSAGES,
    Batch,
    Rejection,
    pack_batches,
)
from sqltraits_kit.publishing.segment.client import (
    DEFAULT_MAX_EVENTS_PER_SECOND,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    BatchResult,
    DeliveryStatus,
    DeliverySummary,
    SegmentClient,
)
from sqltraits_kit.publishing.segment.endpoints import PROFILE_HOSTS, TRACKING_HOSTS
from sqltraits_kit.publishing.segment.payload import (
    GROUP_ANONYMOUS_ID_PREFIX,
    MAX_MESSAGE_BYTES,
    EncodedMessage,
    PayloadError,
    build_encoded_message,
    build_message,
    encode_message,
    format_timestamp,
    message_id,
    to_json_traits,
    to_json_value,
)
from sqltraits_kit.publishing.segment.profile import ProfileAPIError, ProfileClient
from sqltraits_kit.publishing.segment.ratelimit import TokenBucket
from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.segment.secret import Secret

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_EVENTS_PER_SECOND",
    "DEFAULT_MAX_MESSAGES",
    "DEFAULT_MAX_REQUESTS_PER_SECOND",
    "GROUP_ANONYMOUS_ID_PREFIX",
    "MAX_MESSAGE_BYTES",
    "PROFILE_HOSTS",
    "SEGMENT_MAX_BATCH_MESSAGES",
    "TRACKING_HOSTS",
    "Batch",
    "BatchResult",
    "DeliveryStatus",
    "DeliverySummary",
    "EncodedMessage",
    "PayloadError",
    "ProfileAPIError",
    "ProfileClient",
    "Rejection",
    "RetryPolicy",
    "Secret",
    "SegmentClient",
    "TokenBucket",
    "build_encoded_message",
    "build_message",
    "encode_message",
    "format_timestamp",
    "message_id",
    "pack_batches",
    "to_json_traits",
    "to_json_value",
]
