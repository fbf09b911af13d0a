"""HMAC signatures on model cards, with a key the operator keeps outside ``models/``.

The card records the artifact's SHA-256, so a signature over the card covers the artifact too.
Whoever can write to ``models/`` can recompute a checksum, but not a signature without the key
(``SQLTRAITS_MODEL_SIGNING_KEY`` in the environment, or ``model_signing_key`` in secrets.toml).
With a key configured, the registry signs what it saves and loads only cards whose signature
verifies; without one, nothing is signed or checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from sqltraits_kit.errors import ModelLoadError
from sqltraits_kit.settings import Secret

__all__ = ["ENVIRONMENT", "resolve_key", "sign", "verify"]

_PREFIX = "hmac-sha256:"
#: ``Registry(signing_key=ENVIRONMENT)``: the key in ``SQLTRAITS_MODEL_SIGNING_KEY``, if any.
ENVIRONMENT: Any = object()


def resolve_key(key: Any) -> Secret | None:
    if key is ENVIRONMENT:
        key = os.environ.get("SQLTRAITS_MODEL_SIGNING_KEY", "").strip() or None
    return None if key is None else Secret.of(key)


def _digest(card: dict[str, Any], key: Secret) -> str:
    body = {k: v for k, v in card.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    mac = hmac.new(key.reveal().encode(), text.encode(), hashlib.sha256)
    return _PREFIX + mac.hexdigest()


def sign(card: dict[str, Any], key: Secret) -> str:
    """The signature of a card (as a dict, its ``signature`` left out)."""
    return _digest(card, key)


def verify(card: dict[str, Any], key: Secret, ref: str) -> None:
    """Refuse a card that is unsigned or whose signature is not this key's over its content."""
    found = card.get("signature")
    if not found:
        raise ModelLoadError(
            f"model {ref} is not signed, and a model signing key is configured: it was not "
            "loaded (sign the models you trust with Registry.sign)"
        )
    if not hmac.compare_digest(str(found), _digest(card, key)):
        raise ModelLoadError(
            f"model {ref}: its signature does not match its card (edited after signing, or "
            "signed with another key); it was not loaded"
        )
