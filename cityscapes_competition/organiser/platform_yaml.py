"""The competition.yaml documents for CodaLab v1.5 and Codabench, and their check against each platform's rules.

Both documents are built from challenge.yaml alone (``codalab_document``, ``codabench_document``), then checked
(``check_codalab``, ``check_codabench``) against the keys and rules the platforms' parsers apply, written down
below as data with the source file each comes from. The bundle builder checks them before it writes anything.

Where the platforms differ (read in their sources):

- **Dates.** Both read UTC. CodaLab v1.5 phases have a start only (a phase ends when the next starts; the
  competition's ``end_date`` closes the last). Codabench phases have ``start`` and ``end``, and a phase must end
  strictly before the next starts. Codabench's ``get_datetime`` (``src/apps/competitions/unpackers/utils.py``)
  *replaces* the time zone by UTC instead of converting, so only UTC values are written; and it turns a YAML
  timestamp (a ``datetime``, which is also a ``date``) into midnight of its day, so Codabench's dates are written
  as quoted strings. CodaLab v1.5 (``CompetitionDefBundle.localize_datetime``) keeps a timestamp whole.
- **Time limit.** Codabench's default queue runs at most ``MAX_EXECUTION_TIME_LIMIT`` = 600 s whatever the
  phase says (codabench ``src/apps/competitions/tasks.py``, ``_send_to_compute_worker``); only a competition
  queue gets the phase's limit. Without ``codabench_queue`` the Codabench document therefore states the
  600 s the run will really get, and the build warns. CodaLab v1.5 applies the phase's limit as is.
- **Unknown keys.** CodaLab v1.5 passes the top-level mapping to ``Competition(**...)`` and each phase to
  ``CompetitionPhase.objects.get_or_create(**...)``: an unknown key breaks the upload with a TypeError.
  Codabench ignores unknown keys silently, which hides typos; both are refused here.
- **Data by key.** Both accept, instead of a zip in the bundle, the key (a UUID) of a dataset uploaded
  beforehand: CodaLab v1.5 for any data or program value not ending in ``.zip`` (``OrganizerDataSet.key``),
  Codabench for a task's data when no such file is in the bundle (``BaseUnpacker._get_data_key``).
- **Which bundle goes where.** Codabench also imports v1.5 documents (``tasks.py`` ``unpack_competition``: no
  ``version`` or version 1/1.5 goes to ``unpackers/v1.py`` ``V15Unpacker``), but gets this one wrong: it ends
  each phase a day before the next starts, reads the unquoted timestamps as midnight, ignores
  ``force_submission_to_leaderboard`` and runs the 3600 s the programs plan for in 600 s. Quoted dates would
  still end Phase 1 a day early, so the v1.5 document is made one Codabench refuses: its first phase carries
  ``auto_migration: true``, which CodaLab v1.5 resets (``CompetitionDefBundle.unpack``: "First phase can't have
  auto_migration=True") and Codabench's ``CompetitionSerializer.validate_phases`` refuses ("You cannot auto
  migrate to the first phase of a competition"). Codabench gets the version 2 document of its own bundle.
- **Phase migration** (``migrate_to_next_phase``): ``auto_migration`` on every later phase (CodaLab v1.5),
  ``auto_migrate_to_this_phase`` (Codabench, never on the first phase).
- **Docker image.** CodaLab v1.5's worker (``worker.py`` ``docker_image_clean``) deletes every character outside
  ``[0-9a-zA-Z/.:-]`` before ``docker pull``: a digest (``@sha256:``) or a ``_`` names another image, so such
  names are refused.
- **Codabench only**: the baseline as the task's solution (``solutions:``, a zip found by its ``path`` in the
  bundle), ``contact_email``, and the ``fact_sheet`` in the shape ``CompetitionSerializer.validate_fact_sheet``
  checks. CodaLab v1.5's Competition model has neither field: an unknown key breaks its upload.
- **Page names.** CodaLab v1.5 shows an extra html page under its key (codename and label alike), so the starting
  kit's key is its title, "Starting kit"; Codabench pages carry a ``title``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.challenge import SETTINGS_FIX, ChallengeSettings, FactSheetQuestion
from ..core.errors import ReferenceDataError

# ----------------------------------------------------------------------------------- CodaLab v1.5 rules

# codalab/codalab-competitions, codalab/apps/web/models.py: CompetitionDefBundle.unpack removes html, phases,
# leaderboard and admin_names, then calls Competition(**rest); these are the Competition model's fields that
# can be given as plain values (ForeignKey and ManyToMany fields such as queue, creator, admins cannot).
CODALAB_TOP_LEVEL_KEYS = frozenset(
    {
        "html",
        "phases",
        "leaderboard",
        "admin_names",
        "title",
        "description",
        "url_redirect",
        "image",
        "image_url_base",
        "has_registration",
        "start_date",
        "end_date",
        "published",
        "last_phase_migration",
        "is_migrating",
        "force_submission_to_leaderboard",
        "disallow_leaderboard_modifying",
        "enable_medical_image_viewer",
        "enable_detailed_results",
        "original_yaml_file",
        "show_datasets_from_yaml",
        "reward",
        "is_migrating_delayed",
        "allow_teams",
        "enable_per_submission_metadata",
        "allow_public_submissions",
        "enable_forum",
        "anonymous_leaderboard",
        "enable_teams",
        "require_team_approval",
        "hide_top_three",
        "hide_chart",
        "allow_organizer_teams",
        "upper_bound_max_submission_size",
        "competition_docker_image",
        "deleted",
    }
)
CODALAB_REQUIRED_TOP_LEVEL_KEYS = ("title", "html", "phases")
# unpack reads html['overview'], ['evaluation'], ['terms'] and ['data'] by name ("`data` ... This is required.").
CODALAB_REQUIRED_PAGES = ("overview", "evaluation", "terms", "data")
# Same file: each phase goes to CompetitionPhase.objects.get_or_create(**phase); 'datasets' is removed first.
CODALAB_PHASE_KEYS = frozenset(
    {
        "phasenumber",
        "label",
        "description",
        "start_date",
        "max_submissions",
        "max_submissions_per_day",
        "is_scoring_only",
        "scoring_program",
        "reference_data",
        "input_data",
        "ingestion_program",
        "starting_kit",
        "public_data",
        "datasets",
        "leaderboard_management_mode",
        "force_best_submission_to_leaderboard",
        "auto_migration",
        "is_migrated",
        "execution_time_limit",
        "color",
        "max_submission_size",
        "participant_max_storage_use",
        "delete_submissions_except_best_and_last",
        "phase_never_ends",
        "scoring_program_docker_image",
        "default_docker_image",
        "disable_custom_docker_image",
        "ingestion_program_docker_image",
    }
)
# start_date is localized (fails when absent); reference_data missing raises "No reference data was supplied".
CODALAB_REQUIRED_PHASE_KEYS = ("phasenumber", "label", "start_date", "scoring_program", "reference_data")
CODALAB_FILE_KEYS = (
    "scoring_program",
    "reference_data",
    "input_data",
    "ingestion_program",
    "starting_kit",
    "public_data",
)
CODALAB_PHASE_COLORS = ("white", "orange", "yellow", "green", "blue", "purple")  # CompetitionPhase.COLOR_CHOICES
# The leaderboard part of unpack: leaderboards[*] need label and rank; columns may hold these keys.
CODALAB_LEADERBOARD_KEYS = frozenset({"label", "rank"})
CODALAB_COLUMN_KEYS = frozenset(
    {"label", "leaderboard", "rank", "numeric_format", "sort", "selection_default", "column_group", "computed"}
)
# The first phase's auto_migration, reset by unpack and refused by Codabench's v1 import (module docstring).
CODABENCH_REFUSAL_KEY = "auto_migration"
# unpack creates Overview, Evaluation and "Terms and Conditions" in the details category, then one page per other
# html key there, labelled with the key: a key equal to one of those labels breaks Page's unique_together.
CODALAB_FIXED_PAGE_LABELS = ("Overview", "Evaluation", "Terms and Conditions")
# codalab/competitions-v1-compute-worker, worker.py, docker_image_clean: what it deletes from an image name.
CODALAB_WORKER_STRIPPED = re.compile(r"[^0-9a-zA-Z/.:-]+")
# max_length of the model fields the values go to.
CODALAB_MAX_LENGTHS = {"title": 100, "phase label": 50, "phase description": 1000, "column key": 50}
CODALAB_MAX_LENGTHS |= {"column label": 50, "docker image": 128}

# -------------------------------------------------------------------------------------- Codabench rules

# codalab/codabench, src/apps/competitions/unpackers/v2.py (V2Unpacker) and base_unpacker.py: the keys read.
CODABENCH_TOP_LEVEL_KEYS = frozenset(
    {
        "version",
        "title",
        "description",
        "image",
        "terms",
        "pages",
        "tasks",
        "solutions",
        "phases",
        "leaderboards",
        "queue",
        "docker_image",
        "registration_auto_approve",
        "enable_detailed_results",
        "show_detailed_results_in_submission_panel",
        "show_detailed_results_in_leaderboard",
        "auto_run_submissions",
        "can_participants_make_submissions_public",
        "make_programs_available",
        "make_input_data_available",
        "competition_type",
        "fact_sheet",
        "reward",
        "contact_email",
        "forum_enabled",
    }
)
# version selects the unpacker (src/apps/competitions/tasks.py); _unpack_image/_unpack_terms/_unpack_tasks/
# _unpack_phases/_unpack_leaderboards raise without theirs; _unpack_pages iterates pages.
CODABENCH_REQUIRED_TOP_LEVEL_KEYS = ("version", "title", "image", "terms", "pages", "tasks", "phases", "leaderboards")
CODABENCH_PAGE_KEYS = frozenset({"title", "file"})
CODABENCH_TASK_KEYS = frozenset(
    {"index", "key", "name", "description", "ingestion_only_during_scoring"}
    | {"ingestion_program", "input_data", "scoring_program", "reference_data"}
)
CODABENCH_TASK_FILE_KEYS = ("ingestion_program", "input_data", "scoring_program", "reference_data")
CODABENCH_PHASE_KEYS = frozenset(
    {"index", "name", "description", "start", "end", "tasks", "execution_time_limit", "starting_kit", "public_data"}
    | {"max_submissions_per_day", "max_submissions", "auto_migrate_to_this_phase"}
    | {"hide_output", "hide_prediction_output", "hide_score_output"}
)
CODABENCH_REQUIRED_PHASE_KEYS = ("name", "start", "tasks")
# src/apps/api/serializers/leaderboards.py (LeaderboardSerializer, ColumnSerializer) and leaderboards/models.py.
CODABENCH_LEADERBOARD_KEYS = frozenset({"title", "key", "columns", "hidden", "submission_rule", "primary_index"})
CODABENCH_COLUMN_KEYS = frozenset(
    {"title", "key", "index", "sorting", "computation", "computation_indexes", "hidden", "precision"}
)
CODABENCH_REQUIRED_COLUMN_KEYS = ("title", "key", "index")
# v2.py, _unpack_solutions: index and tasks always; path (a zip or folder of the bundle) unless a key is given.
CODABENCH_SOLUTION_KEYS = frozenset({"index", "tasks", "path", "key", "name", "description"})
CODABENCH_REQUIRED_SOLUTION_KEYS = ("index", "tasks", "path")
# src/apps/api/serializers/competitions.py, CompetitionSerializer.validate_fact_sheet: each question has exactly
# these keys, its key repeats the mapping's key, its type is one of these; the model's JSONField declares 4096.
CODABENCH_FACT_SHEET_KEYS = frozenset({"key", "type", "title", "selection", "is_required", "is_on_leaderboard"})
CODABENCH_FACT_SHEET_TYPES = ("checkbox", "text", "select")
CODABENCH_FACT_SHEET_MAX_CHARS = 4096
CODABENCH_SUBMISSION_RULES = ("Add", "Add_And_Delete", "Add_And_Delete_Multiple")
CODABENCH_SUBMISSION_RULES += ("Force_Last", "Force_Latest_Multiple", "Force_Best")
CODABENCH_MAX_LENGTHS = {"title": 256, "phase name": 256, "leaderboard title": 64, "leaderboard key": 36}
CODABENCH_MAX_LENGTHS |= {"column title": 36, "column key": 36, "docker image": 128, "contact email": 256}
# src/apps/competitions/tasks.py: MAX_EXECUTION_TIME_LIMIT, the cap of the default queue.
CODABENCH_DEFAULT_QUEUE_SECONDS = 600

# ------------------------------------------------------------------------------- what the bundle holds

COMPETITION_YAML = "competition.yaml"
LOGO = "logo.png"
INGESTION_PROGRAM = "ingestion_program.zip"
SCORING_PROGRAM = "scoring_program.zip"
INPUT_DATA = "input_data.zip"
REFERENCE_DATA = "reference_data.zip"
STARTING_KIT = "starting_kit.zip"
SOLUTION = "baseline_submission.zip"  # Codabench only: the baseline as the task's solution
TERMS_PAGE = "terms"
CODALAB_PLATFORM = "CodaLab v1.5"
CODABENCH_PLATFORM = "Codabench"
STARTING_KIT_TITLE = "Starting kit"
# Page names of competition_pages.render_pages. CodaLab v1.5 makes its own 'get_starting_kit' page (the
# download table of _get_starting_kit.html, which would hide ours), and shows any other key as the tab's
# label, so ours goes there under its title (the tab's anchor is the key slugified: starting-kit).
CODALAB_PAGE_KEYS = {"get_starting_kit": STARTING_KIT_TITLE}
CODABENCH_PAGE_TITLES = {"overview": "Overview", "evaluation": "Evaluation", "data": "Data"}
CODABENCH_PAGE_TITLES |= {"get_starting_kit": STARTING_KIT_TITLE}
CODALAB_LEADERBOARD_ID = "Results"
CODABENCH_LEADERBOARD_KEY = "main"
SCORE_DIGITS = 4  # digits shown on the leaderboards
YAML_HEADER = (
    "# Generated from cityscapes_competition/challenge.yaml by `make bundle`: edit that file, not this one.\n"
    "# {platform} competition definition; the bundle's zips and pages are named relative to this file.\n"
)
YAML_NOTES = {
    CODALAB_PLATFORM: (
        "# For CodaLab v1.5 only; Codabench gets codabench_bundle.zip. Phase 1's auto_migration: true is on\n"
        "# purpose: CodaLab v1.5 resets it for the first phase, and Codabench refuses to import this file with it\n"
        "# (it would end Phase 1 a day early and cut the time limit to 600 s).\n"
    ),
}
_FIX = SETTINGS_FIX
_THIS_FILE = Path(__file__)
_STRUCTURE_FIX = (
    "The document is built in this file (codalab_document, codabench_document) from the names bundle.py "
    "puts in the bundle; keep to the keys and rules written down at its top, which come from the platforms' sources."
)


@dataclass(frozen=True)
class BundleLayout:
    """What the documents point at: file names inside the bundle, or dataset keys (UUIDs) for the data."""

    pages: Mapping[str, str]  # page name (as render_pages gives it) -> file name in the bundle
    logo: str = LOGO
    ingestion_program: str = INGESTION_PROGRAM
    scoring_program: str = SCORING_PROGRAM
    input_data: str = INPUT_DATA
    reference_data: str = REFERENCE_DATA
    starting_kit: str = STARTING_KIT
    solution: str = SOLUTION


def page_file_name(page: str) -> str:
    return f"{page}.html"


def default_layout(page_names: Collection[str]) -> BundleLayout:
    return BundleLayout(pages={name: page_file_name(name) for name in page_names})


def to_utc(moment: dt.datetime) -> dt.datetime:
    """An aware moment in UTC (what both platforms store)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone")
    return moment.astimezone(dt.UTC)


