"""Who may do what in the console: the decisions, without Streamlit (the pages only ask).

Two modes, chosen by the operator:

- **Login configured** (an ``[auth]`` section in ``.streamlit/secrets.toml``, Streamlit's OIDC):
  every page needs a signed-in user; *publishers* — e-mails on the ``publishers`` list or users
  whose identity token carries ``publisher_claim`` — may publish and override the gates (the
  contract override and the drift confirmation); everyone else can look.
- **Local, single-user** (no login): the one person at the machine may do everything, which is
  only true while the server listens on the loopback interface. Bound to any other address
  without a login, nobody may publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqltraits_kit.settings import Settings

__all__ = [
    "LOCAL_MODE",
    "Decision",
    "User",
    "can_connect_warehouse",
    "can_publish",
    "can_view",
    "is_loopback",
    "mode_label",
]

LOCAL_MODE = "local, single-user"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, kw_only=True)
class User:
    """The person behind a session, as the identity provider described them."""

    logged_in: bool = False
    email: str | None = None
    email_verified: bool | None = None  # None: the provider did not say
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], /) -> User:
        """From ``st.user`` (``st.user.to_dict()``): ``is_logged_in`` and the token's claims."""
        email = claims.get("email")
        verified = claims.get("email_verified")
        return cls(
            logged_in=bool(claims.get("is_logged_in", False)),
            email=str(email).strip().lower() if email else None,
            email_verified=None if verified is None else bool(verified),
            claims=dict(claims),
        )

    @property
    def label(self) -> str:
        return self.email or str(self.claims.get("name") or "signed-in user")


@dataclass(frozen=True)
class Decision:
    """Allowed or not, and the sentence to show either way."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only.

    Streamlit binds every interface when ``server.address`` is unset: that is not loopback.
    """
    if not address:
        return False
    host = address.strip().strip("[]").lower()
    return host in _LOOPBACK or host.startswith("127.")


def mode_label(settings: Settings, user: User | None = None) -> str:
    """The sidebar's one line: who is signed in, or that this is a local single-user app."""
    if not settings.auth_configured:
        return LOCAL_MODE
    if user is None or not user.logged_in:
        return "not signed in"
    role = "publisher" if _is_publisher(settings, user) else "viewer"
    return f"signed in as {user.label} ({role})"


def can_view(settings: Settings, user: User | None) -> Decision:
    """Whether the session may see the warehouse at all (its tables hold personal data)."""
    if not settings.auth_configured:
        return Decision(True, LOCAL_MODE)
    if user is None or not user.logged_in:
        return Decision(False, "sign in to use SQL Traits Kit")
    return Decision(True, f"signed in as {user.label}")


def can_publish(settings: Settings, user: User | None, *, server_address: str | None) -> Decision:
    """Whether the session may publish to Segment and override the gates.

    ``server_address`` is where the server listens (Streamlit's ``server.address``): without
    a login, publishing needs a loopback address, since anyone reaching the port would be
    "the single user".
    """
    if not settings.auth_configured:
        if not is_loopback(server_address):
            where = server_address or "every network interface"
            return Decision(
                False,
                f"no login is configured and the server listens on {where}: configure [auth] "
                "in .streamlit/secrets.toml, or bind server.address to 127.0.0.1",
            )
        return Decision(True, f"{LOCAL_MODE}: no login configured")
    if user is None or not user.logged_in:
        return Decision(False, "sign in to publish")
    if user.email_verified is False:
        return Decision(False, f"{user.label}: the identity provider has not verified this e-mail")
    if not settings.publishers and not settings.publisher_claim:
        return Decision(
            False,
            "no publishers are configured: the operator lists them in `publishers` (e-mails) "
            "or `publisher_claim` in .streamlit/secrets.toml",
        )
    if _is_publisher(settings, user):
        return Decision(True, f"{user.label} is a publisher")
    return Decision(
        False, f"{user.label} can look but not publish: ask the operator to add you as a publisher"
    )


def can_connect_warehouse(settings: Settings, user: User | None) -> Decision:
    """Whether the session may type a warehouse URL (the Data page's form).

    A URL reaches any host and file the server can, so only the local single user may; a team
    deployment uses the warehouse the operator configured.
    """
    if not settings.auth_configured:
        return Decision(True, f"{LOCAL_MODE}: any warehouse URL this machine can reach")
    return Decision(
        False, "the operator's warehouse only: URLs are set in secrets.toml when login is on"
    )


def _is_publisher(settings: Settings, user: User) -> bool:
    if user.email_verified is False:
        return False
    if user.email and user.email in settings.publishers:
        return True
    if settings.publisher_claim:
        claim, _, wanted = settings.publisher_claim.partition("=")
        value = user.claims.get(claim)
        if isinstance(value, str):
            return value == wanted
        if isinstance(value, list | tuple | set | frozenset):
            return wanted in {str(v) for v in value}
    return False
