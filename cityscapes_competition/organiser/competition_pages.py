"""The competition's web pages, rendered from the settings in challenge.yaml, for one platform.

``render_pages(settings, platform)`` returns the HTML fragments CodaLab v1.5 or Codabench shows inside
its own page: ``overview``, ``evaluation``, ``terms``, ``data`` (the four CodaLab's bundle parser
requires) and ``get_starting_kit``. The text lives in ``page_templates/<name>.html`` as
``string.Template`` files. Every value the settings hold (title, dates, limits, time limit,
leaderboard columns, contact, fact sheet) is filled in from the settings, HTML-escaped, so changing
challenge.yaml changes the pages. What differs between the platforms (where the files and the submit
form are, how each migrates submissions between phases, Codabench's fact sheet) comes from
``PLATFORM_PLACES`` and the functions below; neither platform's source has a GitHub submission, so the
pages tell how to upload a repository's archive instead. The logo, ``logo.png``, is drawn by
``tools/make_logo.py``.
"""

from __future__ import annotations

import datetime as dt
import html
import string
from pathlib import Path

from cityscapesscripts.helpers.labels import id2label

from ..core.challenge import ChallengeSettings, FactSheetQuestion, LeaderboardColumn, Phase
from ..core.labels import EVAL_CLASS_IDS
from .platforms import CODABENCH_PLATFORM, CODALAB_PLATFORM, STARTING_KIT_TITLE

PAGE_NAMES = ("overview", "evaluation", "terms", "data", "get_starting_kit")
TEMPLATE_DIR = Path(__file__).with_name("page_templates")
LOGO_PATH = Path(__file__).with_name("logo.png")
TEST_IMAGES = 500  # the Cityscapes val split, the competition's test set

# The example `metadata` of the pages (its time budget follows the time limit); tests check that it
# passes the server's validation.
METADATA_EXAMPLE = """\
description: My model, trained on Cityscapes train at 512x1024.
inference:
  input_size: [512, 1024]   # [height, width] the images are resized to
  output: trainIds          # trainIds (19 scores, default) or labelIds (34 scores)
  scores: auto              # probabilities | logits | auto (default: detected from the first batch)
  batch_size: 4             # 1..64, default 1
  time_budget_seconds: {budget} # optional: stop early, with the time per image, if the run would take longer
  instances:
    mode: components        # components (default) or none (pixel-level task only)
    min_area: 100           # pixels at 1024x2048, default 100
    max_per_image: 255      # 1..255, default 255
"""

COLUMN_MEANINGS = {
    "iou_class": "IoU averaged over the 19 classes",
    "iiou_class": "iIoU averaged over the 8 instance classes",
    "iou_category": "IoU averaged over the 7 categories",
    "iiou_category": "iIoU averaged over the categories human and vehicle",
    "ap": "AP averaged over the 10 overlaps 0.50:0.05:0.95, then over the 8 instance classes",
    "ap50": "AP at overlap 0.5, averaged over the 8 instance classes",
    "ap100m": "AP restricted to objects within 100 m",
    "ap50m": "AP restricted to objects within 50 m",
}
TASK_NAMES = {"pixel": "pixel-level", "instance": "instance-level"}
PLATFORMS = (CODALAB_PLATFORM, CODABENCH_PLATFORM)
# Where each platform puts the files and the submission form (codalab-competitions CompetitionDefBundle.unpack:
# the Participate tab's "Files" and "Submit / View Results"; codabench competitions/detail/_tabs.tag: "Get
# Started" with its "Files" table, "My Submissions").
# What a stray top-level metadata line does: CodaLab v1.5's worker (worker.py, get_bundle) downloads every
# top-level text value as a URL; Codabench's (compute_worker.py, _run_program_directory) reads only `command`.
PLATFORM_PLACES = {
    CODALAB_PLATFORM: {
        "files_place": "<em>Participate</em>, then <em>Files</em>",
        "submit_place": "the <em>Participate</em> tab, under <em>Submit / View Results</em>",
        "metadata_top_level_reason": "CodaLab's worker downloads every other top-level text value of a "
        "submission's <code>metadata</code> as a URL. A plain line such as <code>model: model.keras</code> "
        "therefore makes your submission fail on the platform.",
        "metadata_line_effect": "the platform would try to download it as a URL, and the submission would fail.",
    },
    CODABENCH_PLATFORM: {
        "files_place": "<em>Get Started</em>, then <em>Files</em>",
        "submit_place": "the <em>My Submissions</em> tab",
        "metadata_top_level_reason": "A plain line such as <code>model: model.keras</code> makes your submission "
        "fail, and Codabench's worker would run a top-level <code>command</code> as a program of its own.",
        "metadata_line_effect": "the server refuses it, and the submission would fail.",
    },
}
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def render_pages(settings: ChallengeSettings, platform: str) -> dict[str, str]:
    """Every page, by name, as an HTML fragment (no <html>/<body> wrapper), for CodaLab v1.5 or Codabench."""
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
    values = page_values(settings, platform)
    return {name: render_page(name, values) for name in PAGE_NAMES}


