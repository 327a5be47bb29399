"""The detailed results page: self-contained, escaped, and showing the numbers it is given."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import EVAL_NAMES, EVIL_NOTE, NAN, make_instance, make_pixel

from cityscapes_competition.core.labels import EVAL_CLASS_IDS, INSTANCE_CLASS_NAMES, LABEL_NAMES
from cityscapes_competition.scoring.report_charts import (
    BLUES,
    Bar,
    BarRow,
    ap_overlap_table,
    axis_top,
    blues,
    confusion_position,
    confusion_table,
    hex_color,
    paired_bars,
    row_normalized_confusion,
)
from cityscapes_competition.scoring.report_html import (
    NOT_SUBMITTED,
    format_fraction,
    format_percent,
    predicted_without_ground_truth,
    render_detailed_results,
)
from cityscapes_competition.scoring.scores import Scores

EVIL_WARNING = 'bad<file>.png: size mismatch <script>alert("x")</script> & more'


class _Collector(HTMLParser):
    """Collects tags, image sources, table classes and the visible text; fails on obviously broken nesting."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.tables: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag == "table":
            self.tables.append(dict(attrs).get("class") or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.stack or self.stack[-1] not in ("style", "title"):
            self.text.append(data)


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    assert collector.stack == []
    return collector


def charts(parsed: _Collector) -> list[str]:
    """The page's charts, as the classes of their tables."""
    return [name for name in parsed.tables if name.startswith(("bars", "heat"))]


@pytest.fixture(scope="module")
def full_page() -> str:
    scores = Scores(make_pixel(), make_instance(), [EVIL_WARNING, "second warning"], image_count=500)
    return render_detailed_results(scores, title="Val <run> & co")


def test_page_parses_and_is_self_contained(full_page: str) -> None:
    parsed = parse(full_page)
    assert full_page.startswith("<!DOCTYPE html>")
    assert "script" not in parsed.tags
    assert "link" not in parsed.tags
    assert "http://" not in full_page and "https://" not in full_page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", full_page)
    assert len(full_page) < 1_000_000


def test_the_charts_are_drawn_by_the_page(full_page: str) -> None:
    parsed = parse(full_page)
    assert parsed.images == [] and "data:image" not in full_page
    # IoU and iIoU bars, the confusion matrix, AP bars, AP by overlap
    assert charts(parsed) == ["bars", "heat confusion", "bars", "heat overlap"]
    lanes = len(EVAL_NAMES) + len(INSTANCE_CLASS_NAMES) + 2 * len(INSTANCE_CLASS_NAMES)
    assert full_page.count('<div class="lane ') == lanes  # IoU, and iIoU for the instance classes; AP and AP50%


def test_leaderboard_numbers(full_page: str) -> None:
    text = " ".join(parse(full_page).text)
    for value in ("73.22", "51.23", "88.21", "31.23", "57.89"):
        assert value in text
    # iIoU category is NaN: shown as n/a with the reason as a tooltip.
    assert "n/a" in text
    assert "no ground truth" in full_page


def test_per_class_numbers(full_page: str) -> None:
    text = " ".join(parse(full_page).text)
    for name in EVAL_NAMES:
        assert name in text
    assert "52.0" in text  # sidewalk IoU
    assert "40.0" in text  # person iIoU
    assert "98.1" in text  # flat
    assert "77.8" in text  # vehicle iIoU
    assert "55.0" in text and "99.0" in text  # car AP and AP50%


def test_warnings_and_data_are_escaped(full_page: str) -> None:
    assert "<script>" not in full_page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in full_page
    assert "bad&lt;file&gt;.png" in full_page
    assert "<img src=x" not in full_page
    assert "&lt;img src=x onerror=alert(1)&gt;" in full_page
    assert "Val &lt;run&gt; &amp; co" in full_page
    text = " ".join(parse(full_page).text)
    assert EVIL_WARNING in text
    assert "3 warnings" in text and "is undefined (the test images hold no ground truth" in text  # 2 + a NaN column


def test_missing_distance_metrics_show_the_reason(full_page: str) -> None:
    text = " ".join(parse(full_page).text)
    assert "AP100m" in text and "AP50m" in text
    assert EVIL_NOTE in text


def test_distance_metrics_when_present() -> None:
    page = render_detailed_results(Scores(None, make_instance(distances=True), [], 3))
    text = " ".join(parse(page).text)
    assert "40.12" in text and "43.21" in text
    assert "66.0" in text  # car AP100m = 0.55 * 1.2


def test_absent_task_is_not_submitted() -> None:
    page = render_detailed_results(Scores(make_pixel(), None, [], 10))
    parsed = parse(page)
    text = " ".join(parsed.text)
    assert NOT_SUBMITTED in text
    assert "73.22" in text
    assert charts(parsed) == ["bars", "heat confusion"]


def test_nothing_submitted() -> None:
    page = render_detailed_results(Scores(None, None))
    parsed = parse(page)
    assert " ".join(parsed.text).count(NOT_SUBMITTED) >= 2
    assert charts(parsed) == []
    assert "warning" not in " ".join(parsed.text).lower()


def test_degenerate_inputs_do_not_break_the_page() -> None:
    pixel = make_pixel()
    pixel.confusion_matrix = np.zeros((34, 34))
    pixel.class_iou = dict.fromkeys(EVAL_NAMES, NAN)
    instance = make_instance()
    instance.ap_matrix = np.zeros((0,))
    instance.ap = NAN
    page = render_detailed_results(Scores(pixel, instance))
    parsed = parse(page)
    text = " ".join(parsed.text)
    assert "n/a" in text
    assert charts(parsed) == ["bars", "heat confusion", "bars"]  # no AP by overlap without its matrix
    assert _between(page, '<table class="heat confusion">', "</table>").count(">no ground truth<") == len(EVAL_NAMES)
    bars = _between(page, "IoU and iIoU per class</h3>", "</table>")
    assert bars.count('class="na"') == len(EVAL_NAMES) + 1  # every IoU, and train's iIoU: no bar, "n/a"
    assert bars.count('<div class="bar"') == len(INSTANCE_CLASS_NAMES) - 1  # the defined iIoUs


def _between(page: str, start: str, end: str) -> str:
    """The part of ``page`` from ``start`` to the next ``end``."""
    part = page[page.index(start) :]
    return part[: part.index(end) + len(end)]


def test_row_normalized_confusion() -> None:
    conf = np.zeros((34, 34), dtype=np.uint64)
    road, sidewalk = EVAL_CLASS_IDS[0], EVAL_CLASS_IDS[1]
    conf[road, road] = 80
    conf[road, sidewalk] = 10
    conf[road, 0] = 10  # predicted as "unlabeled"
    conf[sidewalk, sidewalk] = 100
    matrix, ignored, prior = row_normalized_confusion(conf)
    assert matrix.shape == (19, 19)
    assert matrix[0, 0] == pytest.approx(0.8)
    assert matrix[0, 1] == pytest.approx(0.1)
    assert ignored[0] == pytest.approx(0.1)
    assert ignored[1] == pytest.approx(0.0)
    assert prior[0] == pytest.approx(0.5)
    assert np.isnan(matrix[2]).all() and math.isnan(ignored[2])


@pytest.mark.parametrize(("value", "expected"), [(0.73216, "73.22"), (1.0, "100.00"), (NAN, "n/a"), (None, "n/a")])
def test_format_percent(value: float | None, expected: str) -> None:
    assert format_percent(value) == expected


def test_the_page_is_rendered_without_matplotlib() -> None:
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from helpers import make_instance, make_pixel\n"
        "from cityscapes_competition.scoring import report_html, score_files\n"
        "from cityscapes_competition.scoring.scores import Scores\n"
        "report_html.render_detailed_results(Scores(make_pixel(), make_instance(), [], 3))\n"
        "assert not [m for m in sys.modules if m.startswith('matplotlib')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_leaderboard_numbers_are_shown_as_percentages_and_as_the_fractions_the_leaderboard_holds(
    full_page: str,
) -> None:
    text = " ".join(parse(full_page).text)
    assert "fractions in [0, 1]" in text
    for fraction in (0.73216, 0.51234, 0.8821, 0.3123, 0.5789):
        assert f"{100 * fraction:.2f}" in text  # the card and the mean row
        assert f"leaderboard: {fraction:.4f}" in text  # the card
        assert f"({fraction:.4f})" in text  # the mean row