def codabench_time(moment: dt.datetime) -> str:
    """'YYYY-MM-DD HH:MM:SS+00:00' as text: Codabench parses text whole, but keeps only the day of a timestamp."""
    return to_utc(moment).isoformat(sep=" ")


def is_uuid(value: str) -> bool:
    """A dataset key as both platforms make them: a UUID."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------- CodaLab v1.5 document


def codalab_document(settings: ChallengeSettings, layout: BundleLayout) -> dict[str, Any]:
    """The CodaLab v1.5 competition.yaml as a mapping (dates as aware UTC datetimes)."""
    return {
        "title": settings.title,
        "description": settings.description,
        "image": layout.logo,
        "has_registration": False,
        "force_submission_to_leaderboard": True,
        "enable_detailed_results": True,
        "competition_docker_image": settings.docker_image,
        "end_date": to_utc(settings.phases[-1].deadline),
        "html": {CODALAB_PAGE_KEYS.get(name, name): file for name, file in layout.pages.items()},
        "phases": {
            phase.number: _codalab_phase(settings, layout, index) for index, phase in enumerate(settings.phases)
        },
        "leaderboard": _codalab_leaderboard(settings),
    }


def _codalab_phase(settings: ChallengeSettings, layout: BundleLayout, index: int) -> dict[str, Any]:
    phase = settings.phases[index]
    return {
        "phasenumber": phase.number,
        "label": phase.name,
        "description": phase.description,
        "color": CODALAB_PHASE_COLORS[(index + 3) % len(CODALAB_PHASE_COLORS)],  # green, blue, purple, ...
        "start_date": to_utc(phase.start),
        "is_scoring_only": False,  # code submissions: the ingestion program runs the participant's model
        "max_submissions_per_day": settings.max_submissions_per_day,
        "max_submissions": settings.max_submissions,
        "execution_time_limit": settings.execution_time_limit,
        # the first phase's is the refusal of Codabench's v1 import (module docstring), reset by CodaLab v1.5
        "auto_migration": index == 0 or settings.migrate_to_next_phase,
        "ingestion_program": layout.ingestion_program,
        "input_data": layout.input_data,
        "scoring_program": layout.scoring_program,
        "reference_data": layout.reference_data,
        "starting_kit": layout.starting_kit,
    }


def _codalab_leaderboard(settings: ChallengeSettings) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for rank, column in enumerate(settings.columns, 1):
        entry = {
            "leaderboard": {"label": settings.leaderboard_title, "rank": 1},
            "label": column.label,
            "rank": rank,
            "numeric_format": SCORE_DIGITS,
            "sort": "desc",
        }
        if rank == 1:
            entry["selection_default"] = 1  # the column the leaderboard is ranked by
        columns[column.key] = entry
    return {
        "leaderboards": {CODALAB_LEADERBOARD_ID: {"label": settings.leaderboard_title, "rank": 1}},
        "columns": columns,
    }


# ------------------------------------------------------------------------------------ Codabench document


@dataclass(frozen=True)
class CodabenchDocument:
    document: dict[str, Any]
    warnings: tuple[str, ...]


def codabench_document(settings: ChallengeSettings, layout: BundleLayout) -> CodabenchDocument:
    """The Codabench (version 2) competition.yaml as a mapping, and what the organiser should know about it."""
    time_limit, warnings = codabench_time_limit(settings)
    document: dict[str, Any] = {
        "version": 2,
        "title": settings.title,
        "description": settings.description,
        "image": layout.logo,
        "registration_auto_approve": True,
        "docker_image": settings.docker_image,
    }
    if settings.codabench_queue is not None:
        document["queue"] = settings.codabench_queue
    if settings.contact_email is not None:
        document["contact_email"] = settings.contact_email
    if settings.fact_sheet:
        document["fact_sheet"] = codabench_fact_sheet(settings.fact_sheet)
    document |= {
        "enable_detailed_results": True,
        "terms": layout.pages[TERMS_PAGE],
        "pages": [
            {"title": CODABENCH_PAGE_TITLES.get(name, name.replace("_", " ").capitalize()), "file": file}
            for name, file in layout.pages.items()
            if name != TERMS_PAGE
        ],
        "tasks": [
            {
                "index": 0,
                "name": "Cityscapes pixel- and instance-level semantic labeling",
                "description": "The participant's Keras model runs over the test images (ingestion), then the "
                "official Cityscapes metrics are computed (scoring).",
                "ingestion_program": layout.ingestion_program,
                "input_data": layout.input_data,
                "scoring_program": layout.scoring_program,
                "reference_data": layout.reference_data,
            }
        ],
        "solutions": [
            {
                "index": 0,
                "name": "Baseline",
                "description": "The starting kit's baseline submission: submit it to a phase to check the queue, "
                "its compute workers and the time limit.",
                "path": layout.solution,
                "tasks": [0],
            }
        ],
        "phases": [
            {
                "index": index,
                "name": phase.name,
                "description": phase.description,
                "start": codabench_time(phase.start),
                "end": codabench_time(phase.deadline),
                "max_submissions_per_day": settings.max_submissions_per_day,
                "max_submissions": settings.max_submissions,
                "execution_time_limit": time_limit,
                "auto_migrate_to_this_phase": index > 0 and settings.migrate_to_next_phase,
                "starting_kit": layout.starting_kit,
                "tasks": [0],
            }
            for index, phase in enumerate(settings.phases)
        ],
        "leaderboards": [
            {
                "title": settings.leaderboard_title,
                "key": CODABENCH_LEADERBOARD_KEY,
                "submission_rule": "Force_Last",  # as CodaLab's force_submission_to_leaderboard
                "columns": [
                    {"title": column.label, "key": column.key, "index": index, "sorting": "desc"}
                    | {"precision": SCORE_DIGITS}
                    for index, column in enumerate(settings.columns)
                ],
            }
        ],
    }
    return CodabenchDocument(document, warnings)


def codabench_fact_sheet(questions: tuple[FactSheetQuestion, ...]) -> dict[str, dict[str, Any]]:
    """The fact sheet as Codabench stores it: flags as the text "true"/"false", which its pages compare against."""
    return {
        question.key: {
            "key": question.key,
            "type": question.kind,
            "title": question.title,
            "selection": _fact_sheet_selection(question),
            "is_required": "true" if question.required else "false",
            "is_on_leaderboard": "true" if question.on_leaderboard else "false",
        }
        for question in questions
    }


def _fact_sheet_selection(question: FactSheetQuestion) -> str | list[Any]:
    """What an answer may be: any text (""), true or false, or one of the options ("" too unless required)."""
    if question.kind == "text":
        return ""
    if question.kind == "checkbox":
        return [True, False]
    return list(question.options) if question.required else ["", *question.options]


def codabench_time_limit(settings: ChallengeSettings) -> tuple[int, tuple[str, ...]]:
    """The limit Codabench will apply: the setting on a competition queue, at most 600 s on the default one."""
    limit = settings.execution_time_limit
    if settings.codabench_queue is not None or limit <= CODABENCH_DEFAULT_QUEUE_SECONDS:
        return limit, ()
    warning = (
        f"{settings.source}: execution_time_limit is {limit} s, but without codabench_queue Codabench runs "
        f"submissions on its default queue, which stops every run after {CODABENCH_DEFAULT_QUEUE_SECONDS} s; "
        f"the Codabench bundle therefore states {CODABENCH_DEFAULT_QUEUE_SECONDS} s. Attach compute workers to a "
        "queue of your own and set codabench_queue to its vhost to get the full limit (README, 'Compute workers')."
    )
    return CODABENCH_DEFAULT_QUEUE_SECONDS, (warning,)


def docker_image_warnings(settings: ChallengeSettings) -> tuple[str, ...]:
    """A bare name such as 'cityscapes-competition:1.0' is looked up among Docker Hub's official images."""
    name = settings.docker_image
    if "/" in name.split(":")[0]:
        return ()
    return (
        f"{settings.source}: docker_image '{name}' names no registry account, so the platforms' workers look "
        f"for it among Docker Hub's official images and fail to pull it. Build the Dockerfile, push it as "
        f"<account>/{name} (README, 'Competition image') and set docker_image to that name.",
    )


