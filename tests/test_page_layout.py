"""The report page and the organiser pages fit narrow windows (800 px) as well as wide ones (1280 px).

Structural checks always run: nothing is fixed wider than a 800 px window leaves, and every wide block
(table, preformatted text) scrolls inside its own box. Where a Chromium is installed
(Debian: ``apt-get install chromium``), the pages are also rendered headless at both widths and the
document must not be wider than the window; ``PAGE_SCREENSHOTS=folder`` keeps the screenshots:

    PAGE_SCREENSHOTS=screenshots .venv/bin/python -m pytest -p no:cacheprovider tests/test_page_layout.py
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import make_instance, make_pixel

from cityscapes_competition.core.challenge import load_challenge
from cityscapes_competition.organiser import competition_pages
from cityscapes_competition.organiser.platforms import CODABENCH_PLATFORM
from cityscapes_competition.scoring.report_html import CSS, render_detailed_results
from cityscapes_competition.scoring.scores import Scores

NARROW, WIDE = 800, 1280
# A 800 px window less the platforms' page margins and a scroll bar: the widest block that must fit.
NARROW_CONTENT = 760
MONOSPACE_CHARACTER = 7.8  # px, at the browsers' default 13 px monospace
SCROLLS = "overflow-x:auto"
CHROMIUM = next(
    (found for name in ("chromium", "chromium-headless-shell", "google-chrome") if (found := shutil.which(name))), None
)


@pytest.fixture(scope="module")
def report() -> str:
    scores = Scores(make_pixel(), make_instance(), ["a warning " * 30], image_count=500)
    return render_detailed_results(scores)


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return competition_pages.render_pages(load_challenge(None), CODABENCH_PLATFORM)


def _fixed_widths(css: str) -> list[int]:
    """Pixel widths that a box cannot shrink below: width, min-width and flex-basis (max-width is a cap)."""
    widths = [int(px) for px in re.findall(r"(?<![\w-])(?:min-)?width\s*:\s*(\d+)px", css)]
    return widths + [int(px) for px in re.findall(r"flex\s*:\s*\d+ \d+ (\d+)px", css)]


def test_the_report_fixes_no_width_beyond_a_narrow_window(report: str) -> None:
    inline = " ".join(re.findall(r'style="([^"]*)"', report))
    assert max(_fixed_widths(CSS + inline)) <= NARROW_CONTENT


def test_the_report_scrolls_its_tables_and_charts(report: str) -> None:
    assert re.search(r"\.table-wrap\s*\{[^}]*overflow-x:auto", CSS)
    assert "<img" not in report  # the charts are tables too (report_charts.py)
    assert report.count("<table") == report.count('<div class="table-wrap"><table') == 3 + 4  # scores, charts


@pytest.mark.parametrize("name", ["overview", "evaluation", "terms", "data", "get_starting_kit"])
def test_organiser_pages_scroll_their_wide_blocks_inside_their_own_box(pages: dict[str, str], name: str) -> None:
    page = pages[name]
    for tag in ("pre", "table"):
        boxed = len(re.findall(rf'<div style="[^"]*{SCROLLS}[^"]*"><{tag}[ >]', page))
        assert boxed == page.count(f"<{tag}"), f"a <{tag}> of {name} is not in a scrolling box"
    assert max(_fixed_widths(" ".join(re.findall(r'style="([^"]*)"', page))), default=0) <= NARROW_CONTENT


def test_the_data_layout_block_fits_a_narrow_window_unscrolled(pages: dict[str, str]) -> None:
    block = re.search(r"<pre><code>(cityscapes/.*?)</code></pre>", pages["data"], re.S)
    assert block is not None
    longest = max(len(line) for line in html.unescape(block.group(1)).splitlines())
    assert longest * MONOSPACE_CHARACTER <= NARROW_CONTENT - 2 * 40  # 40 px of margin on each side


# --- rendered in a real browser, where one is installed -----------------------------------------

# Written into the page after loading: the width of the whole document, which a block too wide for the
# window (not inside a box of its own that scrolls) makes larger than the window.
_PROBE = (
    "<script>document.body.setAttribute('data-document-width', String(document.documentElement.scrollWidth));</script>"
)
_FRAGMENT = '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0 40px">{}</body></html>'


def _document_width(page: str, width: int, folder: Path, name: str) -> int:
    """The rendered document's width in headless Chromium, with a screenshot kept if asked for."""
    path = folder / f"{name}-{width}.html"
    path.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},1200",
    ]
    dom = subprocess.run(
        [*command, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    keep = os.environ.get("PAGE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shot = Path(keep).resolve() / f"{name}-{width}.png"
        tall = [*command[:-1], f"--window-size={width},5000"]  # the whole page in one picture
        subprocess.run([*tall, f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=120, check=True)
    found = re.search(r'data-document-width="(\d+)"', dom.stdout)
    assert found, f"the probe did not run: {dom.stderr[-500:]}"
    return int(found.group(1))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("width", [NARROW, WIDE])
def test_rendered_pages_are_no_wider_than_the_window(
    report: str, pages: dict[str, str], width: int, tmp_path: Path
) -> None:
    rendered = {"detailed_results": report} | {name: _FRAGMENT.format(page) for name, page in pages.items()}
    for name, page in rendered.items():
        assert _document_width(page, width, tmp_path, name) <= width, f"{name} overflows at {width} px"