@pytest.mark.parametrize(("value", "expected"), [(0.73216, "0.7322"), (1.0, "1.0000"), (NAN, "n/a"), (None, "n/a")])
def test_format_fraction(value: float | None, expected: str) -> None:
    assert format_fraction(value) == expected


def test_table_headers_carry_their_unit(full_page: str) -> None:
    text = " ".join(parse(full_page).text)
    assert "GT share (%)" in text and "share of all ground-truth pixels of the evaluated images, in %" in full_page
    assert "IoU (%)" in text and "AP50% (%)" in text


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([2.0, 1.5], 5.0),  # a 2 % baseline: 0..5 %, not a flat line under 0..100
        ([4.5], 5.0),  # 4.5 * 1.1 = 4.95
        ([4.6], 10.0),  # 4.6 * 1.1 = 5.06
        ([18.0, NAN], 20.0),  # 18 * 1.1 = 19.8
        ([40.0], 50.0),
        ([46.0], 100.0),  # 46 * 1.1 = 50.6
        ([100.0], 100.0),  # never above 100
        ([NAN], 5.0),
        ([], 5.0),
    ],
)
def test_axis_top_fits_the_data(values: list[float], expected: float) -> None:
    assert axis_top(np.array(values)) == expected


def _widths(html: str) -> list[float]:
    return [float(width) for width in re.findall(r'class="bar" style="width:([\d.]+)%', html)]


