"""The detailed results page: self-contained, escaped, and showing the numbers it is given."""

from __future__ import annotations

import base64
import io
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import EVAL_NAMES, EVIL_NOTE, NAN, make_instance, make_pixel
from PIL import Image

from cityscapes_competition.core.labels import EVAL_CLASS_IDS, LABEL_NAMES
from cityscapes_competition.scoring.report_charts import _paired_bar_chart, axis_top, row_normalized_confusion
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
    """Collects tags, image sources and the visible text; fails on obviously broken nesting."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
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


def _decode_png(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :], validate=True)))
    image.load()
    assert image.format == "PNG"
    return image


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


def test_embedded_pictures_are_valid_pngs(full_page: str) -> None:
    images = parse(full_page).images
    assert len(images) == 4  # per-class bars, confusion matrix, AP bars, AP by overlap
    for uri in images:
        image = _decode_png(uri)
        assert 200 < image.width < 1500 and 100 < image.height < 1500


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
    assert len(parsed.images) == 2


def test_nothing_submitted() -> None:
    page = render_detailed_results(Scores(None, None))
    parsed = parse(page)
    assert " ".join(parsed.text).count(NOT_SUBMITTED) >= 2
    assert parsed.images == []
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
    for uri in parsed.images:
        _decode_png(uri)
    assert "n/a" in " ".join(parsed.text)


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


def test_matplotlib_is_imported_only_to_draw_charts() -> None:
    code = (
        "import sys\n"
        "from cityscapes_competition.scoring import report_charts, report_html, score_files\n"
        "report_html.render_in_progress(); report_html.render_failure('x')\n"
        "assert not [m for m in sys.modules if m.startswith('matplotlib')]\n"
        "report_charts.prefetch_chart_library(); report_charts.load_chart_library()\n"
        "assert 'matplotlib.figure' in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
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


def test_bar_chart_axis_is_scaled_to_a_low_baseline() -> None:
    figure = _paired_bar_chart(["car", "bus"], np.array([0.02, 0.01]), np.array([0.03, NAN]), ("AP", "AP50%"), "%")
    axes = figure.axes[0]
    assert axes.get_xlim() == pytest.approx((0.0, 5.0 * 1.09))
    assert list(axes.get_xticks()) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])


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
    assert text.count(f"no GT, {false_positives} FP px") == 2  # IoU and iIoU
    assert "counts in the mean" in text
