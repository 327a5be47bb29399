"""The competition's web pages: complete, filled from the settings, escaped, well-formed; and the logo."""

from __future__ import annotations

import datetime as dt
import html
import importlib.util
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from cityscapes_competition.core.challenge import (
    ChallengeSettings,
    FactSheetQuestion,
    LeaderboardColumn,
    Phase,
    load_challenge,
)
from cityscapes_competition.ingestion.submission_metadata import read_settings
from cityscapes_competition.organiser import competition_pages as pages
from cityscapes_competition.organiser.platforms import CODABENCH_PLATFORM as CODABENCH
from cityscapes_competition.organiser.platforms import CODALAB_PLATFORM as CODALAB
from cityscapes_competition.scoring.scores import LEADERBOARD_KEYS

REPO = Path(__file__).resolve().parents[1]
MOSCOW = ZoneInfo("Europe/Moscow")
VOID_ELEMENTS = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "base", "source"}


@pytest.fixture(scope="module")
def settings() -> ChallengeSettings:
    """The real settings with a known schedule, so that the expected times can be written down."""
    phases = (
        Phase(1, "Phase 1", "Development.", dt.datetime(2019, 2, 11, tzinfo=MOSCOW), _moscow(2019, 3, 14, 23, 59)),
        Phase(2, "Phase 2", "Final.", dt.datetime(2019, 3, 15, tzinfo=MOSCOW), _moscow(2019, 4, 9, 23, 59)),
    )
    return replace(load_challenge(), time_zone=MOSCOW, phases=phases)


def _moscow(*fields: int) -> dt.datetime:
    return dt.datetime(*fields, tzinfo=MOSCOW)


