"""A credential that never shows itself: in ``repr``, ``str``, f-strings, logs or pickles."""

from __future__ import annotations

import base64
from typing import Any

__all__ = ["Secret", "as_secret"]


class Secret:
    """A credential (write key, token) that never shows itself in ``repr``, ``str`` or logs.

    Only :meth:`reveal` returns the value, at the one place that builds a request header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a secret (write key or token) must be a non-empty string")
        self._value = value.strip()

    @classmethod
    def of(cls, value: Any) -> Secret:
        """Accept a `Secret`, a plain string, or an object with ``get_secret_value()``."""
        if isinstance(value, Secret):
            return value
        if hasattr(value, "get_secret_value"):  # pydantic.SecretStr and similar
            return cls(value.get_secret_value())
        return cls(value)

    def reveal(self) -> str:
        """The real value: call this only where it is handed to the wire."""
        return self._value

    def masked(self) -> str:
        """A hint to recognise which key is configured: the last 4 characters of a long key."""
        tail = self._value[-4:] if len(self._value) >= 12 else ""
        return f"••••{tail}"

    def redact(self, text: str) -> str:
        """``text`` with this secret (and its HTTP Basic form) replaced by ``***``."""
        basic = base64.b64encode(f"{self._value}:".encode()).decode()
        return text.replace(self._value, "***").replace(basic, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickle a credential into a cache or a file
        raise TypeError("Secret values are not picklable")


def as_secret(value: object) -> Secret | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return Secret(str(value))
