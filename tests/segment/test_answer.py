"""`answer.judge` on its own: every status boundary, body and header that decides a delivery.

The client and fault tests reach `judge` through HTTP, one case at a time; mutation testing
(benchmarks/mutation.py) showed which edges they leave open: the ends of the 2xx and 3xx
ranges, ``"success": 1`` (truthy, not ``true``), a content type with parameters or upper case,
an HTML page after leading blanks, the quoted excerpt's length. The rule is in the module's
docstring: delivered means a 2xx whose body is a JSON object with ``"success": true``.
"""

from __future__ import annotations

import pytest
from requests.structures import CaseInsensitiveDict

from sqltraits_kit.publishing.segment.answer import Answer, Verdict, judge

OK = b'{"success": true}'
JSON = {"Content-Type": "application/json"}


def _judge(status: int, body: bytes = OK, **headers: str) -> Answer:
    return judge(status, CaseInsensitiveDict({**JSON, **headers}), body)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_every_2xx_with_segments_success_body_is_delivered(status):
    assert _judge(status) == Answer(Verdict.DELIVERED, None)


@pytest.mark.parametrize("status", [100, 199, 400, 401, 429, 500, 599, 600])
def test_statuses_outside_2xx_and_3xx_go_to_the_retry_policy(status):
    # Segment's success body, so only the status decides.
    assert _judge(status) == Answer(Verdict.HTTP_ERROR, None)


@pytest.mark.parametrize("status", [300, 301, 302, 304, 307, 399])
def test_a_3xx_is_never_a_delivery_whatever_the_body(status):
    got = _judge(status, Location="https://login.example.com/sso?token=SECRET")
    assert got.verdict is Verdict.NOT_SEGMENT
    assert got.error == (
        f"the endpoint redirected ({status} to login.example.com) — Segment never redirects; "
        "check the region/endpoint (a proxy or login page?). Not followed, nothing counted."
    )
    assert "SECRET" not in got.error and "/sso" not in got.error


def test_a_redirect_names_only_what_it_can():
    same_host = _judge(302, Location="/sign-in?next=/v1/batch").error
    assert same_host.startswith("the endpoint redirected (302 to a path on the same host) — ")
    assert "sign-in" not in same_host
    nowhere = judge(303, CaseInsensitiveDict(), OK).error
    assert nowhere.startswith("the endpoint redirected (303) — Segment never redirects; ")


@pytest.mark.parametrize(
    "body",
    [
        b'{"success": 1}',  # truthy is not true
        b'{"success": "true"}',
        b'{"success": false}',
        b'{"ok": true}',
        b"[true]",
        b'[{"success": true}]',
        b"true",
    ],
)
def test_json_that_is_not_segments_success_answer_is_not_a_delivery(body):
    got = _judge(200, body)
    assert got.verdict is Verdict.NOT_SEGMENT
    assert got.error == (
        "the endpoint answered 200 with JSON that is not Segment's success answer "
        f'{{"success": true}}: {body.decode()!r}'
    )


def test_success_with_other_keys_is_a_delivery_and_the_content_type_is_not_required():
    assert _judge(200, b'{"success": true, "extra": [1]}').verdict is Verdict.DELIVERED
    assert judge(200, CaseInsensitiveDict(), OK).verdict is Verdict.DELIVERED
    assert _judge(200, b'  {"success": true}\n').verdict is Verdict.DELIVERED


@pytest.mark.parametrize(
    "ctype",
    [
        "text/html",
        "text/html; charset=utf-8",
        "Text/HTML",
        " text/html ;q=1",
        "application/xhtml+xml",
    ],
)
def test_an_html_content_type_is_not_segment_even_with_a_success_body(ctype):
    got = _judge(200, OK, **{"Content-Type": ctype})
    assert got.verdict is Verdict.NOT_SEGMENT
    assert got.error == (
        "the endpoint answered 200 with an HTML page — a proxy or login page? "
        "Segment answers JSON (page starts: '{\"success\": true}')"
    )


@pytest.mark.parametrize(
    "page",
    [
        b"<!DOCTYPE html><p>login</p>",
        b"\n\t  <html><body>login</body></html>",
        b"<HEAD><title>x</title></HEAD>",
        b"<body>portal</body>",
    ],
)
def test_an_html_page_served_as_json_is_not_segment(page):
    got = _judge(200, page)
    assert got.verdict is Verdict.NOT_SEGMENT
    assert got.error.startswith("the endpoint answered 200 with an HTML page — ")
    assert got.error.endswith(f"(page starts: {' '.join(page.decode().split())!r})")


def test_html_is_only_recognised_at_the_start_of_the_body():
    # Not a page: JSON text that mentions a tag is judged as JSON.
    assert _judge(200, b'{"success": true, "note": "<html>"}').verdict is Verdict.DELIVERED
    # A tag after 64 characters of text is not a page's start: it is judged as (bad) JSON.
    late = b"x" * 64 + b"<html>"
    assert "with a application/json body that is not JSON" in _judge(200, late).error


def test_a_body_that_is_not_json_is_quoted_with_its_content_type():
    got = _judge(202, b"  OK \n thanks ", **{"Content-Type": "Text/Plain; charset=utf-8"})
    assert got == Answer(
        Verdict.NOT_SEGMENT,
        "the endpoint answered 202 with a text/plain body that is not JSON ('OK thanks'); "
        "Segment answers JSON — is something between us and Segment?",
    )
    bare = judge(200, CaseInsensitiveDict(), b"OK")
    assert bare.error.startswith("the endpoint answered 200 with a body that is not JSON ('OK'); ")


@pytest.mark.parametrize("body", [b"", b"  \n\t"])
def test_an_empty_body_is_not_a_delivery(body):
    assert _judge(204, body) == Answer(
        Verdict.NOT_SEGMENT,
        "the endpoint answered 204 with an empty body; Segment answers "
        '{"success": true} — is something between us and Segment?',
    )


def test_a_long_body_is_quoted_to_120_characters():
    exact = "q" * 120
    assert f"('{exact}')" in _judge(200, exact.encode()).error
    assert "…" not in _judge(200, exact.encode()).error
    long = "z" * 119 + " " + "#" * 200
    quoted = _judge(200, long.encode()).error
    assert f"('{'z' * 119} …')" in quoted  # 119 + the space = 120 characters, then the ellipsis
    assert "#" not in quoted


def test_bytes_that_are_not_utf8_are_quoted_not_raised():
    got = _judge(200, b"\xff\xfe oops")
    assert got.verdict is Verdict.NOT_SEGMENT
    assert "'\ufffd\ufffd oops'" in got.error