def codalab_worker_image(name: str) -> str:
    """The image CodaLab v1.5's worker pulls for ``name`` (worker.py, docker_image_clean, without its quotes)."""
    first_word = name.strip().split(" ")[0]
    return CODALAB_WORKER_STRIPPED.sub("", first_word)


def past_deadline_warnings(settings: ChallengeSettings, now: dt.datetime) -> tuple[str, ...]:
    """A warning when every deadline has passed: both platforms would show every phase as ended."""
    last = settings.phases[-1]
    if last.deadline > now:
        return ()
    local = settings.local(last.deadline)
    return (
        f"{settings.source}: every deadline is in the past (the last, {last.name}'s, was {local:%Y-%m-%d %H:%M:%S} "
        f"{settings.time_zone.key}), so both platforms will show every phase as ended and take no submissions. "
        "For a new run, move each phase's start and deadline in challenge.yaml (README, 'Running it again').",
    )


def render_yaml(document: Mapping[str, Any], platform: str) -> str:
    """The document as competition.yaml text, keys in the order built, UTC dates as YAML timestamps."""
    body = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)
    return YAML_HEADER.format(platform=platform) + YAML_NOTES.get(platform, "") + body


def codalab_yaml(settings: ChallengeSettings, layout: BundleLayout) -> str:
    return render_yaml(codalab_document(settings, layout), CODALAB_PLATFORM)


