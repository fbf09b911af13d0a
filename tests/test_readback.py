"""Read-back through the (fake) Profile API after a real publish; mismatches are named."""

from __future__ import annotations

import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment import ProfileClient, SegmentClient
from sqltraits_kit.publishing.sync import sync
from sqltraits_kit.workflows.readback import spot_check
from tests.support.segment import PROFILE_TOKEN, SPACE_ID, WRITE_KEY


@pytest.fixture
def published(wh, segment_server, unique_name):
    wh.con.create_table(
        unique_name,
        obj=__import__("pandas").DataFrame(
            {"user_id": [f"u{i}" for i in range(30)], "score": [i / 7 for i in range(30)],
             "tier": ["a" if i % 2 else "b" for i in range(30)]}
        ),
    )  # fmt: skip
    with SegmentClient(WRITE_KEY, endpoint=segment_server.url, max_requests_per_second=None,
                       max_events_per_second=None) as client:  # fmt: skip
        result = sync(wh, unique_name, client=client)
    assert result.sent == 30
    return f"table:{unique_name}:identify"


def test_spot_check_matches_what_was_published(wh, segment_server, published):
    with ProfileClient(PROFILE_TOKEN, space_id=SPACE_ID, endpoint=segment_server.url) as client:
        report = spot_check(wh, published, client=client, sample=10)
    assert report.ok and report.checked == report.matched == 10


def test_spot_check_names_the_trait_that_differs(wh, segment_server, published):
    # someone else overwrote a trait in Segment after our publish
    for traits in segment_server.profiles.values():
        traits["score"] = -1.0
    with ProfileClient(PROFILE_TOKEN, space_id=SPACE_ID, endpoint=segment_server.url) as client:
        report = spot_check(wh, published, client=client, sample=5)
    assert not report.ok and len(report.mismatches) == 5
    assert {m.trait for m in report.mismatches} == {"score"}
    assert all(m.actual == -1.0 for m in report.mismatches)


def test_nothing_published_is_a_clear_error(duckdb_wh, segment_server):
    with (
        ProfileClient(PROFILE_TOKEN, space_id=SPACE_ID, endpoint=segment_server.url) as client,
        pytest.raises(ConfigError, match="nothing was published"),
    ):
        spot_check(duckdb_wh, "table:nope:identify", client=client)


def test_verify_command(wh, segment_server, published, monkeypatch, capsys):
    from sqltraits_kit.cli import main

    monkeypatch.setenv("SEGMENT_PROFILE_API_TOKEN", PROFILE_TOKEN)
    monkeypatch.setenv("SEGMENT_SPACE_ID", SPACE_ID)
    monkeypatch.setenv("SEGMENT_PROFILE_ENDPOINT", segment_server.url)
    wh.close()  # the command opens the warehouse itself (read-only)
    assert main(["verify", "--db", wh.url, "--sync-key", published, "--sample", "3"]) == 0
    out = capsys.readouterr()
    assert "checked 3 profiles: 3 match" in out.out and PROFILE_TOKEN not in out.out + out.err
    monkeypatch.delenv("SEGMENT_PROFILE_API_TOKEN")
    assert main(["verify", "--db", wh.url, "--sync-key", published]) == 2