def test_bar_axis_is_scaled_to_a_low_baseline() -> None:
    rows = [BarRow("car", Bar(0.02), Bar(0.03)), BarRow("bus", Bar(0.01), Bar(NAN))]
    html = paired_bars(rows, ("AP", "AP50%"), "%")
    ticks = re.findall(r'<span style="left:([\d.]+)%">([\d.]+)</span>', _between(html, '<div class="axis">', "</div>"))
    assert ticks == [("0", "0"), ("20", "1"), ("40", "2"), ("60", "3"), ("80", "4"), ("100", "5")]
    assert _widths(html) == pytest.approx([40.0, 60.0, 20.0])  # 2, 3 and 1 % of a 0-5 % axis
    assert "axis 0&ndash;5" in html
    assert html.count("n/a") == 1 and ">2.0<" in html and ">3.0<" in html  # NaN: marked, no bar


def test_bars_on_a_full_axis_and_a_class_with_one_score() -> None:
    rows = [BarRow("road", Bar(0.9), None), BarRow("car", Bar(1.0), Bar(0.5))]
    html = paired_bars(rows, ("IoU", "iIoU"), "score (%)")
    assert _widths(html) == pytest.approx([90.0, 100.0, 50.0])
    assert html.count('class="lane single"') == 1 and html.count('class="lane second"') == 1
    assert ">100</span>" in html  # the last tick


def test_bar_names_are_escaped() -> None:
    html = paired_bars([BarRow("<b>x</b>", Bar(0.5), None)], ("a<", "b&"), "c>")
    assert "<b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html and "a&lt;" in html and "b&amp;" in html


def test_the_colour_scale_is_matplotlibs_blues() -> None:
    from matplotlib import colormaps

    reference = colormaps["Blues"]
    for position in np.linspace(0.0, 1.0, 41):
        expected = np.round(np.array(reference(position)[:3]) * 255)
        assert np.abs(np.array(blues(position)) - expected).max() <= 3, position
    assert blues(-1.0) == BLUES[0] and blues(2.0) == BLUES[-1]


def test_the_confusion_scale_emphasizes_small_shares_as_the_heatmaps_power_norm() -> None:
    from matplotlib.colors import PowerNorm

    norm = PowerNorm(0.5, vmin=0, vmax=100)
    for share in (0.0, 0.004, 0.01, 0.05, 0.25, 0.5, 1.0):
        assert confusion_position(share) == pytest.approx(float(norm(100 * share)))
    assert confusion_position(0.01) == pytest.approx(0.1)  # 1 % is a tenth of the way, not a hundredth


def _cells(html: str) -> list[tuple[str, str, str]]:
    """(class attribute, style, text) of every data cell."""
    return re.findall(r'<td((?: class="[^"]*")?)((?: style="[^"]*")?)[^>]*>([^<]*)</td>', html)