# --------------------------------------------------------------------------------------------- checking


class _Checker:
    """Collects nothing: the first broken rule raises one message naming the platform and the fix."""

    def __init__(self, platform: str, source: Path | None, fix: str):
        self.platform = platform
        self.source = source
        self.fix = fix

    def fail(self, problem: str) -> ReferenceDataError:
        """A value made from challenge.yaml breaks a rule: the organiser corrects challenge.yaml."""
        return ReferenceDataError(f"the {self.platform} competition.yaml {problem}", self.source, self.fix)

    def fail_structure(self, problem: str) -> ReferenceDataError:
        """The document's shape breaks a rule: the code that builds it (this module, or bundle.py) is wrong."""
        return ReferenceDataError(f"the {self.platform} competition.yaml {problem}", _THIS_FILE, _STRUCTURE_FIX)

    def mapping(self, value: Any, where: str) -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            raise self.fail_structure(f"needs a mapping at '{where}', not {type(value).__name__}")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail_structure(f"needs a non-empty list at '{where}'")
        return value

    def keys(self, mapping: Mapping[Any, Any], allowed: Collection[str], required: Collection[str], where: str) -> None:
        unknown = sorted(str(key) for key in mapping if key not in allowed)
        if unknown:
            effect = "breaks the upload" if self.platform.startswith("CodaLab") else "is silently ignored"
            raise self.fail_structure(
                f"has the key '{where}{unknown[0]}', which {self.platform} does not know (an unknown key {effect})"
            )
        missing = [key for key in required if key not in mapping]
        if missing:
            raise self.fail_structure(f"lacks the required key '{where}{missing[0]}'")

    def text(self, value: Any, where: str, max_length: int | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"needs text at '{where}', not {value!r}")
        if max_length is not None and len(value) > max_length:
            raise self.fail(f"has {len(value)} characters at '{where}'; {self.platform} stores at most {max_length}")
        return value

    def whole(self, value: Any, where: str, minimum: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"needs a whole number of at least {minimum} at '{where}', not {value!r}")
        return value

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail_structure(f"needs true or false at '{where}', not {value!r}")
        return value

    def moment(self, value: Any, where: str) -> dt.datetime:
        if not isinstance(value, dt.datetime) or value.utcoffset() != dt.timedelta(0):
            raise self.fail_structure(f"needs a UTC date and time at '{where}', not {value!r}")
        return value

    def text_moment(self, value: Any, where: str) -> dt.datetime:
        """A date and time given as text, in UTC (what Codabench reads without loss)."""
        if isinstance(value, dt.date):
            raise self.fail_structure(
                f"has an unquoted date at '{where}' ({value}); Codabench's get_datetime keeps only its day (it "
                "combines a date with midnight), so write it as a quoted 'YYYY-MM-DD HH:MM:SS+00:00'"
            )
        try:
            moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.utcoffset() != dt.timedelta(0):
            raise self.fail_structure(f"needs a UTC date and time as text at '{where}', not {value!r}")
        return moment

    def member(self, value: Any, where: str, members: Collection[str], key_allowed: bool = False) -> None:
        name = self.text(value, where)
        if name in members:
            return
        if key_allowed and not name.endswith(".zip") and is_uuid(name):
            return
        what = "a file of the bundle or a dataset key (UUID)" if key_allowed else "a file of the bundle"
        raise self.fail_structure(f"names '{name}' at '{where}', which is not {what}")

    def docker_image(self, value: Any, where: str) -> str:
        name = self.text(value, where, 128)
        if any(character.isspace() for character in name):
            raise self.fail(f"has a docker image name with a space at '{where}': {name!r}")
        return name

    def codalab_worker_image(self, value: Any, where: str) -> None:
        """Refuse a name CodaLab v1.5's worker would turn into another image's."""
        name = self.docker_image(value, where)
        pulled = codalab_worker_image(name)
        if pulled != name:
            removed = "".join(sorted({character for character in name if CODALAB_WORKER_STRIPPED.match(character)}))
            raise ReferenceDataError(
                f"docker_image {name!r}: CodaLab v1.5's worker deletes every character but letters, digits and "
                f"/ . : - from image names before pulling them (worker.py, docker_image_clean), here "
                f"{removed!r}, so it would pull {pulled!r}, another image",
                self.source,
                "Set docker_image in challenge.yaml to a name made of those characters only: push the image under "
                "such a name (no '_'), name it by a tag, not by an @sha256: digest "
                "(e.g. ACCOUNT/cityscapes-competition:1.0), and build the bundle again.",
            )


