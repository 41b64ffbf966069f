"""The HTML report in a real browser (headless Chromium): offline, no errors, every section,
and dataset or config text that carries script never runs."""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from auditkit.cli import app
from tests.conftest import ROOT, write_config
from tools.screenshot import ARGS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must run the browser tests: .ci/run installs Debian's chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>"


@pytest.fixture()
def hostile_report(workspace):
    frame = pd.read_csv(workspace / "data.csv")
    frame["purpose"] = frame["purpose"].where(frame.index % 5 != 0, f"holiday {IMG}")
    frame["sex"] = frame["sex"].replace({"female": f"female{SCRIPT}"})
    frame.to_csv(workspace / "data.csv", index=False)
    config = yaml.safe_load((workspace / "audit.yaml").read_text())
    config["description"] = f"Audit {IMG} description"
    config["auditors"]["fairness"] = {
        "n_boot": 100,
        "min_group_size": 5,
        "counterfactual": {"gender": {"pairs": [["male", "female"]]}},
    }
    config["auditors"]["explain"] = {
        "n_examples": 6,
        "max_steps": 32,
        "protected_words": {"sex": {"words": ["male", "female"]}},
    }
    config["auditors"]["mitigation"] = {  # group thresholds: a section with a chart, group names in its export
        "methods": {"threshold_dp": {"method": "threshold", "strengths": [0.0, 0.1]}},
        "n_boot": 100,
        "min_group_size": 5,
    }
    config["gates"].append(
        {"metric": "fairness.demographic_parity_ratio[sex]", "op": ">=", "threshold": 0.8, "source": f"policy {SCRIPT}"}
    )
    write_config(workspace, config)
    out = workspace / "out"
    result = CliRunner().invoke(app, ["run", str(workspace / "audit.yaml"), "--out", str(out), "--quiet"])
    assert result.exit_code in (0, 1), result.stderr
    return out


def open_in_chromium(path, screenshot=None):
    from playwright.sync_api import sync_playwright

    errors, requests, dialogs = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(path.resolve().as_uri())
        figures = page.locator(".figure").count()
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {figures}", timeout=30_000)
        state = page.evaluate("""() => ({
            xss: window.__xss,
            sections: [...document.querySelectorAll('section[id]')].map(s => s.id),
            gateRows: document.querySelectorAll('tr.gate-row').length,
            plots: document.querySelectorAll('.js-plotly-plot').length,
            text: document.body.innerText,
        })""")
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=False)
        browser.close()
    outside = [u for u in requests if not u.startswith(("file://", "data:", "blob:"))]
    return state, errors, outside, dialogs


def test_report_renders_offline_with_every_section(hostile_report):
    shot = ROOT / "reports" / "browser-test.png"
    state, errors, outside, dialogs = open_in_chromium(hostile_report / "report.html", shot)
    assert errors == [] and outside == [] and dialogs == []
    summary = json.loads((hostile_report / "summary.json").read_text())
    assert state["gateRows"] == len(summary["gates"])
    for section in (
        "verdict",
        "gates",
        "auditor-performance",
        "auditor-fairness",
        "auditor-explain",
        "auditor-mitigation",
        "provenance",
        "glossary",
    ):
        assert section in state["sections"]
    assert state["plots"] >= 5
    assert shot.stat().st_size > 10_000


def test_script_in_data_and_config_never_runs_and_shows_literally(hostile_report):
    state, errors, outside, dialogs = open_in_chromium(hostile_report / "report.html")
    assert state["xss"] is None and dialogs == [] and outside == []
    assert IMG in state["text"]  # the description, and dataset words in the heat-maps
    assert SCRIPT in state["text"]  # a group name and a gate source
