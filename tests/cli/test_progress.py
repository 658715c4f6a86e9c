"""The upload progress bar, driven by a fake clock and written to a StringIO."""

from __future__ import annotations

import io
import logging

import pytest

from runwatchd.cli.progress import ProgressBar

MIB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_bar(clock: Clock, columns: int = 80) -> tuple[ProgressBar, io.StringIO]:
    out = io.StringIO()
    return ProgressBar(out, clock=clock, columns=columns), out


def test_single_file_line(clock: Clock) -> None:
    """One file: its name, percent, a bar, bytes, rate and ETA."""
    bar, _ = make_bar(clock)
    f = bar.track("clip.mp4", 200 * MIB)
    f(50 * MIB)
    assert ("clip.mp4  25% [#####................]  50.0/200.0 MiB  25.0 MiB/s  ETA 0:06"
            ) == bar.render(2.0)


def test_many_files_count_finished_and_failed(clock: Clock) -> None:
    """Several files: finished/total in front; a failed file leaves the totals and is counted."""
    bar, _ = make_bar(clock, columns=120)
    a, b, c = (bar.track(n, 10 * MIB) for n in ("a.jpg", "b.jpg", "c.jpg"))
    a(10 * MIB)
    a.finish(True)
    b(4 * MIB)
    b.finish(False)
    bar.retried()
    c(5 * MIB)
    assert ("2/3 files  75% [##############################..........]  15.0/20.0 MiB  "
            "15.0 MiB/s  1 failed  1 retry  ETA 0:00") == bar.render(1.0)


def test_narrow_terminal_drops_extras_first(clock: Clock) -> None:
    """When the line is short of room, the ETA goes first, then the retries."""
    bar, _ = make_bar(clock, columns=80)
    f = bar.track("a.jpg", 10 * MIB)
    bar.retried()
    f(5 * MIB)
    assert "a.jpg  50% [############............]  5.0/10.0 MiB  5.0 MiB/s  1 retry" == (
        bar.render(1.0))


def test_restarted_attempt_takes_bytes_back(clock: Clock) -> None:
    """A negative delta (an attempt restarting) lowers the bytes done."""
    bar, _ = make_bar(clock)
    f = bar.track("a.wav", 1000)
    f(800)
    f(-800)
    f(100)
    assert "a.wav  10% [" == bar.render(1.0)[:12]


def test_redraws_at_most_ten_times_a_second(clock: Clock) -> None:
    """Many updates within 0.1 s draw once; the next update after 0.1 s draws again."""
    bar, out = make_bar(clock)
    f = bar.track("a.jpg", 100_000)
    for _ in range(100):
        f(10)
    clock.now = 0.05
    f(10)
    first = out.getvalue().count("\r")
    clock.now = 0.2
    f(10)
    assert (1, 2) == (first, out.getvalue().count("\r"))


def test_retry_and_finish_draw_at_once(clock: Clock) -> None:
    """A retry and a finished file are shown at once, whatever the redraw interval."""
    bar, out = make_bar(clock)
    f = bar.track("a.jpg", 1000)
    bar.retried()
    f(1000)
    f.finish(True)
    drawn = out.getvalue().split("\r")
    assert (True, True) == ("1 retry" in drawn[-2], "100%" in drawn[-1])


def test_fits_every_width(clock: Clock) -> None:
    """Whatever the terminal width, the line is at most width - 1 (it must never wrap)."""
    for columns in range(10, 220, 7):
        bar, _ = make_bar(clock, columns)
        files = [bar.track(f"a rather long file name number {i}.mov", 300 * MIB)
                 for i in range(12)]
        files[0](123 * MIB)
        files[1].finish(False)
        bar.retried()
        line = bar.render(3.0)
        assert len(line) <= max(columns - 1, 20), (columns, line)


def test_long_name_keeps_its_extension(clock: Clock) -> None:
    """A long single file name is cut in the middle, so the extension stays visible."""
    bar, _ = make_bar(clock, 60)
    bar.track("a_very_long_name_for_the_final_grade_of_shot_042.mov", 1000)
    head = bar.render(0.0).split(" ")[0]
    assert (True, True, 19) == ("…" in head, head.endswith(".mov"), len(head))


def test_clear_blanks_the_line_and_next_update_redraws(clock: Clock) -> None:
    """clear() overwrites the bar with spaces; the next update draws at once."""
    bar, out = make_bar(clock)
    f = bar.track("a.jpg", 1000)
    shown = len(out.getvalue()) - 1
    bar.clear()
    blank = out.getvalue()[shown + 1:]
    f(10)
    assert ("\r" + " " * shown + "\r", "a.jpg   1% [") == (blank,
                                                         out.getvalue().split("\r")[-1][:12])


def test_close_ends_the_line_once(clock: Clock) -> None:
    """close() draws the final state and one newline; a second close writes nothing."""
    bar, out = make_bar(clock)
    f = bar.track("a.jpg", 1000)
    f(1000)
    bar.close()
    after_first = out.getvalue()
    bar.close()
    assert ("a.jpg 100% [", "\n", after_first) == (
        after_first.split("\r")[-1][:12], after_first[-1], out.getvalue())


def test_close_without_files_writes_nothing(clock: Clock) -> None:
    """A bar that never tracked a file leaves the terminal untouched."""
    bar, out = make_bar(clock)
    bar.close()
    assert "" == out.getvalue()


def test_log_filter_puts_log_lines_above_the_bar(clock: Clock) -> None:
    """A log record through a handler with the bar's filter first blanks the bar line."""
    bar, out = make_bar(clock)
    handler = logging.StreamHandler(out)
    handler.addFilter(bar.log_filter())
    logger = logging.getLogger("runwatchd.test_progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        f = bar.track("a.jpg", 1000)
        logger.warning("something happened")
        f(500)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    text = out.getvalue()
    blank_then_log = text.index("\r" + " " * 5) < text.index("something happened\n")
    assert (True, True) == (blank_then_log, text.split("\n")[-1].startswith("\ra.jpg  50% ["))