class _TagBalance(HTMLParser):
    """Records mismatched or unclosed tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _tag_problems(fragment: str) -> list[str]:
    parser = _TagBalance()
    parser.feed(fragment)
    parser.close()
    return parser.problems + [f"<{tag}> never closed" for tag in parser.stack]


@pytest.mark.parametrize("platform", [CODALAB, CODABENCH])
def test_every_page_renders_as_a_fragment(settings: ChallengeSettings, platform: str) -> None:
    rendered = pages.render_pages(settings, platform)
    assert tuple(rendered) == pages.PAGE_NAMES
    assert {"overview", "evaluation", "terms", "data"} <= set(rendered)  # required by CodaLab's parser
    for name, fragment in rendered.items():
        assert len(fragment) > 2000, name
        assert "<h2>" in fragment, name
        assert not re.search(r"<(html|body|head)\b", fragment), name


@pytest.mark.parametrize("platform", [CODALAB, CODABENCH])
def test_pages_are_well_formed_and_have_no_placeholders_left(settings: ChallengeSettings, platform: str) -> None:
    with_everything = replace(settings, contact_email="org@example.org")
    for name, fragment in pages.render_pages(with_everything, platform).items():
        assert _tag_problems(fragment) == [], name
        assert not re.search(r"\$\{?[A-Za-z_]", fragment), name


def test_deadlines_appear_in_local_time_and_utc(settings: ChallengeSettings) -> None:
    rendered = pages.render_pages(settings, CODALAB)
    for name in ("overview", "terms"):
        assert "2019-03-14 23:59:00 Europe/Moscow (UTC+03:00)" in rendered[name]
        assert "2019-03-14 20:59:00 UTC" in rendered[name]
        assert "2019-04-09 20:59:00 UTC" in rendered[name]
        assert "2019-03-14 21:00:00 UTC" in rendered[name]  # phase 2 opens
    assert "The last accepted second is 23:58:59 Europe/Moscow time" in rendered["terms"]
    assert "a new day starts at 00:00:00 Europe/Moscow time (UTC+03:00), that is at 21:00:00 UTC" in rendered["terms"]


def test_limits_and_time_limit_come_from_the_settings(settings: ChallengeSettings) -> None:
    terms = pages.render_pages(settings, CODALAB)["terms"]
    assert f"{settings.max_submissions_per_day} submissions per day" in terms
    assert f"{settings.max_submissions} submissions in total" in terms
    assert f"{settings.execution_time_limit} seconds" in terms
    changed = replace(settings, max_submissions_per_day=7, max_submissions=33, execution_time_limit=5400)
    terms = pages.render_pages(changed, CODALAB)["terms"]
    assert "7 submissions per day" in terms
    assert "33 submissions in total" in terms
    assert "5400 seconds (1 hour 30 minutes)" in terms
    assert "10.8&nbsp;s per image" in terms


def test_changing_a_deadline_changes_the_pages(settings: ChallengeSettings) -> None:
    later = replace(settings.phases[1], deadline=_moscow(2019, 5, 1, 12, 0))
    changed = replace(settings, phases=(settings.phases[0], later))
    before, after = pages.render_pages(settings, CODALAB), pages.render_pages(changed, CODALAB)
    for name in ("overview", "terms"):
        assert before[name] != after[name]
        assert "2019-05-01 12:00:00 Europe/Moscow (UTC+03:00)" in after[name]
        assert "2019-05-01 09:00:00 UTC" in after[name]
        assert "2019-04-09 23:59:00" not in after[name]


def test_title_description_and_zone_come_from_the_settings(settings: ChallengeSettings) -> None:
    changed = replace(settings, title="Street scenes 2030", description="A new edition.", time_zone=ZoneInfo("UTC"))
    rendered = pages.render_pages(changed, CODALAB)
    assert "<h2>Street scenes 2030</h2>" in rendered["overview"]
    assert "A new edition." in rendered["overview"]
    assert "2019-03-14 20:59:00 UTC (UTC+00:00)" in rendered["terms"]


def test_leaderboard_columns_come_from_the_settings(settings: ChallengeSettings) -> None:
    evaluation = pages.render_pages(settings, CODALAB)["evaluation"]
    for column in settings.columns:
        assert f"<td>{html.escape(column.label)}</td><td><code>{column.key}</code></td>" in evaluation
    assert f"ranked by the first one,\n<strong>{html.escape(settings.columns[0].label)}</strong>" in evaluation
    reordered = (LeaderboardColumn("ap", "Mask AP", "instance"), *settings.columns[:4])
    rendered = pages.render_pages(replace(settings, columns=reordered, leaderboard_title="Board"), CODALAB)
    assert "It is ranked by\n<strong>Mask AP</strong>" in rendered["overview"]
    assert "<strong>Mask AP</strong> (<code>ap</code>)" in rendered["evaluation"]
    assert "<td>1 (ranks)</td><td>Mask AP</td>" in rendered["evaluation"]
    assert "AP 100m" not in rendered["overview"]
    assert "<em>Board</em>" in rendered["evaluation"]


def test_values_are_escaped(settings: ChallengeSettings) -> None:
    hostile = replace(
        settings,
        title="<script>alert(1)</script> & co",
        columns=(LeaderboardColumn("iou_class", "IoU <b>class</b>", "pixel"),),
        phases=(replace(settings.phases[0], name="Phase <1>", description="a & b"),),
    )
    rendered = pages.render_pages(replace(hostile, contact_email='a"b@example.org'), CODABENCH)
    rendered |= {f"codalab {name}": page for name, page in pages.render_pages(hostile, CODALAB).items()}
    joined = "".join(rendered.values())
    assert "<script>" not in joined and "<b>class" not in joined and "Phase <1>" not in joined
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in rendered["overview"]
    assert "Phase &lt;1&gt;" in rendered["terms"]
    assert 'href="mailto:a&quot;b@example.org"' in rendered["overview"]
    for name, fragment in rendered.items():
        assert _tag_problems(fragment) == [], name


def test_every_score_has_a_meaning() -> None:
    assert set(pages.COLUMN_MEANINGS) == set(LEADERBOARD_KEYS)


def test_data_page_lists_the_19_classes(settings: ChallengeSettings) -> None:
    data = pages.render_pages(settings, CODALAB)["data"]
    table = data[data.index("<th>trainId</th>") :]
    assert table.count("<tr><td>") == 19
    assert "<tr><td>0</td><td>7</td><td>road</td><td>flat</td><td>no</td>" in table
    assert "<tr><td>18</td><td>33</td><td>bicycle</td><td>vehicle</td><td>yes</td>" in table


def test_metadata_examples_pass_the_servers_validation(tmp_path: Path, settings: ChallengeSettings) -> None:
    short = replace(settings, execution_time_limit=600)
    examples = [pages.metadata_example(replace(settings, execution_time_limit=3600)), pages.metadata_example(short)]
    for name in ("data", "get_starting_kit"):
        shown = re.search(r"<pre><code>(description:.*?)</code></pre>", pages.render_pages(short, CODALAB)[name], re.S)
        assert shown is not None and html.unescape(shown.group(1)) == examples[1]
    readme = (REPO / "starting_kit" / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert blocks, "the starting kit's README shows a metadata example"
    for index, text in enumerate(examples + blocks):
        path = tmp_path / f"metadata_{index}"
        path.write_text(text, encoding="utf-8")
        parsed = read_settings(path)
        assert parsed.input_size == (512, 1024) and parsed.batch_size == 4
    assert [read_settings(tmp_path / f"metadata_{i}").time_budget_seconds for i in (0, 1)] == [3000.0, 500.0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3600, "3600 seconds (1 hour)"),
        (5400, "5400 seconds (1 hour 30 minutes)"),
        (600, "600 seconds (10 minutes)"),
        (7261, "7261 seconds (2 hours 1 minute 1 second)"),
        (45, "45 seconds"),
    ],
)
def test_duration_text(seconds: int, text: str) -> None:
    assert pages.duration_text(seconds) == text


def test_day_boundary_mentions_a_changing_utc_offset(settings: ChallengeSettings) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    phase = Phase(1, "P", "", dt.datetime(2024, 3, 1, tzinfo=berlin), dt.datetime(2024, 4, 30, tzinfo=berlin))
    text = pages.day_boundary_text(replace(settings, time_zone=berlin, phases=(phase,)))
    assert "UTC+01:00, UTC+02:00" in text
    phase = Phase(1, "P", "", dt.datetime(2024, 6, 1, tzinfo=berlin), dt.datetime(2024, 7, 1, tzinfo=berlin))
    text = pages.day_boundary_text(replace(settings, time_zone=berlin, phases=(phase,)))
    assert text == "at 00:00:00 Europe/Berlin time (UTC+02:00), that is at 22:00:00 UTC"


def test_logo_is_a_300x200_picture() -> None:
    with Image.open(pages.LOGO_PATH) as logo:
        assert logo.format == "PNG" and logo.size == (300, 200)
        colours = logo.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 20  # a picture, not a flat placeholder


def test_logo_script_draws_the_logo() -> None:
    spec = importlib.util.spec_from_file_location("make_logo", REPO / "tools" / "make_logo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    drawn = module.draw_logo()
    assert drawn.size == (300, 200) and drawn.mode == "RGB"


# ------------------------------------------------------------------------------------------------ platforms


def test_codabench_pages_mention_no_codalab_feature(settings: ChallengeSettings) -> None:
    # Neither platform's source has a GitHub submission (codabench: src/static/riot/competitions/detail/
    # submission_upload.tag uploads a file; codalab-competitions: _submit_results_page.html likewise), so both
    # pages tell how to upload a repository's archive; Codabench's name nothing of CodaLab's.
    codabench = "".join(pages.render_pages(settings, CODABENCH).values())
    codalab = "".join(pages.render_pages(settings, CODALAB).values())
    assert "CodaLab" not in codabench and "Participate" not in codabench and "download it as a URL" not in codabench
    assert "<em>My Submissions</em>" in codabench and "<em>Get Started</em>, then <em>Files</em>" in codabench
    assert "<em>Participate</em>, then <em>Files</em>" in codalab and "Submit / View Results" in codalab
    for joined in (codabench, codalab):
        assert "GitHub submission" not in joined and "using GitHub" not in joined
        assert "<em>Download ZIP</em>" in joined and "one\nwrapper folder, which is accepted" in joined


def test_the_starting_kit_page_is_named_by_its_title(settings: ChallengeSettings) -> None:
    for platform in (CODALAB, CODABENCH):
        overview = pages.render_pages(settings, platform)["overview"]
        assert "(see <em>Starting kit</em>)" in overview and "Get the starting kit</em>" not in overview


def test_migration_is_explained_as_each_platform_does_it(settings: ChallengeSettings) -> None:
    codabench = pages.render_pages(settings, CODABENCH)["terms"]
    codalab = pages.render_pages(settings, CODALAB)["terms"]
    assert "When a phase after the first opens, Codabench runs your" in codabench
    assert "While a phase runs, CodaLab runs each of your submissions" in codalab
    assert "its own limit of 200 submissions" in codalab
    off = replace(settings, migrate_to_next_phase=False)
    for platform in (CODALAB, CODABENCH):
        assert "Phase migration" not in pages.render_pages(off, platform)["terms"]


def test_the_fact_sheet_questions_are_listed_on_codabench_only(settings: ChallengeSettings) -> None:
    questions = (
        FactSheetQuestion("model_description", "Model & data", "text", (), True, False),
        FactSheetQuestion("external_data", "Extra data", "checkbox", (), False, True),
    )
    asked = replace(settings, fact_sheet=questions)
    data = pages.render_pages(asked, CODABENCH)["data"]
    assert "<li>Model &amp; data (required)</li>" in data and "<li>Extra data</li>" in data
    assert "Codabench asks" not in pages.render_pages(asked, CODALAB)["data"]
    assert "Codabench asks" not in pages.render_pages(replace(asked, fact_sheet=()), CODABENCH)["data"]


def test_the_contact_address_is_on_the_overview_when_set(settings: ChallengeSettings) -> None:
    assert "<h3>Contact</h3>" not in pages.render_pages(replace(settings, contact_email=None), CODALAB)["overview"]
    for platform in (CODALAB, CODABENCH):
        overview = pages.render_pages(replace(settings, contact_email="org@example.org"), platform)["overview"]
        assert '<a href="mailto:org@example.org">org@example.org</a>' in overview


def test_an_unknown_platform_is_refused(settings: ChallengeSettings) -> None:
    with pytest.raises(ValueError, match="unknown platform"):
        pages.render_pages(settings, "Kaggle")
