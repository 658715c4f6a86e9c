"""Tests for runwatchd.service.web.api: /api/summary and /api/files over a real server."""

from __future__ import annotations

from pathlib import Path

from web_helpers import Site

from runwatchd.service.web.source import HealthReport, Progress
from runwatchd.service.web.view import file_id


def test_summary_gives_totals_per_display_state_and_health(site: Site) -> None:
    """Totals group the store's states as the page shows them; health comes from the source."""
    hot = site.source.folders[0]
    site.put(hot / "a.png", "succeeded")
    site.put(hot / "b.png", "task_failed")
    site.put(hot / "c.png", "invalid")
    site.put(hot / "d.png", "running")
    site.put(hot / "e.png", "attention")
    site.source.waiting_paths = [str(hot / "f.png")]
    summary = site.http.get("/api/summary").json()
    assert {"waiting": 1, "uploading": 0, "uploaded": 0, "generating": 1, "succeeded": 1,
            "failed": 2, "attention": 1} == summary["totals"]
    assert {"attention": 1, "invalid": 1, "running": 1, "succeeded": 1,
            "task_failed": 1} == summary["states"]
    assert ("node-a", [str(hot)], False) == (summary["node"], summary["folders"],
                                             summary["retry_enabled"])
    assert {"healthy": True, "paused": None, "credits_out": False, "api_reachable": True,
            "credits": 1234, "observers": [{"folder": str(hot), "kind": "inotify",
                                            "state": "watching", "alive": True}]
            } == summary["health"]


def test_summary_reports_a_pause(site: Site) -> None:
    """A rejected key shows as the pause's reason, and the daemon as unhealthy."""
    site.source.health_now = HealthReport(healthy=False, observers=(), api_reachable=None,
                                    credits=None, paused="API key rejected (401)")
    health = site.http.get("/api/summary").json()["health"]
    assert (False, "API key rejected (401)", None) == (health["healthy"], health["paused"],
                                                       health["credits"])


def test_files_lists_newest_first_with_every_field(site: Site) -> None:
    """/api/files gives each file's id, names, state and task, newest change first."""
    hot = site.source.folders[0]
    site.put(hot / "old.png", "uploaded", runway_uri="runway://upload/1", size=700)
    site.put(hot / "sub" / "new.png", "succeeded", task_id="t-1", endpoint="image_to_video",
             task_status="SUCCEEDED", rule_name="stills", outputs=["renders/new.mp4"])
    files = site.files()
    assert ["new.png", "old.png"] == [f["name"] for f in files]
    new = files[0]
    fid = file_id(str(hot / "sub" / "new.png"))
    assert {"id": fid, "path": str(hot / "sub" / "new.png"), "folder": str(hot),
            "node": "node-a", "state": "succeeded", "display": "succeeded",
            "task": {"id": "t-1", "endpoint": "image_to_video", "rule": "stills",
                     "status": "SUCCEEDED"},
            "outputs": [{"n": 0, "name": "renders/new.mp4",
                         "url": f"/api/files/{fid}/outputs/0", "thumb": None}],
            "thumb": f"/api/files/{fid}/thumb", "reason": None, "advice": None,
            "retryable": False} == {k: new[k] for k in (
                "id", "path", "folder", "node", "state", "display", "task", "outputs", "thumb",
                "reason", "advice", "retryable")}
    assert ("runway://upload/1", 700, None) == (files[1]["runway_uri"], files[1]["size"],
                                                files[1]["task"])


def test_a_failed_generation_says_why_and_what_to_do(site: Site) -> None:
    """A FAILED task shows Runway's reason with its code, and advice on what to do."""
    hot = site.source.folders[0]
    site.put(hot / "x.png", "task_failed", task_id="t", task_status="FAILED",
             failure="The image has no face", failure_code="INPUT_PREPROCESSING.SAFETY")
    row = site.row(hot / "x.png")
    assert ("failed", "The image has no face (INPUT_PREPROCESSING.SAFETY)", True) == (
        row["display"], row["reason"], row["retryable"])
    assert "retry" in row["advice"]


def test_needs_attention_warns_about_billing_twice(site: Site) -> None:
    """A file needing attention says a retry may bill twice."""
    hot = site.source.folders[0]
    site.put(hot / "y.mp4", "attention", error="submit uncertain: timeout after the POST")
    row = site.row(hot / "y.mp4")
    assert ("attention", "submit uncertain: timeout after the POST", None) == (
        row["display"], row["reason"], row["thumb"])
    assert "billed twice" in row["advice"]