def test_the_confusion_matrix_table() -> None:
    matrix = np.full((19, 19), 0.0)
    matrix[0, 0], matrix[0, 1], matrix[0, 2], matrix[0, 3] = 0.9, 0.06, 0.004, 0.005
    matrix[1, 1] = 0.3
    matrix[2] = np.nan
    html = confusion_table(matrix)
    assert html.startswith('<div class="table-wrap"><table class="heat confusion">')
    assert re.findall(r'<th class="col"[^>]*><span>([^<]+)</span>', html) == EVAL_NAMES
    assert re.findall(r'<th class="row">.*?</span>([^<]+)</th>', html) == EVAL_NAMES
    cells = _cells(html)
    first = [text for _, _, text in cells[:4]]
    assert first == ["90", "6", "", "0"]  # blank under 0.5 %; 0.5 % itself rounds to 0, as the heatmap's labels
    assert cells[0][0] == ' class="dark"' and cells[19 + 1][0] == ""  # white text on 90 %, not on 30 %
    assert cells[1][1] == f' style="background:{hex_color(blues(math.sqrt(0.06)))}"'
    assert '<td class="no-gt" colspan="19">no ground truth</td>' in html  # the row without ground truth
    assert len(cells) == 18 * 19 + 1
    assert 'title="road predicted as sidewalk: 6.00 %"' in html
    assert "0</span>" in html and "100</span>" in html and "row&#x27;s ground-truth pixels" in html  # the scale


def test_ap_by_overlap_table() -> None:
    per_class = np.array([[0.5 - 0.04 * k for k in range(10)] for _ in INSTANCE_CLASS_NAMES])
    per_class[2] = np.nan  # no ground truth
    per_class[3, 4] = np.nan
    html = ap_overlap_table(np.stack([per_class, per_class * 0]))
    assert html is not None
    heads = re.findall(r"<th>([\d.]+)</th>", html)
    assert heads == ["0.50", "0.55", "0.60", "0.65", "0.70", "0.75", "0.80", "0.85", "0.90", "0.95"]
    cells = _cells(html)
    assert cells[0][2] == "50.0" and cells[9][2] == "14.0"
    assert '<td class="no-gt" colspan="10">no ground truth</td>' in html
    missing = cells[2 * 10 + 1 + 4]  # after two rows and the one cell of the row without ground truth
    assert missing[0] == ' class="na"' and missing[2] == "&ndash;"  # a dash, not 0
    mean = _between(html, '<tr class="mean">', "</tr>")
    assert _cells(mean)[0][2] == "50.0" and _cells(mean)[4][2] == "34.0"  # NaN left out of the means
    # the scale fits the data: 0-100 % for 50 %, and 0-5 % for a 2 % baseline
    assert re.findall(r">(\d+)</span>", _between(html, '<div class="ticks">', "</div>"))[-1] == "100"
    low = ap_overlap_table(np.full((1, 8, 10), 0.02))
    assert low is not None and re.findall(r">(\d+)</span>", _between(low, '<div class="ticks">', "</div>"))[-1] == "5"
    assert _cells(low)[0][1] == f' style="background:{hex_color(blues(0.4))}"'


@pytest.mark.parametrize("matrix", [np.zeros((0,)), np.zeros((8, 10)), np.zeros((1, 0, 10))])
def test_no_ap_by_overlap_table_without_a_matrix(matrix: np.ndarray) -> None:
    assert ap_overlap_table(matrix) is None


def _absent_but_predicted() -> tuple[np.ndarray, int, int]:
    """A confusion matrix where "train" has no ground truth but is predicted on road and on void."""
    conf = np.zeros((34, 34), dtype=np.uint64)
    road, train, unlabeled = (LABEL_NAMES.index(name) for name in ("road", "train", "unlabeled"))
    for label_id in EVAL_CLASS_IDS:
        conf[label_id, label_id] = 1000
    conf[train, train] = 0
    conf[road, train] = 7  # false positives
    conf[unlabeled, train] = 5  # on an ignored label: not a false positive, officially
    return conf, train, 7


def test_predicted_without_ground_truth_counts_false_positives_as_officially() -> None:
    conf, _, false_positives = _absent_but_predicted()
    assert predicted_without_ground_truth(conf) == {"train": false_positives}
    conf[LABEL_NAMES.index("road"), LABEL_NAMES.index("train")] = 0  # only on void: NaN officially, not listed
    assert predicted_without_ground_truth(conf) == {}


def test_a_class_without_ground_truth_but_predicted_says_why_it_scores_0() -> None:
    pixel = make_pixel()
    pixel.confusion_matrix, _, false_positives = _absent_but_predicted()
    pixel.class_iou["train"] = 0.0  # the official IoU: tp / (tp + fp + fn) = 0 / (0 + 7 + 0)
    pixel.class_iiou["train"] = 0.0
    text = " ".join(parse(render_detailed_results(Scores(pixel, None))).text)
    assert text.count(f"no GT, {false_positives} FP px") == 4  # IoU and iIoU, in the table and the bars
    assert "counts in the mean" in text
