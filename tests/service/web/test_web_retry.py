"""Tests for POST /api/retry: only with the token, exactly what `runwatchd retry FILE` writes."""

from __future__ import annotations

import http.client
import json
import logging
from dataclasses import asdict

import pytest
from web_helpers import TOKEN, Site

from runwatchd.service.web.api import MAX_BODY

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def failed(site: Site) -> str:
    """A generation that FAILED, with everything a retry must clear."""
    path = str(site.source.folders[0] / "shot.png")
    site.put(path, "task_failed", task_id="t-1", task_status="FAILED", failure="bad input",
             failure_code="INPUT.BAD", error="task FAILED: bad input", attempts=2,
             outputs=["renders/old.mp4"], runway_uri="runway://upload/1")
    return path


def row(site: Site, path: str) -> dict:
    record = site.store.get(path)
    assert record is not None
    return asdict(record)


def test_read_only_page_refuses_every_retry(site: Site) -> None:
    """Without a configured token, retry is 403 even with some token, and changes nothing."""
    path = failed(site)
    before = row(site, path)
    reply = site.http.post("/api/retry", json={"path": path}, headers=AUTH)
    assert (403, before, []) == (reply.status_code, row(site, path), site.source.retried)
    assert False is site.http.get("/api/summary").json()["retry_enabled"]


def test_retry_without_the_token_is_401_and_changes_nothing(token_site: Site) -> None:
    """No token, a wrong one or another scheme: 401 with a Bearer challenge, the row as it was."""
    path = failed(token_site)
    before = row(token_site, path)
    for headers in ({}, {"Authorization": "Bearer wrong-token-0000000000"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
        reply = token_site.http.post("/api/retry", json={"path": path}, headers=headers)
        assert (401, 'Bearer realm="runwatchd"') == (reply.status_code,
                                                     reply.headers["www-authenticate"])
    assert (before, []) == (row(token_site, path), token_site.source.retried)


def test_refusals_are_logged_once_a_minute_without_the_guess(
        token_site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """Many wrong tokens make one warning (not one each), and it never repeats the guess."""
    path = failed(token_site)
    with caplog.at_level(logging.WARNING, logger="runwatchd.service.web"):
        for i in range(5):
            token_site.http.post("/api/retry", json={"path": path},
                                 headers={"Authorization": f"Bearer guess-{i:020d}"})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [("web: 1 retry request(s) refused for a missing or wrong token (the last from "
             "127.0.0.1)")] == warnings


def test_retry_with_the_token_marks_the_file_like_the_cli(token_site: Site) -> None:
    """With the token: 202, and the row becomes "retry" with its task cleared, as `retry` does."""
    path = failed(token_site)
    reply = token_site.http.post("/api/retry", json={"path": path}, headers=AUTH)
    assert (202, {"path": path, "outcome": "retrying", "state": "retry"}) == (
        reply.status_code, reply.json())
    after = row(token_site, path)
    assert {"state": "retry", "task_id": None, "task_status": None, "failure": None,
            "failure_code": None, "error": None, "outputs": [], "attempts": 0,
            "next_attempt": None, "runway_uri": "runway://upload/1"} == {
        k: after[k] for k in ("state", "task_id", "task_status", "failure", "failure_code",
                              "error", "outputs", "attempts", "next_attempt", "runway_uri")}
    assert [path] == token_site.source.retried
    assert "generating" == token_site.row(path)["display"]


def test_retry_of_a_file_in_flight_or_unknown_is_refused(token_site: Site) -> None:
    """A running generation is 409 (never twice at once); a path the store lacks is 404."""
    hot = token_site.source.folders[0]
    token_site.put(hot / "busy.png", "running", task_id="t-2")
    reply = token_site.http.post("/api/retry", json={"path": str(hot / "busy.png")},
                                 headers=AUTH)
    assert (409, "not_retryable", "running") == (reply.status_code, reply.json()["outcome"],
                                                 reply.json()["state"])
    reply = token_site.http.post("/api/retry", json={"path": str(hot / "nope.png")},
                                 headers=AUTH)
    assert (404, "unknown") == (reply.status_code, reply.json()["outcome"])


def test_malformed_retry_bodies_are_refused(token_site: Site) -> None:
    """Not JSON, no path, another content type: 400 or 415, and nothing retried."""
    path = failed(token_site)
    post = token_site.http.post
    assert 415 == post("/api/retry", content=json.dumps({"path": path}),
                       headers={**AUTH, "Content-Type": "text/plain"}).status_code
    assert 400 == post("/api/retry", content=b"{not json",
                       headers={**AUTH, "Content-Type": "application/json"}).status_code
    assert 400 == post("/api/retry", json={"file": path}, headers=AUTH).status_code
    assert 400 == post("/api/retry", json=[path], headers=AUTH).status_code
    assert 405 == token_site.http.get("/api/retry").status_code
    assert [] == token_site.source.retried


def raw_post(site: Site, headers: dict[str, str], body: bytes = b"") -> int:
    host, port = site.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/api/retry", skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        return conn.getresponse().status
    finally:
        conn.close()


def test_huge_or_unsized_bodies_are_refused_before_reading(token_site: Site) -> None:
    """A body over the cap is 413 without being read; no Content-Length or chunked is 411."""
    base = {**AUTH, "Content-Type": "application/json"}
    assert 413 == raw_post(token_site, {**base, "Content-Length": str(MAX_BODY + 1)})
    assert 411 == raw_post(token_site, base)
    assert 411 == raw_post(token_site, {**base, "Transfer-Encoding": "chunked"}, b"0\r\n\r\n")
    assert 400 == raw_post(token_site, {**base, "Content-Length": "-1"})
