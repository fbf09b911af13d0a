"""A credential holder that never shows its value by accident."""

from __future__ import annotations

import base64
from typing import Any


class Secret:
    """Wraps a write key or token; ``repr``/``str``/f-strings show ``'***'``.

    Only `reveal` returns the value, at the one place that builds the request header.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a Segment write key or token must be a non-empty string")
        self._value = value

    @classmethod
    def of(cls, value: Any) -> Secret:
        """Accept a `Secret`, a plain string, or an object with ``get_secret_value()``."""
        if isinstance(value, Secret):
            return value
        if hasattr(value, "get_secret_value"):  # pydantic.SecretStr and similar
            return cls(value.get_secret_value())
        return cls(value)

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with this secret (and its Basic-auth form) replaced by ``***``."""
        basic = base64.b64encode(f"{self._value}:".encode()).decode()
        return text.replace(self._value, "***").replace(basic, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values are not picklable")
