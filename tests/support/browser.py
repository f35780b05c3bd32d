"""A headless Chromium that measures a page as a person's window lays it out.

`make test` installs Debian's chromium-headless-shell where it can (as root); without
it the test that needs it fails saying how to install it (no skip).
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")

# Run in the page once it has loaded: what overflows, and what shows.
MEASURE = """<script>
window.addEventListener("load", () => {
  const box = document.querySelector(".wide");
  const hint = document.querySelector(".scroll-hint");
  const images = [...document.images].map((i) => i.getBoundingClientRect().right);
  document.body.setAttribute("data-measure", JSON.stringify({
    viewport: window.innerWidth,
    page: document.documentElement.scrollWidth,
    table: box.scrollWidth,
    table_box: box.clientWidth,
    table_right: box.getBoundingClientRect().right,
    hint: hint ? getComputedStyle(hint).display : "absent",
    images_right: Math.max(...images),
  }));
});
</script>"""


def chromium() -> str:
    """The browser's path; without one the test fails saying how to install it."""
    for name in NAMES:
        if found := shutil.which(name):
            return found
    pytest.fail(
        "no headless Chromium: `make test` installs Debian's chromium-headless-shell as "
        "root; else `sudo apt-get install chromium-headless-shell`",
        pytrace=False,
    )


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def measure(page: Path, width: int, scratch: Path) -> dict[str, float | str]:
    """The page (a copy with `MEASURE` added) laid out in a window ``width`` px wide."""
    copy = scratch / f"measured-{width}.html"
    copy.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    done = _run(
        [f"--window-size={width},2000", "--virtual-time-budget=10000", "--dump-dom"]
        + [copy.as_uri()]
    )
    found = done.stdout.split('data-measure="', 1)
    assert len(found) == 2, done.stderr[-2000:]
    return json.loads(html.unescape(found[1].split('"', 1)[0]))


def screenshot(page: Path, width: int, out: Path) -> Path:
    """A picture of the page in a window ``width`` px wide (to look at)."""
    _run([f"--window-size={width},2600", f"--screenshot={out}", page.as_uri()])
    return out
