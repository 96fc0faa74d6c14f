"""HTML previews rendered by headless Chromium (Debian package, installed by
scripts/ensure-chromium.sh): the page shows the severity, the resource and the rule."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from exfilguard.alerts.preview import write_previews
from tests.alerts_support.png import colours, read_png
from tests.alerts_support.samples import compute_alert, fixed_alert, many_alerts

CRITICAL_RED = (0xA4, 0x26, 0x2C)  # mail.BADGE_COLOURS["CRITICAL"]


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/ensure-chromium.sh (make test does)", pytrace=False)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("previews")
    written = write_previews([fixed_alert(), compute_alert(), *many_alerts(8)], out)
    return {p.name: p for p in written}


def test_previews_are_written_for_each_alert_and_the_digest(pages):
    assert {"index.html", "digest.html", "001-EXF-NSG-01-nsg_ml_training.html",
            "002-EXF-CMP-02-gpu-cluster.html"} <= set(pages)
    assert len(pages) == 2 + 10
    index = pages["index.html"].read_text()
    assert "digest.html" in index and "002-EXF-CMP-02-gpu-cluster.html" in index


def test_rendered_alert_page_shows_severity_resource_and_rule(pages, tmp_path):
    page = pages["001-EXF-NSG-01-nsg_ml_training.html"]
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    for text in ("CRITICAL", "EXF-NSG-01", "Outbound internet traffic is not denied", "nsg_ml_training",
                 "rg-ml-prod", "westeurope", "Dana Whitfield", "Open in Azure portal"):
        assert text in dom, text


def test_screenshot_is_a_real_rendering_with_the_severity_colour(pages, tmp_path):
    shot = tmp_path / "alert.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600",
             pages["001-EXF-NSG-01-nsg_ml_training.html"].as_uri())
    png = read_png(shot.read_bytes())
    assert (png.width, png.height) == (1200, 1600)
    seen = colours(png, rows=260)  # header bar, badge and title are in the top rows
    assert len(seen) > 20          # text, borders and fills, not a blank page
    assert CRITICAL_RED in seen    # the severity badge and top border


def test_rendered_digest_page_lists_every_severity(pages, tmp_path):
    dom = chromium(tmp_path, "--dump-dom", pages["digest.html"].as_uri()).stdout
    for text in ("CRITICAL · 3", "HIGH · 3", "MEDIUM · 2", "LOW · 2", "gpu-cluster", "nsg-team-001"):
        assert text in dom, text
