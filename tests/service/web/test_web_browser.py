"""The status page in a real headless chromium: states, reasons, hostile names, retry, network.

Skipped, saying why, where chromium, chromedriver or selenium is missing; .ci/run installs them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser_helpers import Browser, browser, missing
from web_helpers import TOKEN, Site

from runwatchd.cli.demo import make_png
from runwatchd.service.web.source import Progress

HOSTILE = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def page() -> Iterator[Browser]:
    """A headless chromium that reaches nothing but 127.0.0.1."""
    with browser() as b:
        yield b


def test_page_shows_each_file_with_its_state_and_a_failures_reason(token_site: Site,
                                                                   page: Browser) -> None:
    """Every file appears with its state; a failed one shows its reason and advice."""
    hot = token_site.source.folders[0]
    make_png(hot / "still.png", width=16, height=16, seed=1)
    token_site.put(hot / "still.png", "uploaded", runway_uri="runway://upload/1")
    token_site.put(hot / "clip.mov", "uploading", size=4000)
    token_site.source.progress = {str(hot / "clip.mov"): Progress(1000, 4000)}
    token_site.put(hot / "gen.png", "running", task_id="t", task_status="RUNNING",
                   endpoint="image_to_video")
    token_site.put(hot / "bad.png", "task_failed", task_id="t2", task_status="FAILED",
                   failure="Moderation refused the input", failure_code="SAFETY.INPUT")
    page.open(token_site.base + "/")
    rows = page.wait(lambda: (r := page.rows()) and len(r) == 4 and r)
    assert {"still.png": "uploaded", "clip.mov": "uploading", "gen.png": "generating",
            "bad.png": "failed"} == {name: row["display"] for name, row in rows.items()}
    assert ("Failed", "Moderation refused the input (SAFETY.INPUT)", True) == (
        rows["bad.png"]["badge"], rows["bad.png"]["reason"], rows["bad.png"]["retry"])
    assert "25% of 4.0 KB" == page.js("return document.querySelector('.pct').textContent")
    assert "1" == page.js(
        "return document.querySelector('.total.s-failed .n').textContent")


def test_page_updates_live_without_a_reload(site: Site, page: Browser) -> None:
    """A file dropped after the page loaded appears, then changes state, with no reload."""
    hot = site.source.folders[0]
    page.open(site.base + "/")
    page.wait(lambda: page.js("return document.getElementById('count').textContent"))
    page.js("window.marker = 'same page'")
    site.source.waiting_paths = [str(hot / "late.mov")]
    assert page.wait(lambda: page.rows().get("late.mov", {}).get("display") == "waiting", 8)
    site.source.waiting_paths = []
    site.put(hot / "late.mov", "invalid", error="late.mov: too small (100 bytes)")
    assert page.wait(lambda: page.rows()["late.mov"]["display"] == "failed", 8)
    assert ("late.mov: too small (100 bytes)", "same page") == (
        page.rows()["late.mov"]["reason"], page.js("return window.marker"))


def test_a_hostile_file_name_renders_as_text(site: Site, page: Browser) -> None:
    """A name made of HTML shows as that text: no alert, no element made from it."""
    hot = site.source.folders[0]
    site.put(hot / HOSTILE, "task_failed", failure="<script>alert(2)</script>")
    page.open(site.base + "/")
    rows = page.wait(lambda: page.rows())
    assert [HOSTILE] == list(rows)
    assert "<script>alert(2)</script>" == rows[HOSTILE]["reason"]
    assert None is page.alert_text()
    made = page.js("""return [...document.querySelectorAll('img, script')]
        .filter((e) => e.getAttribute('src') === 'x' || e.textContent.includes('alert(2)'))
        .length""")
    assert 0 == made


def test_search_keeps_only_matching_names(site: Site, page: Browser) -> None:
    """Typing in the search box narrows the list to the names that contain it."""
    hot = site.source.folders[0]
    for name in ("beach_01.png", "Beach_02.png", "forest.png"):
        site.put(hot / name, "uploaded")
    page.open(site.base + "/")
    page.wait(lambda: len(page.rows()) == 3)
    page.driver.find_element("id", "search").send_keys("beach")
    assert page.wait(lambda: sorted(page.rows()) == ["Beach_02.png", "beach_01.png"], 8)


def test_retry_without_the_token_is_refused_and_with_it_accepted(token_site: Site,
                                                                 page: Browser) -> None:
    """Retry from the page: 401 shown without the token; after entering it, resubmitted."""
    hot = token_site.source.folders[0]
    token_site.put(hot / "bad.png", "task_failed", task_id="t", failure="nope")
    page.open(token_site.base + "/")
    page.wait(lambda: page.rows()["bad.png"]["retry"])
    page.js("document.querySelector('button.retry').click()")
    assert page.wait(lambda: "401" in page.js(
        "return document.getElementById('message').textContent"))
    assert ("task_failed", []) == (token_site.store.get(hot / "bad.png").state,
                                   token_site.source.retried)
    page.driver.find_element("id", "token").send_keys(TOKEN)
    page.js("document.getElementById('token-save').click()")
    page.wait(lambda: page.js("return document.getElementById('token').hidden"))
    page.js("document.querySelector('button.retry').click()")
    assert page.wait(lambda: token_site.source.retried == [str(hot / "bad.png")])
    assert page.wait(lambda: page.rows()["bad.png"]["display"] == "generating", 8)
    assert [] == page.driver.get_cookies()
    assert TOKEN not in page.js("return document.documentElement.outerHTML")


def test_page_needs_no_network_but_the_daemons_address(site: Site, page: Browser) -> None:
    """Every request the page makes goes to the daemon that served it; nothing else."""
    hot = site.source.folders[0]
    make_png(hot / "still.png", width=16, height=16, seed=1)
    site.put(hot / "still.png", "uploaded")
    page.open(site.base + "/")
    page.wait(lambda: page.rows())
    page.wait(lambda: page.js("return [...document.images].every((i) => i.complete)"))
    urls = page.requests()
    assert {"/", "/static/app.js", "/static/style.css", "/api/summary"} <= {
        u.removeprefix(site.base) for u in urls}
    assert [] == [u for u in urls if not u.startswith(site.base + "/")]
    assert [] == [e for e in page.driver.get_log("browser")
                  if "Content Security Policy" in e["message"]]


def test_without_a_browser_the_tests_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no chromium on PATH the browser tests skip with the package to install."""
    monkeypatch.setenv("PATH", "")
    assert missing() in (
        "no chromium here (apt-get install chromium chromium-driver)",
        "selenium is not installed (pip install -e '.[test]')")