def check_codalab(
    document: Mapping[str, Any], members: Collection[str], source: Path | None = None, fix: str = _FIX
) -> None:
    """Refuse what CodaLab v1.5's bundle parser would refuse, or silently get wrong."""
    check = _Checker("CodaLab v1.5", source, fix)
    check.keys(document, CODALAB_TOP_LEVEL_KEYS, CODALAB_REQUIRED_TOP_LEVEL_KEYS, "")
    check.text(document["title"], "title", CODALAB_MAX_LENGTHS["title"])
    if "image" in document:
        check.member(document["image"], "image", members)
    if "competition_docker_image" in document:
        check.codalab_worker_image(document["competition_docker_image"], "competition_docker_image")
    for key in ("has_registration", "force_submission_to_leaderboard", "enable_detailed_results"):
        if key in document:
            check.flag(document[key], key)
    _check_codalab_pages(check, check.mapping(document["html"], "html"), members)
    phases = check.mapping(document["phases"], "phases")
    if not phases:
        raise check.fail("has no phases")
    starts = [_check_codalab_phase(check, number, phase, members) for number, phase in phases.items()]
    if next(iter(phases.values())).get(CODABENCH_REFUSAL_KEY) is not True:
        raise check.fail_structure(
            f"needs '{CODABENCH_REFUSAL_KEY}: true' on its first phase: CodaLab v1.5 resets it there, and it makes "
            "Codabench refuse this file, which it would otherwise import with wrong dates and time limits"
        )
    if document.get("end_date") is not None:
        end = check.moment(document["end_date"], "end_date")
        if end <= max(starts):
            raise check.fail(f"ends ({end}) before its last phase starts ({max(starts)})")
    if "leaderboard" in document:
        _check_codalab_leaderboard(check, check.mapping(document["leaderboard"], "leaderboard"))
    yaml_members = sorted(name for name in members if ".yaml" in name)
    if yaml_members != [COMPETITION_YAML]:
        # unpack takes the first name containing '.yaml' as the competition definition.
        raise check.fail_structure(f"must be the only '.yaml' file of the bundle; the bundle holds {yaml_members}")


