"""The fake server must be as strict as Segment, or tests against it prove nothing."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sqltraits_kit.publishing.standin import Delay, DropConnection, FakeSegmentServer, Respond
from tests.support.segment import PROFILE_TOKEN, SPACE_ID, WRITE_KEY

AUTH = (WRITE_KEY, "")


def identify(i, **traits):
    return {"type": "identify", "userId": f"u{i}", "messageId": f"m{i}", "traits": traits}


def post(server, body, *, path="/v1/batch", auth=AUTH, headers=None, data=None):
    headers = {"Content-Type": "application/json", **(headers or {})}
    data = data if data is not None else json.dumps(body).encode()
    return requests.post(server.url + path, data=data, auth=auth, headers=headers, timeout=5)


def test_batch_is_stored_per_profile(segment_server):
    r = post(segment_server, {"batch": [identify(1, score=0.5), identify(2, score=0.7)]})
    assert r.status_code == 200 and r.json() == {"success": True}
    assert segment_server.user_traits("u1") == {"score": 0.5}
    assert segment_server.collection("users") == {
        "user_id:u1": {"score": 0.5},
        "user_id:u2": {"score": 0.7},
    }
    assert segment_server.snapshot()["messages_accepted"] == 2


def test_identify_merges_and_null_sets_null(segment_server):
    post(segment_server, {"batch": [identify(1, a=1, b=2)]})
    msg = identify(1, b=None, c=3) | {"messageId": "m1-again"}
    post(segment_server, {"batch": [msg]})
    assert segment_server.user_traits("u1") == {"a": 1, "b": None, "c": 3}


def test_duplicates_by_message_id_are_dropped(segment_server):
    post(segment_server, {"batch": [identify(1, a=1)]})
    post(segment_server, {"batch": [identify(1, a=999)]})  # same messageId, other value
    assert segment_server.user_traits("u1") == {"a": 1}
    stats = segment_server.snapshot()
    assert stats["duplicates"] == 1 and stats["messages_accepted"] == 1


def test_group_goes_to_the_account(segment_server):
    msg = {
        "type": "group",
        "groupId": "acme",
        "anonymousId": "x",
        "messageId": "g1",
        "traits": {"ltv": 9},
    }
    post(segment_server, {"batch": [msg]})
    assert segment_server.group_traits("acme") == {"ltv": 9}


@pytest.mark.parametrize("path", ["/v1/identify", "/v1/group"])
def test_single_call_endpoints(segment_server, path):
    msg = {"userId": "u1", "groupId": "g1", "messageId": "s1", "traits": {"x": 1}}
    assert post(segment_server, msg, path=path).status_code == 200
    assert segment_server.snapshot()["messages_accepted"] == 1


@pytest.mark.parametrize("auth", [("wrong-key", ""), None])
def test_bad_or_missing_key_is_401(segment_server, auth):
    r = post(segment_server, {"batch": [identify(1)]}, auth=auth)
    assert r.status_code == 401
    assert segment_server.snapshot()["messages_received"] == 0


def test_write_key_in_body_is_accepted(segment_server):
    r = post(segment_server, {"batch": [identify(1)], "writeKey": WRITE_KEY}, auth=None)
    assert r.status_code == 200


def test_content_type_must_be_json(segment_server):
    r = post(segment_server, {"batch": [identify(1)]}, headers={"Content-Type": "text/plain"})
    assert r.status_code == 400


@pytest.mark.parametrize(
    "data",
    [b'{"batch":[{"type":"identify","userId":"u","traits":{"x":NaN}}]}', b'{"batch":[', b"\xff"],
)
def test_invalid_json_including_bare_nan_is_400(segment_server, data):
    r = post(segment_server, None, data=data)
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"


def test_gzip_body_is_accepted(segment_server):
    data = gzip.compress(json.dumps({"batch": [identify(1, a=1)]}).encode())
    r = post(segment_server, None, data=data, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200 and segment_server.user_traits("u1") == {"a": 1}
    assert segment_server.snapshot()["gzip_requests"] == 1


def test_body_over_500_kb_is_400(segment_server):
    batch = [identify(i, pad="x" * 25_000) for i in range(21)]  # ~525 KB, each < 32 KB
    r = post(segment_server, {"batch": batch})
    assert r.status_code == 400 and r.json()["code"] == "payload_too_large"
    assert segment_server.snapshot()["messages_accepted"] == 0


def test_message_over_32_kb_is_400(segment_server):
    r = post(segment_server, {"batch": [identify(1, pad="x" * 33_000)]})
    assert r.status_code == 400 and r.json()["code"] == "message_too_large"


def test_more_than_2500_messages_answers_200_and_drops_everything(segment_server):
    r = post(
        segment_server, {"batch": [{"type": "identify", "userId": f"{i}"} for i in range(2501)]}
    )
    assert r.status_code == 200
    stats = segment_server.snapshot()
    assert stats["messages_accepted"] == 0 and stats["messages_dropped"] == 2501
    assert segment_server.collection("users") == {}


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"type": "identify", "messageId": "a", "traits": {}}, "no_user_anon_id"),
        ({"type": "identify", "userId": "", "messageId": "a"}, "no_user_anon_id"),
        ({"type": "group", "userId": "u", "messageId": "a"}, "groupId"),
        ({"type": "group", "userId": "u", "groupId": "g" * 501, "messageId": "a"}, "groupId"),
        ({"type": "identify", "userId": "u", "messageId": "m" * 101}, "messageId"),
        ({"type": "identify", "userId": "u", "traits": {f"t{i}": i for i in range(300)}}, "300"),
        ({"type": "bogus", "userId": "u"}, "unknown type"),
    ],
)
def test_invalid_messages_are_answered_200_and_dropped(segment_server, msg, reason):
    assert post(segment_server, {"batch": [msg]}).status_code == 200
    assert segment_server.snapshot()["messages_accepted"] == 0
    assert len(segment_server.rejected) == 1 and reason in segment_server.rejected[0][1]


def test_injected_faults_in_order_then_normal(segment_server):
    segment_server.inject(Respond(429, headers={"Retry-After": "3"}), Respond(503))
    r1 = post(segment_server, {"batch": [identify(1)]})
    r2 = post(segment_server, {"batch": [identify(1)]})
    r3 = post(segment_server, {"batch": [identify(1)]})
    assert (r1.status_code, r1.headers["Retry-After"]) == (429, "3")
    assert [r2.status_code, r3.status_code] == [503, 200]
    assert segment_server.snapshot()["messages_accepted"] == 1


def test_dropped_connection_gets_no_answer(segment_server):
    segment_server.inject(DropConnection(process=True))
    with pytest.raises(requests.ConnectionError):
        post(segment_server, {"batch": [identify(1, a=1)]})
    assert segment_server.user_traits("u1") == {"a": 1}  # processed, but the ack was lost


def test_slow_answer_times_out_the_client(segment_server):
    segment_server.inject(Delay(1.0))
    with pytest.raises(requests.Timeout):
        requests.post(
            segment_server.url + "/v1/batch", json={"batch": [identify(1)]}, auth=AUTH, timeout=0.2
        )


def test_fail_every_nth_request(segment_server):
    segment_server.fail_every(2, Respond(500))
    codes = [post(segment_server, {"batch": [identify(i)]}).status_code for i in range(4)]
    assert codes == [200, 500, 200, 500]


def profile_get(server, ident, *, collection="users", token=PROFILE_TOKEN, **params):
    url = f"{server.url}/v1/spaces/{SPACE_ID}/collections/{collection}/profiles/{ident}/traits"
    return requests.get(url, params=params, auth=(token, ""), timeout=5)


def test_profile_api_reads_the_stored_traits_with_pagination(segment_server):
    post(segment_server, {"batch": [identify(1, **{f"t{i:02}": i for i in range(25)})]})
    first = profile_get(segment_server, "user_id:u1").json()
    assert len(first["traits"]) == 10 and first["cursor"]["has_more"] is True
    rest = profile_get(segment_server, "user_id:u1", limit=100, next=first["cursor"]["next"]).json()
    assert len(rest["traits"]) == 15 and rest["cursor"]["has_more"] is False
    assert profile_get(segment_server, "user_id:u1", include="t03,t07").json()["traits"] == {
        "t03": 3,
        "t07": 7,
    }


def test_profile_api_404_and_401_bodies(segment_server):
    r = profile_get(segment_server, "user_id:nobody")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "not_found", "message": "Profile was not found."}}
    assert profile_get(segment_server, "user_id:u1", token="bad").status_code == 401


def test_admin_endpoints_and_reset(segment_server):
    post(segment_server, {"batch": [identify(1, a=1)]})
    assert requests.get(segment_server.url + "/_fake/stats").json()["messages_accepted"] == 1
    assert requests.get(segment_server.url + "/_fake/profiles/users").json() == {
        "user_id:u1": {"a": 1}
    }
    requests.post(segment_server.url + "/_fake/inject", json=[{"kind": "respond", "status": 502}])
    assert post(segment_server, {"batch": [identify(2)]}).status_code == 502
    requests.post(segment_server.url + "/_fake/reset", data=b"")
    assert segment_server.snapshot()["messages_accepted"] == 0 and segment_server.collection() == {}


def test_runs_as_a_script():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.segment.fake_segment", "--port", "0", "--write-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_SEGMENT_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        r = requests.post(
            url + "/v1/batch", json={"batch": [identify(1)]}, auth=("k", ""), timeout=5
        )
        assert r.status_code == 200
        assert requests.get(url + "/_fake/stats", timeout=5).json()["messages_accepted"] == 1
    finally:
        proc.terminate()
        proc.stdout.close()
        assert proc.wait(timeout=10) == 0


def test_server_can_be_used_without_the_fixture():
    with FakeSegmentServer(write_keys=("k",)) as server:
        assert requests.post(server.url + "/v1/batch", json={"batch": []}, auth=("k", "")).ok
