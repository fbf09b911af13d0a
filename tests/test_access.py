"""Who may publish: the decisions behind the console's login and roles (issue 12)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sqltraits_kit.access import (
    LOCAL_MODE,
    User,
    can_connect_warehouse,
    can_publish,
    can_view,
    is_loopback,
    mode_label,
)
from sqltraits_kit.settings import Settings

TEAM = Settings(auth_configured=True, publishers=("ana@example.com",))
ANA = User.from_claims({"is_logged_in": True, "email": "Ana@Example.com"})
BOB = User.from_claims({"is_logged_in": True, "email": "bob@example.com"})
NOBODY = User.from_claims({"is_logged_in": False})


def test_without_a_login_the_single_local_user_may_do_everything():
    local = Settings()
    for address in ("127.0.0.1", "localhost", "::1", "127.0.1.1"):
        decision = can_publish(local, NOBODY, server_address=address)
        assert decision and LOCAL_MODE in decision.reason
    assert can_view(local, None) and can_connect_warehouse(local, None)
    assert mode_label(local, ANA) == LOCAL_MODE  # a login that is not configured is ignored


@pytest.mark.parametrize("address", [None, "", "0.0.0.0", "10.1.2.3", "::"])
def test_without_a_login_a_server_others_reach_publishes_nothing(address):
    decision = can_publish(Settings(), NOBODY, server_address=address)
    assert not decision
    assert "no login is configured" in decision.reason and "127.0.0.1" in decision.reason
    assert not is_loopback(address)


def test_with_a_login_publishers_publish_and_others_look():
    assert can_publish(TEAM, ANA, server_address="0.0.0.0")  # the login makes binding safe
    bob = can_publish(TEAM, BOB, server_address="0.0.0.0")
    assert not bob and bob.reason.startswith("bob@example.com can look but not publish")
    assert can_view(TEAM, BOB)
    assert mode_label(TEAM, ANA) == "signed in as ana@example.com (publisher)"
    assert mode_label(TEAM, BOB) == "signed in as bob@example.com (viewer)"
    # a team deployment uses the operator's warehouse: no typed URL, even for a publisher
    assert not can_connect_warehouse(TEAM, ANA)


def test_signed_out_visitors_see_nothing():
    for user in (None, NOBODY, User.from_claims({"email": "ana@example.com"})):
        assert not can_view(TEAM, user)
        assert can_publish(TEAM, user, server_address="127.0.0.1").reason == "sign in to publish"
    assert mode_label(TEAM, NOBODY) == "not signed in"


def test_an_unverified_email_is_no_publisher():
    ana = User.from_claims({"is_logged_in": True, "email": "ana@example.com",
                            "email_verified": False})  # fmt: skip
    decision = can_publish(TEAM, ana, server_address="127.0.0.1")
    assert not decision and "not verified" in decision.reason


def test_a_claim_makes_a_publisher():
    team = Settings(auth_configured=True, publisher_claim="groups=traits-publishers")
    member = User.from_claims({"is_logged_in": True, "email": "c@x.com",
                               "groups": ["staff", "traits-publishers"]})  # fmt: skip
    role = User.from_claims({"is_logged_in": True, "groups": "traits-publishers"})
    other = User.from_claims({"is_logged_in": True, "groups": ["traits-publishers-old"]})
    assert can_publish(team, member, server_address=None)
    assert can_publish(team, role, server_address=None)
    assert not can_publish(team, other, server_address=None)


def test_a_login_without_publishers_lets_nobody_publish():
    decision = can_publish(Settings(auth_configured=True), ANA, server_address="127.0.0.1")
    assert not decision and "no publishers are configured" in decision.reason


def test_the_decisions_import_without_streamlit():
    code = "import sys, sqltraits_kit.access; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