def _check_codalab_pages(check: _Checker, pages: Mapping[Any, Any], members: Collection[str]) -> None:
    for name in CODALAB_REQUIRED_PAGES:
        if name not in pages:
            raise check.fail_structure(
                f"lacks the html page '{name}'; the parser requires {', '.join(CODALAB_REQUIRED_PAGES)}",
            )
    for name, file in pages.items():
        if name == "get_starting_kit":
            raise check.fail_structure(
                "has an html page 'get_starting_kit', a name CodaLab v1.5 keeps for its files table"
            )
        if name in CODALAB_FIXED_PAGE_LABELS:
            raise check.fail_structure(
                f"has an html page '{name}', the label of a page CodaLab v1.5 makes itself (a second one fails)"
            )
        check.member(file, f"html.{name}", members)


def _check_codalab_phase(check: _Checker, number: Any, phase: Any, members: Collection[str]) -> dt.datetime:
    where = f"phases.{number}."
    phase = check.mapping(phase, where.rstrip("."))
    check.keys(phase, CODALAB_PHASE_KEYS, CODALAB_REQUIRED_PHASE_KEYS, where)
    if check.whole(phase["phasenumber"], f"{where}phasenumber") != number:
        raise check.fail_structure(f"has phase {number} with phasenumber {phase['phasenumber']}")
    check.text(phase["label"], f"{where}label", CODALAB_MAX_LENGTHS["phase label"])
    if len(str(phase.get("description") or "")) > CODALAB_MAX_LENGTHS["phase description"]:
        raise check.fail(f"has more than {CODALAB_MAX_LENGTHS['phase description']} characters at '{where}description'")
    if "color" in phase and phase["color"] not in CODALAB_PHASE_COLORS:
        raise check.fail_structure(
            f"has the colour {phase['color']!r} at '{where}color' (one of {', '.join(CODALAB_PHASE_COLORS)})"
        )
    if check.flag(phase.get("is_scoring_only", True), f"{where}is_scoring_only"):
        raise check.fail_structure(
            f"needs '{where}is_scoring_only: false', or the ingestion program never runs a model"
        )
    for key in ("max_submissions", "max_submissions_per_day", "execution_time_limit"):
        if key in phase:
            check.whole(phase[key], f"{where}{key}", 1)
    if "auto_migration" in phase:
        check.flag(phase["auto_migration"], f"{where}auto_migration")
    for key in CODALAB_FILE_KEYS:
        if key in phase:
            check.member(phase[key], f"{where}{key}", members, key_allowed=True)
    return check.moment(phase["start_date"], f"{where}start_date")


