"""Structured fields on JSON log lines: path, uri, bytes, task_id, node, event."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from pathlib import Path

import pytest
from daemon_helpers import running
from helpers import wait_for

import runwatchd
from runwatchd.service import logs
from runwatchd.service.logs import EVENTS, add_log_context, log_context, setup_logging

PACKAGE = Path(runwatchd.__file__).parent


# Every test here leaves the process's logging as it found it.
pytestmark = pytest.mark.usefixtures("restore_logging")




def records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_known_message_is_still_logged_somewhere() -> None:
    """Each EVENTS template is a literal in the package: rewording a line breaks this test
    instead of silently dropping its fields."""
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "logs.py")
    missing = [t for t in EVENTS if f'"{t}"' not in source]
    assert [] == missing


def test_a_known_message_carries_its_fields() -> None:
    """A file's way line gets event, path, uri from its arguments, node, and the context's."""
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out, env={})
    log = logging.getLogger("runwatchd.test")
    with log_context(path="/in/a.jpg"):
        add_log_context(bytes=1234)
        log.info("uploaded %s -> %s", Path("/in/a.jpg"), "runway://abc")
    log.info("not a known line")
    first, second = records(out)
    assert {"event": "uploaded", "path": "/in/a.jpg", "uri": "runway://abc", "bytes": 1234,
            "node": socket.gethostname()} == {k: first[k] for k in
                                              ("event", "path", "uri", "bytes", "node")}
    assert {"node"} == set(second) - {"ts", "level", "logger", "msg"}


def test_extra_wins_over_what_is_derived() -> None:
    """A line that names a field itself keeps its value."""
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out, env={})
    with log_context(path="/outer"):
        logging.getLogger("t").info("detected %s", "/x", extra={"path": "/mine"})
    assert "/mine" == records(out)[0]["path"]


def test_context_ends_with_its_block() -> None:
    """Outside log_context no path is added, and add_log_context outside one does nothing."""
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out, env={})
    add_log_context(bytes=1)
    with log_context(path="/a"):
        pass
    logging.getLogger("t").info("plain")
    assert "path" not in records(out)[0] and "bytes" not in records(out)[0]


def test_text_lines_are_unchanged() -> None:
    """Text logs carry no fields: the same line as before."""
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out, env={})
    with log_context(path="/a"):
        logging.getLogger("t").info("uploaded %s -> %s", "/a", "runway://x")
    assert re.search(r"INFO  t: uploaded /a -> runway://x$", out.getvalue().strip())


def test_a_secret_in_a_field_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields pass the secret filter like the message does."""
    monkeypatch.setattr(logs, "_secrets", [])
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out, env={})
    logs.install_secret_filter("key_sekrit_0123456789")
    with log_context(path="/in/key_sekrit_0123456789.jpg"):
        logging.getLogger("t").info("x")
    assert "key_sekrit" not in out.getvalue()


def test_a_daemon_upload_logs_path_uri_and_bytes(tmp_path: Path) -> None:
    """JSON lines of an upload by the daemon carry path, uri and bytes."""
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out, env={})
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    clip = inbox / "shot.png"
    clip.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4096))
    with running(tmp_path) as r:
        code, _ = r.scan(r.config([inbox]))
    assert 0 == code
    uploaded = wait_for(lambda: [x for x in records(out) if x.get("event") == "uploaded"])
    line = uploaded[0]
    assert (str(clip), clip.stat().st_size) == (line["path"], line["bytes"])
    assert str(line["uri"]).startswith("runway://")
    started = [x for x in records(out) if x.get("event") == "upload_started"][0]
    assert (str(clip), clip.stat().st_size) == (started["path"], started["bytes"])