def test_transient_failure_says_when_it_is_tried_again(site: Site) -> None:
    """A transient failure names its error and the time left until the next try."""
    hot = site.source.folders[0]
    site.put(hot / "z.png", "failed", error="upload failed: connection reset",
             next_attempt=site.clock() + 126)
    row = site.row(hot / "z.png")
    assert "upload failed: connection reset" == row["reason"]
    assert "Next try in about 2 min" in row["advice"]


def test_search_filters_by_name_case_insensitively(site: Site) -> None:
    """q= keeps the files whose path contains it, whatever the case."""
    hot = site.source.folders[0]
    for name in ("Beach_01.png", "beach_02.png", "forest.png"):
        site.put(hot / name, "uploaded")
    assert ["Beach_01.png", "beach_02.png"] == sorted(f["name"] for f in site.files(q="BEACH"))


def test_display_filter_and_limit(site: Site) -> None:
    """display= keeps one state; limit= cuts the list and says it was cut."""
    hot = site.source.folders[0]
    for i in range(5):
        site.put(hot / f"ok{i}.png", "uploaded")
    site.put(hot / "bad.png", "invalid", error="too small")
    assert ["bad.png"] == [f["name"] for f in site.files(display="failed")]
    reply = site.http.get("/api/files", params={"limit": 2}).json()
    assert (2, 6, True) == (len(reply["files"]), reply["total"], reply["truncated"])


def test_old_files_drop_out_unless_someone_must_act(site: Site) -> None:
    """days= hides old finished files, but never one in motion or needing attention."""
    hot = site.source.folders[0]
    site.put(hot / "done.png", "succeeded")
    site.put(hot / "stuck.png", "attention")
    site.clock.advance(2 * 86400)
    site.server.api.catalog.invalidate()
    assert ["stuck.png"] == [f["name"] for f in site.files(days=1)]
    assert ["done.png", "stuck.png"] == sorted(f["name"] for f in site.files(days=3))


def test_live_facts_overlay_the_store(site: Site) -> None:
    """Files settling appear before they have a row; uploads carry their bytes sent."""
    hot = site.source.folders[0]
    site.put(hot / "up.mov", "uploading", size=1000)
    site.source.progress = {str(hot / "up.mov"): Progress(250, 1000)}
    site.source.waiting_paths = [str(hot / "new.mov")]
    rows = {f["name"]: f for f in site.files()}
    assert ("waiting", "settling") == (rows["new.mov"]["display"], rows["new.mov"]["state"])
    assert {"sent": 250, "total": 1000} == rows["up.mov"]["progress"]


def test_bad_query_values_are_refused(site: Site) -> None:
    """Nonsense in days=, limit= or display= is a 400 naming the parameter."""
    for params, word in (({"days": "x"}, "days"), ({"limit": "0"}, "limit"),
                         ({"days": "1e9"}, "days"), ({"display": "done"}, "display")):
        reply = site.http.get("/api/files", params=params)
        assert (400, True) == (reply.status_code, reply.json()["error"].startswith(word))


def test_unknown_routes_and_methods(site: Site) -> None:
    """Unknown paths are 404, wrong methods 405, and /metrics is absent unless wired."""
    assert 404 == site.http.get("/api/nothing").status_code
    assert 404 == site.http.get("/metrics").status_code
    assert 405 == site.http.post("/api/files").status_code
    assert 405 == site.http.post("/").status_code
    assert 501 == site.http.request("PUT", "/api/files").status_code


def test_metrics_share_the_address_when_wired(tmp_path: Path) -> None:
    """With metrics handed over, /metrics serves their exposition beside the page."""
    from web_helpers import start_site

    from runwatchd.service.metrics import Metrics

    metrics = Metrics(process_metrics=False)
    metrics.upload_succeeded(10)
    s, server = start_site(tmp_path, metrics=metrics.exposition)
    try:
        reply = s.http.get("/metrics")
        assert (200, True) == (reply.status_code,
                               "runwatchd_uploads_total{result=\"succeeded\"} 1.0" in reply.text)
        assert reply.headers["content-type"].startswith("text/plain")
    finally:
        s.http.close()
        server.stop()
        s.store.close()