def render_page(name: str, values: dict[str, str]) -> str:
    """One template filled in; a placeholder without a value raises KeyError."""
    template = string.Template((TEMPLATE_DIR / f"{name}.html").read_text(encoding="utf-8"))
    return template.substitute(values)


def page_values(settings: ChallengeSettings, platform: str) -> dict[str, str]:
    """The templates' placeholders: escaped text values and HTML fragments built from escaped parts."""
    escaped = {key: html.escape(value) for key, value in text_values(settings).items()}
    return escaped | fragment_values(settings) | platform_values(settings, platform)


def text_values(settings: ChallengeSettings) -> dict[str, str]:
    """Plain-text values, not yet escaped."""
    limit = settings.execution_time_limit
    ranking = settings.columns[0]
    return {
        "title": settings.title,
        "description": settings.description,
        "time_zone": settings.time_zone.key,
        "leaderboard_title": settings.leaderboard_title,
        "max_per_day": str(settings.max_submissions_per_day),
        "max_total": str(settings.max_submissions),
        "time_limit_seconds": str(limit),
        "time_limit_text": duration_text(limit),
        "seconds_per_image": f"{limit / TEST_IMAGES:.1f}",
        "test_images": str(TEST_IMAGES),
        "ranking_label": ranking.label,
        "ranking_key": ranking.key,
        "day_boundary": day_boundary_text(settings),
        "metadata_example": metadata_example(settings),
        "starting_kit_title": STARTING_KIT_TITLE,
    }