def _check_codalab_leaderboard(check: _Checker, board: Mapping[Any, Any]) -> None:
    check.keys(board, {"leaderboards", "columns", "column_groups"}, ("leaderboards", "columns"), "leaderboard.")
    labels = set()
    for name, entry in check.mapping(board["leaderboards"], "leaderboard.leaderboards").items():
        entry = check.mapping(entry, f"leaderboard.leaderboards.{name}")
        check.keys(entry, CODALAB_LEADERBOARD_KEYS, ("label", "rank"), f"leaderboard.leaderboards.{name}.")
        labels.add(check.text(entry["label"], f"leaderboard.leaderboards.{name}.label").strip())
    columns = check.mapping(board["columns"], "leaderboard.columns")
    if not columns:
        raise check.fail("has no leaderboard columns")
    for key, column in columns.items():
        where = f"leaderboard.columns.{key}."
        check.text(key, where.rstrip("."), CODALAB_MAX_LENGTHS["column key"])
        column = check.mapping(column, where.rstrip("."))
        check.keys(column, CODALAB_COLUMN_KEYS, ("label", "leaderboard"), where)
        check.text(column["label"], f"{where}label", CODALAB_MAX_LENGTHS["column label"])
        board_label = check.mapping(column["leaderboard"], f"{where}leaderboard").get("label")
        if not isinstance(board_label, str) or board_label.strip() not in labels:
            raise check.fail_structure(f"puts column '{key}' on the leaderboard {board_label!r}, which is not defined")
        if column.get("sort", "desc") not in ("asc", "desc"):
            raise check.fail_structure(f"needs asc or desc at '{where}sort', not {column['sort']!r}")


def check_codabench(
    document: Mapping[str, Any], members: Collection[str], source: Path | None = None, fix: str = _FIX
) -> None:
    """Refuse what Codabench's version 2 unpacker and serializers would refuse, or silently ignore."""
    check = _Checker("Codabench", source, fix)
    check.keys(document, CODABENCH_TOP_LEVEL_KEYS, CODABENCH_REQUIRED_TOP_LEVEL_KEYS, "")
    if document["version"] != 2:
        raise check.fail_structure(f"needs 'version: 2', not {document['version']!r}")
    check.text(document["title"], "title", CODABENCH_MAX_LENGTHS["title"])
    check.member(document["image"], "image", members)
    check.member(document["terms"], "terms", members)
    if "docker_image" in document:
        check.docker_image(document["docker_image"], "docker_image")
    if "contact_email" in document:
        email = check.text(document["contact_email"], "contact_email", CODABENCH_MAX_LENGTHS["contact email"])
        if email.count("@") != 1:
            raise check.fail(f"needs one e-mail address at 'contact_email', not {email!r}")
    if "fact_sheet" in document:
        _check_codabench_fact_sheet(check, check.mapping(document["fact_sheet"], "fact_sheet"))
    if "queue" in document and not is_uuid(check.text(document["queue"], "queue")):
        raise check.fail(
            f"names the queue {document['queue']!r}; Codabench wants the queue's vhost, a UUID "
            "(its queue management page shows it)"
        )
    for index, page in enumerate(check.sequence(document["pages"], "pages")):
        page = check.mapping(page, f"pages[{index}]")
        check.keys(page, CODABENCH_PAGE_KEYS, ("title", "file"), f"pages[{index}].")
        check.text(page["title"], f"pages[{index}].title")
        check.member(page["file"], f"pages[{index}].file", members)
    tasks = _check_codabench_tasks(check, check.sequence(document["tasks"], "tasks"), members)
    if "solutions" in document:
        _check_codabench_solutions(check, check.sequence(document["solutions"], "solutions"), tasks, members)
    _check_codabench_phases(check, check.sequence(document["phases"], "phases"), tasks, members)
    for index, board in enumerate(check.sequence(document["leaderboards"], "leaderboards")):
        _check_codabench_leaderboard(check, check.mapping(board, f"leaderboards[{index}]"), f"leaderboards[{index}].")


def _check_codabench_tasks(check: _Checker, tasks: list[Any], members: Collection[str]) -> set[int]:
    indexes: set[int] = set()
    for position, task in enumerate(tasks):
        where = f"tasks[{position}]."
        task = check.mapping(task, where.rstrip("."))
        required = ("index",) if "key" in task else ("index", "name", "scoring_program")
        check.keys(task, CODABENCH_TASK_KEYS, required, where)
        index = check.whole(task["index"], f"{where}index")
        if index in indexes:
            raise check.fail_structure(f"has two tasks with index {index}")
        indexes.add(index)
        for key in CODABENCH_TASK_FILE_KEYS:
            if key in task:
                check.member(task[key], f"{where}{key}", members, key_allowed=True)
    return indexes


