"""Reports as a reader sees them: a probe report and an experiment report rendered by headless
Chromium.  A script injected into a copy of each page runs after load and writes into the DOM
what it found: images that did not decode, a page wider than the window, figures shown narrower
than 400 px and smaller than their natural size, and any script error (window.onerror).
``--dump-dom`` prints the DOM once the page is loaded, and the test reads the result from it.

Chromium comes from Debian (`scripts/setup.sh --test` installs it when run as root); the tests
skip, saying so, only where no Chromium binary exists.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
pytestmark = [pytest.mark.skipif(BROWSER is None, reason="no Chromium binary (install Debian's `chromium`, "
                                                         "as `scripts/setup.sh --test` does when run as root)"),
              pytest.mark.usefixtures("one_thread")]

WIDTH = 1280
MIN_FIGURE_PX = 400

_ONERROR = "<script>window.__errors=[];window.onerror=function(m,s,l){window.__errors.push(m+' @'+l)};</script>"
_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).map(function (i) { return i.alt; }),
    small: imgs.filter(function (i) {
      var w = i.getBoundingClientRect().width;
      return w < %d && w < i.naturalWidth;
    }).map(function (i) { return i.alt + ' ' + Math.round(i.getBoundingClientRect().width) + 'px'; }),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    errors: window.__errors
  };
  var pre = document.createElement('pre');
  pre.id = 'reslab-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>""" % MIN_FIGURE_PX


def render(page: Path, tmp_path: Path) -> dict:
    """Load a copy of ``page`` with the checks injected; the checks' result."""
    text = page.read_text()
    text = re.sub(r"<head>", "<head>" + _ONERROR, text, count=1)
    text = text.replace("</body>", _CHECK + "</body>") if "</body>" in text else text + _CHECK
    wrapped = tmp_path / f"checked-{page.parent.name}-{page.name}"
    wrapped.write_text(text)
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={WIDTH},900",
           "--virtual-time-budget=5000", "--dump-dom", wrapped.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r"<pre id=\"reslab-check\">(.*?)</pre>", proc.stdout, re.S)
    assert m, f"Chromium printed no check result (exit {proc.returncode}): {proc.stderr[-800:]}"
    return json.loads(html.unescape(m.group(1)))


def _assert_readable(result: dict, figures: int) -> None:
    assert result["errors"] == [], result
    assert result["images"] == figures and result["broken"] == [], result
    assert result["scrollWidth"] <= result["innerWidth"], f"the page scrolls sideways: {result}"
    assert result["small"] == [], f"figures shown below {MIN_FIGURE_PX} px and shrunk: {result}"


def test_the_check_catches_a_broken_image_a_wide_page_and_a_script_error(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><html><head></head><body>"
                   "<img alt='missing' src='data:image/png;base64,AAAA'>"
                   "<div style='width:3000px'>wide</div><script>undefinedFunction()</script></body></html>")
    result = render(bad, tmp_path)
    assert result["broken"] == ["missing"] and result["scrollWidth"] > result["innerWidth"]
    assert len(result["errors"]) == 1 and "undefinedFunction" in result["errors"][0]


def test_probe_report_renders(tmp_path):
    import torch

    import reslab
    from reslab.probes import render_probe

    torch.manual_seed(0)
    rep = reslab.probe(reslab.create_model("resnet20", width=0.25), torch.randn(4, 3, 16, 16), points=32)
    paths = render_probe.write(rep, tmp_path / "probe")
    _assert_readable(render(paths["html"], tmp_path), figures=1)


def test_experiment_report_renders(tmp_path):
    from reslab.cli import main

    out = tmp_path / "report"
    assert main(["shattered", "--seeds", "2", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    assert main(["report", str(out)]) == 0
    page = out / "report.html"
    figures = page.read_text().count("<img")
    assert figures >= 1
    _assert_readable(render(page, tmp_path), figures=figures)