def metadata_example(settings: ChallengeSettings) -> str:
    """The example ``metadata``, with a time budget of 5/6 of the time limit (3000 s of 3600 s)."""
    budget = max(1, settings.execution_time_limit * 5 // 6 // 10 * 10)
    return METADATA_EXAMPLE.format(budget=budget).rstrip("\n")


def fragment_values(settings: ChallengeSettings) -> dict[str, str]:
    """HTML fragments; every value inside them is escaped here."""
    return {
        "phase_rows": "\n".join(_phase_row(phase, settings) for phase in settings.phases),
        "deadline_items": "\n".join(_deadline_item(phase, settings) for phase in settings.phases),
        "column_rows": "\n".join(_column_row(rank, column) for rank, column in enumerate(settings.columns, 1)),
        "column_labels": ", ".join(f"<em>{html.escape(column.label)}</em>" for column in settings.columns),
        "class_rows": "\n".join(_class_row(label_id) for label_id in EVAL_CLASS_IDS),
    }


def platform_values(settings: ChallengeSettings, platform: str) -> dict[str, str]:
    """The HTML fragments that differ between the platforms."""
    return PLATFORM_PLACES[platform] | {
        "migration_item": migration_item(settings, platform),
        "fact_sheet_note": fact_sheet_note(settings.fact_sheet) if platform == CODABENCH_PLATFORM else "",
        "contact_note": contact_note(settings.contact_email),
    }


def migration_item(settings: ChallengeSettings, platform: str) -> str:
    """How the platform moves leaderboard submissions into the next phase (a list item), or nothing."""
    if not settings.migrate_to_next_phase or len(settings.phases) < 2:
        return ""
    if platform == CODABENCH_PLATFORM:
        # codabench competitions/models.py, Competition.apply_phase_migration, run once when the phase starts;
        # Phase.can_user_make_submissions counts every submission of the phase that did not fail
        text = (
            "<strong>Phase migration.</strong> When a phase after the first opens, Codabench runs your "
            "submission on the previous phase's leaderboard (your last one) again in the new phase, so that you "
            "start it on its leaderboard. Codabench counts that run as one of your submissions in the new phase."
        )
    else:
        # codalab-competitions models.py, Competition.check_future_phase_sumbmissions every 5 minutes while the
        # earlier phase is active; CompetitionSubmission.save counts every unfailed submission of the phase
        text = (
            "<strong>Phase migration.</strong> While a phase runs, CodaLab runs each of your submissions that "
            "reaches its leaderboard (your last one) again in the next phase, so that you start the next phase "
            "on its leaderboard. The competition's rules do not count these runs, but CodaLab counts them "
            f"towards its own limit of {settings.max_submissions} submissions in the next phase."
        )
    return f"  <li>{text}</li>"


def fact_sheet_note(questions: tuple[FactSheetQuestion, ...]) -> str:
    """Codabench's questions with every submission, or nothing."""
    if not questions:
        return ""
    items = "\n".join(
        f"  <li>{html.escape(question.title)}{' (required)' if question.required else ''}</li>"
        for question in questions
    )
    return f"<p>With each submission, Codabench asks you:</p>\n<ul>\n{items}\n</ul>"


def contact_note(email: str | None) -> str:
    if email is None:
        return ""
    address = html.escape(email)
    return f'<h3>Contact</h3>\n<p>Questions to the organisers: <a href="mailto:{address}">{address}</a>.</p>'


# ------------------------------------------------------------------------------------------- times


def local_text(moment: dt.datetime, settings: ChallengeSettings) -> str:
    """e.g. '2019-03-14 23:59:00 Europe/Moscow (UTC+03:00)'."""
    local = settings.local(moment)
    return f"{local.strftime(_TIME_FORMAT)} {settings.time_zone.key} ({utc_offset_text(local)})"


def utc_text(moment: dt.datetime) -> str:
    """e.g. '2019-03-14 20:59:00 UTC'."""
    return f"{moment.astimezone(dt.UTC).strftime(_TIME_FORMAT)} UTC"


def utc_offset_text(local: dt.datetime) -> str:
    offset = local.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def last_accepted_text(phase: Phase, settings: ChallengeSettings) -> str:
    """The last whole second at which a submission is still accepted, in local time."""
    return settings.local(phase.deadline - dt.timedelta(seconds=1)).strftime("%H:%M:%S")


def day_boundary_text(settings: ChallengeSettings) -> str:
    """When a submission day starts, in local time and UTC (or a note if the UTC offset changes)."""
    moments = [settings.local(m) for phase in settings.phases for m in (phase.start, phase.deadline)]
    offsets = sorted({utc_offset_text(moment) for moment in moments})
    zone = settings.time_zone.key
    if len(offsets) > 1:
        return f"at midnight {zone} time (the offset from UTC changes during the competition: {', '.join(offsets)})"
    first = moments[0]
    midnight = first.replace(hour=0, minute=0, second=0, microsecond=0)
    return f"at 00:00:00 {zone} time ({offsets[0]}), that is at {midnight.astimezone(dt.UTC):%H:%M:%S} UTC"


def duration_text(seconds: int) -> str:
    """e.g. '3600 seconds (1 hour)', '5400 seconds (1 hour 30 minutes)'."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second"))
    ]
    spoken = " ".join(part for part in parts if not part.startswith("0 "))
    return f"{seconds} seconds ({spoken})" if seconds >= 60 else f"{seconds} seconds"


# ------------------------------------------------------------------------------------------ pieces


def _phase_row(phase: Phase, settings: ChallengeSettings) -> str:
    cells = (
        html.escape(phase.name),
        f"{html.escape(local_text(phase.start, settings))}<br>{html.escape(utc_text(phase.start))}",
        f"{html.escape(local_text(phase.deadline, settings))}<br>{html.escape(utc_text(phase.deadline))}",
        html.escape(phase.description),
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _deadline_item(phase: Phase, settings: ChallengeSettings) -> str:
    start, deadline = phase.start, phase.deadline
    return (
        f"<li><strong>{html.escape(phase.name)}</strong> opens {html.escape(local_text(start, settings))}, that is "
        f"{html.escape(utc_text(start))}. Submissions must be made strictly before "
        f"<strong>{html.escape(local_text(deadline, settings))}</strong>, that is before "
        f"<strong>{html.escape(utc_text(deadline))}</strong>. The last accepted second is "
        f"{html.escape(last_accepted_text(phase, settings))} {html.escape(settings.time_zone.key)} time.</li>"
    )


def _column_row(rank: int, column: LeaderboardColumn) -> str:
    cells = (
        f"{rank} (ranks)" if rank == 1 else str(rank),
        html.escape(column.label),
        f"<code>{html.escape(column.key)}</code>",
        html.escape(TASK_NAMES.get(column.task, column.task)),
        html.escape(COLUMN_MEANINGS.get(column.key, "")),
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _class_row(label_id: int) -> str:
    label = id2label[label_id]
    red, green, blue = label.color
    swatch = f'<span style="color: rgb({red}, {green}, {blue})">&#9632;</span>'
    cells = (
        str(label.trainId),
        str(label.id),
        html.escape(label.name),
        html.escape(label.category),
        "yes" if label.hasInstances else "no",
        f"{swatch} ({red}, {green}, {blue})",
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
