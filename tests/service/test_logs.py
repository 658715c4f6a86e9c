"""Log formats (terminal, pipe, journald, JSON), library quieting and secret redaction."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
from pathlib import Path

import pytest

from runwatchd.service import logs
from runwatchd.service.logs import SecretFilter, install_secret_filter, setup_logging

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (.*)$")
SECRET = "key_0123456789abcdef0123456789abcdef"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_secrets_yet(restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logging put back after each test, and no secret registered by an earlier one."""
    monkeypatch.setattr(logs, "_secrets", [])


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_plain_lines_on_a_pipe() -> None:
    """Not a terminal, not the journal: timestamped lines without colour codes."""
    out = io.StringIO()
    setup_logging("INFO", stream=out, env={})
    logging.getLogger("runwatchd.daemon.core").info("watching %d folders", 2)
    match = TIMESTAMPED.match(lines(out)[0])
    assert match is not None
    assert "INFO  runwatchd.daemon.core: watching 2 folders" == match.group(1)


def test_a_newline_in_a_file_name_cannot_forge_a_line(tmp_path: Path) -> None:
    """A name holding a newline is escaped: one record stays one line, on a pipe and journald."""
    name = "evil.jpg\n2026-01-01 00:00:00 ERROR runwatchd.daemon.core: forged"
    out = io.StringIO()
    setup_logging("INFO", stream=out, env={})
    logging.getLogger("runwatchd.daemon.core").info("uploaded %s", name)
    assert 1 == len(lines(out))
    assert lines(out)[0].endswith("uploaded evil.jpg\\n2026-01-01 00:00:00 ERROR "
                                  "runwatchd.daemon.core: forged")
    with open(tmp_path / "journal", "w+") as journal:
        st = os.fstat(journal.fileno())
        setup_logging("INFO", stream=journal,
                      env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logging.getLogger("runwatchd.daemon.core").info("uploaded %s", name)
        journal.flush()
        journal.seek(0)
        assert 1 == len(journal.read().splitlines())


def test_colour_on_a_terminal() -> None:
    """On a TTY the level is coloured."""
    out = FakeTTY()
    setup_logging("INFO", stream=out, env={"TERM": "xterm"})
    logging.getLogger("runwatchd.daemon.core").warning("slow NAS")
    assert "\033[33mWARNING\033[0m runwatchd.daemon.core: slow NAS" in lines(out)[0]


def test_no_color_disables_colour() -> None:
    """NO_COLOR keeps the terminal format but drops the escape codes."""
    out = FakeTTY()
    setup_logging("INFO", stream=out, env={"NO_COLOR": "1", "TERM": "xterm"})
    logging.getLogger("runwatchd.daemon.core").info("hello")
    assert "\033" not in out.getvalue()
    assert TIMESTAMPED.match(lines(out)[0])


def test_journald_prefixes_and_no_timestamp(tmp_path: Path) -> None:
    """When JOURNAL_STREAM names our stderr: <N> priority prefix on every line, no time."""
    with open(tmp_path / "journal", "w+") as out:
        st = os.fstat(out.fileno())
        setup_logging("DEBUG", stream=out, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        log = logging.getLogger("runwatchd.daemon.core")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.critical("c")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
        out.flush()
        out.seek(0)
        text = out.read().splitlines()
    expected = ["<7>DEBUG runwatchd.daemon.core: d", "<6>INFO runwatchd.daemon.core: i",
                "<4>WARNING runwatchd.daemon.core: w", "<2>CRITICAL runwatchd.daemon.core: c",
                "<3>ERROR runwatchd.daemon.core: failed"]
    assert expected == text[:5]
    assert text[5:] and all(line.startswith("<3>") for line in text[5:])
    assert "<3>RuntimeError: boom" == text[-1]


def test_journal_stream_of_another_file_is_ignored(tmp_path: Path) -> None:
    """An inherited JOURNAL_STREAM that is not our stream means plain timestamped lines."""
    other = tmp_path / "other"
    other.write_text("")
    st = other.stat()
    with open(tmp_path / "log", "w+") as out:
        setup_logging("INFO", stream=out, env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logging.getLogger("runwatchd").info("hello")
        out.flush()
        out.seek(0)
        assert TIMESTAMPED.match(out.readline())


def test_json_lines_keep_extra_fields() -> None:
    """--log-format json: one object per line with ts, level, logger, msg, node and extras."""
    out = io.StringIO()
    setup_logging("INFO", fmt="json", stream=out, env={})
    logging.getLogger("runwatchd.daemon.core").info(
        "uploaded %s", "shot.jpg",
        extra={"path": Path("/srv/hot/shot.jpg"), "event": "uploaded", "uri": "runway://upload/1"},
    )
    record = json.loads(lines(out)[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("ts"))
    assert {"level": "INFO", "logger": "runwatchd.daemon.core", "msg": "uploaded shot.jpg",
            "path": "/srv/hot/shot.jpg", "event": "uploaded", "uri": "runway://upload/1",
            "node": socket.gethostname()} == record


def test_json_carries_the_exception() -> None:
    """An exception's traceback goes into the 'exc' field, keeping one line per record."""
    out = io.StringIO()
    setup_logging("INFO", fmt="json", stream=out, env={})
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("runwatchd").exception("oops")
    assert 1 == len(lines(out))
    assert json.loads(lines(out)[0])["exc"].endswith("ValueError: bad")


def test_setup_twice_replaces_the_handler() -> None:
    """A second setup_logging swaps our handler instead of doubling every line."""
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", stream=first, env={})
    setup_logging("INFO", stream=second, env={})
    logging.getLogger("runwatchd").info("once")
    assert ("", 1) == (first.getvalue(), len(lines(second)))


def test_level_filters_and_accepts_names() -> None:
    """Records below the level are dropped; level names are case-insensitive."""
    out = io.StringIO()
    setup_logging("warning", stream=out, env={})
    logging.getLogger("runwatchd").info("hidden")
    logging.getLogger("runwatchd").warning("shown")
    assert 1 == len(lines(out))
    assert lines(out)[0].endswith("runwatchd: shown")


def test_bad_level_or_format_is_refused() -> None:
    """Unknown levels and formats raise ValueError naming the bad value."""
    with pytest.raises(ValueError, match="'LOUD'"):
        setup_logging("LOUD", stream=io.StringIO(), env={})
    with pytest.raises(ValueError, match="'xml'"):
        setup_logging("INFO", fmt="xml", stream=io.StringIO(), env={})


def test_noisy_libraries_are_quieted() -> None:
    """httpx INFO request lines are dropped even at DEBUG; their warnings still show."""
    out = io.StringIO()
    setup_logging("DEBUG", stream=out, env={})
    logging.getLogger("httpx").info("HTTP Request: GET ...")
    logging.getLogger("watchdog.observers").debug("in-event")
    logging.getLogger("httpcore").warning("pool trouble")
    assert 1 == len(lines(out))
    assert "pool trouble" in lines(out)[0]


def test_overflow_warnings_flow_even_at_error_level() -> None:
    """watchdog's inotify overflow WARNING is still created, so the rescan hook sees it."""
    setup_logging("ERROR", stream=io.StringIO(), env={})
    assert logging.getLogger("watchdog.observers.inotify_c").isEnabledFor(logging.WARNING)


def test_secret_filter_redacts_message_args_and_extras() -> None:
    """The secret never reaches the output, whether in msg, args or an extra field."""
    out = io.StringIO()
    setup_logging("INFO", fmt="json", stream=out, env={})
    install_secret_filter(SECRET)
    log = logging.getLogger("runwatchd.runway.client")
    log.info("header Bearer %s", SECRET, extra={"uri": f"x{SECRET}"})
    log.info(f"inline {SECRET}")
    assert SECRET not in out.getvalue()
    first, second = (json.loads(line) for line in lines(out))
    assert ("header Bearer [REDACTED]", "x[REDACTED]") == (first["msg"], first["uri"])
    assert "inline [REDACTED]" == second["msg"]


def test_secret_filter_redacts_tracebacks() -> None:
    """An exception quoting the secret is redacted in the printed traceback."""
    out = io.StringIO()
    setup_logging("INFO", stream=out, env={})
    install_secret_filter(SECRET)
    try:
        raise RuntimeError(f"Authorization: Bearer {SECRET}")
    except RuntimeError:
        logging.getLogger("runwatchd").exception("request failed")
    assert SECRET not in out.getvalue()
    assert "Bearer [REDACTED]" in out.getvalue()


def test_secret_filter_survives_a_new_setup() -> None:
    """A reconfigure (SIGHUP, --log-format) keeps redacting installed secrets."""
    install_secret_filter(SECRET)
    out = io.StringIO()
    setup_logging("INFO", stream=out, env={})
    logging.getLogger("runwatchd").info("%s", SECRET)
    assert SECRET not in out.getvalue()


def test_secret_filter_leaves_other_records_alone() -> None:
    """Records without the secret keep their msg and args; an empty secret does nothing."""
    record = logging.LogRecord("x", logging.INFO, "f", 1, "n=%d", (3,), None)
    assert SecretFilter(SECRET).filter(record) and SecretFilter("").filter(record)
    assert ("n=%d", (3,)) == (record.msg, record.args)
