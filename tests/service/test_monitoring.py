"""monitoring/: the alert rules and the Grafana dashboard name only metrics the daemon serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runwatchd.service.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:runwatchd|process)_[a-z0-9_]+)")
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def served() -> set[str]:
    """Every series name /metrics serves (histogram parts included)."""
    m = Metrics()
    names = set()
    for family in m.registry.collect():
        names.update(sample.name for sample in family.samples)
    return names


def named(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def test_alert_rules_are_well_formed() -> None:
    """Each rule has a name, an expression, a severity and a summary; names are unique."""
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
    names = [rule["alert"] for rule in rules]
    assert sorted(set(names)) == sorted(names)


def test_alerts_and_dashboard_name_only_served_metrics() -> None:
    """A renamed metric cannot leave an alert or a panel silently empty."""
    doc = yaml.safe_load(ALERTS.read_text())
    exprs = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(named(e) for e in exprs))
    assert used
    assert set() == used - served()


def test_dashboard_is_importable() -> None:
    """Unique panel ids, a datasource variable, and every panel has a query."""
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert sorted(set(ids)) == sorted(ids)
    assert "datasource" in [v["name"] for v in dashboard["templating"]["list"]]
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in dashboard["panels"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_checks_the_rules() -> None:
    """`promtool check rules` accepts the alert rules (Debian: the prometheus package)."""
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert 0 == result.returncode, result.stdout + result.stderr
