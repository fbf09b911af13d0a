"""The Profile API read-back takes only Segment's answer too: no redirects, JSON or error."""

from __future__ import annotations

import pytest

from sqltraits_kit.publishing.segment import ProfileAPIError
from sqltraits_kit.publishing.standin import HtmlPage, Redirect, Trickle
from tests.support.segment import PROFILE_TOKEN


def _publish_one(server) -> None:
    with server._lock:
        server.profiles[("users", "user_id:u1")] = {"churn_score": 0.5}


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_not_followed_and_the_token_stays_home(
    segment_server, profile_client, status
):
    _publish_one(segment_server)
    segment_server.inject_profile(Redirect(status))
    with pytest.raises(ProfileAPIError, match=rf"redirected \(HTTP {status}\)") as info:
        profile_client.get_traits("u1")
    assert info.value.status == status
    assert segment_server.landing == []  # the token never reached the target
    assert profile_client.get_traits("u1") == {"churn_score": 0.5}  # the next read is fine


def test_an_html_200_is_an_error_not_a_profile(segment_server, profile_client):
    _publish_one(segment_server)
    segment_server.inject_profile(HtmlPage())
    with pytest.raises(ProfileAPIError, match=r"not JSON .*text/html.*proxy or login page"):
        profile_client.get_traits("u1")


def test_a_trickling_profile_answer_is_cut(segment_server):
    from sqltraits_kit.publishing.segment import ProfileClient, RetryPolicy

    _publish_one(segment_server)
    segment_server.inject_profile(Trickle(interval=0.1, size=200))
    client = ProfileClient(
        PROFILE_TOKEN,
        space_id="spa_test",
        endpoint=segment_server.url,
        timeout=0.5,
        retry=RetryPolicy(max_retries=0),
    )
    with pytest.raises(ProfileAPIError, match=r"no complete answer within 0\.5 s"):
        client.get_traits("u1")
    client.close()