def _check_codabench_fact_sheet(check: _Checker, sheet: Mapping[Any, Any]) -> None:
    """CompetitionSerializer.validate_fact_sheet, and the size the model declares."""
    for key, question in sheet.items():
        where = f"fact_sheet.{key}."
        question = check.mapping(question, where.rstrip("."))
        if set(question) != CODABENCH_FACT_SHEET_KEYS:
            raise check.fail_structure(
                f"needs exactly {', '.join(sorted(CODABENCH_FACT_SHEET_KEYS))} at '{where.rstrip('.')}'"
            )
        if question["key"] != key or question["type"] not in CODABENCH_FACT_SHEET_TYPES:
            raise check.fail_structure(f"needs the key {key!r} and a known type at '{where.rstrip('.')}'")
        for flag in ("is_required", "is_on_leaderboard"):
            if question[flag] not in ("true", "false"):
                raise check.fail_structure(f"needs the text 'true' or 'false' at '{where}{flag}'")
    size = len(json.dumps(dict(sheet)))
    if size > CODABENCH_FACT_SHEET_MAX_CHARS:
        raise check.fail(f"has a fact sheet of {size} characters as JSON; Codabench stores at most 4096")


def _check_codabench_solutions(
    check: _Checker, solutions: list[Any], tasks: set[int], members: Collection[str]
) -> None:
    indexes: set[int] = set()
    for position, solution in enumerate(solutions):
        where = f"solutions[{position}]."
        solution = check.mapping(solution, where.rstrip("."))
        check.keys(solution, CODABENCH_SOLUTION_KEYS, CODABENCH_REQUIRED_SOLUTION_KEYS, where)
        index = check.whole(solution["index"], f"{where}index")
        if index in indexes:
            raise check.fail_structure(f"has two solutions with index {index}")
        indexes.add(index)
        if not set(check.sequence(solution["tasks"], f"{where}tasks")) <= tasks:
            raise check.fail_structure(f"gives solution {index} a task that is not defined")
        check.member(solution["path"], f"{where}path", members)


def _check_codabench_phases(check: _Checker, phases: list[Any], tasks: set[int], members: Collection[str]) -> None:
    previous_end: dt.datetime | None = None
    for position, phase in enumerate(phases):
        where = f"phases[{position}]."
        phase = check.mapping(phase, where.rstrip("."))
        check.keys(phase, CODABENCH_PHASE_KEYS, CODABENCH_REQUIRED_PHASE_KEYS, where)
        check.text(phase["name"], f"{where}name", CODABENCH_MAX_LENGTHS["phase name"])
        if phase.get("index", position) != position:
            raise check.fail_structure(
                f"has phase index {phase['index']} at position {position}; list the phases in order"
            )
        start = check.text_moment(phase["start"], f"{where}start")
        if previous_end is not None and start <= previous_end:
            raise check.fail(
                f"starts phase '{phase['name']}' at {start}, not after the previous phase's end ({previous_end}); "
                "Codabench needs each phase to end strictly before the next starts"
            )
        last = position == len(phases) - 1
        if phase.get("end") is None:
            if not last:
                raise check.fail_structure(f"needs '{where}end': only the last phase may be open-ended")
            previous_end = None
        else:
            previous_end = check.text_moment(phase["end"], f"{where}end")
            if previous_end <= start:
                raise check.fail(f"ends phase '{phase['name']}' ({previous_end}) before it starts ({start})")
        unknown_tasks = [task for task in check.sequence(phase["tasks"], f"{where}tasks") if task not in tasks]
        if unknown_tasks:
            raise check.fail_structure(
                f"gives phase '{phase['name']}' the task {unknown_tasks[0]!r}, which is not defined"
            )
        for key in ("max_submissions", "max_submissions_per_day", "execution_time_limit"):
            if key in phase:
                check.whole(phase[key], f"{where}{key}", 1)
        # CompetitionSerializer.validate_phases refuses migration into the first (or only) phase
        migrates = check.flag(phase.get("auto_migrate_to_this_phase", False), f"{where}auto_migrate_to_this_phase")
        if migrates and position == 0:
            raise check.fail_structure(f"cannot set '{where}auto_migrate_to_this_phase' on the first phase")
        for key in ("starting_kit", "public_data"):
            if key in phase:
                check.member(phase[key], f"{where}{key}", members)


def _check_codabench_leaderboard(check: _Checker, board: Mapping[Any, Any], where: str) -> None:
    check.keys(board, CODABENCH_LEADERBOARD_KEYS, ("title", "key", "columns"), where)
    check.text(board["title"], f"{where}title", CODABENCH_MAX_LENGTHS["leaderboard title"])
    check.text(board["key"], f"{where}key", CODABENCH_MAX_LENGTHS["leaderboard key"])
    if board.get("submission_rule", "Add") not in CODABENCH_SUBMISSION_RULES:
        raise check.fail_structure(
            f"has the submission rule {board['submission_rule']!r} (one of {CODABENCH_SUBMISSION_RULES})"
        )
    indexes, keys = set(), set()
    for position, column in enumerate(check.sequence(board["columns"], f"{where}columns")):
        at = f"{where}columns[{position}]."
        column = check.mapping(column, at.rstrip("."))
        check.keys(column, CODABENCH_COLUMN_KEYS, CODABENCH_REQUIRED_COLUMN_KEYS, at)
        check.text(column["title"], f"{at}title", CODABENCH_MAX_LENGTHS["column title"])
        keys.add(check.text(column["key"], f"{at}key", CODABENCH_MAX_LENGTHS["column key"]))
        indexes.add(check.whole(column["index"], f"{at}index"))
        if column.get("sorting", "desc") not in ("asc", "desc"):
            raise check.fail_structure(f"needs asc or desc at '{at}sorting', not {column['sorting']!r}")
    if len(indexes) != len(board["columns"]) or len(keys) != len(board["columns"]):
        raise check.fail_structure(f"has leaderboard columns with the same index or key at '{where}columns'")
