"""CodaLab v1.5: the rules its parsers apply to a competition.yaml (as data, each with the source file it
comes from), the document built from challenge.yaml, and its check against those rules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..core.challenge import ChallengeSettings
from .platforms import (
    CODALAB_LEADERBOARD_ID,
    CODALAB_PAGE_KEYS,
    CODALAB_PLATFORM,
    COMPETITION_YAML,
    FIX,
    SCORE_DIGITS,
    BundleLayout,
    Checker,
    render_yaml,
    to_utc,
)

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


# max_length of the model fields the values go to.
CODALAB_MAX_LENGTHS = {"title": 100, "phase label": 50, "phase description": 1000, "column key": 50}
CODALAB_MAX_LENGTHS |= {"column label": 50, "docker image": 128}


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


def codalab_yaml(settings: ChallengeSettings, layout: BundleLayout) -> str:
    return render_yaml(codalab_document(settings, layout), CODALAB_PLATFORM)


def check_codalab(
    document: Mapping[str, Any], members: Collection[str], source: Path | None = None, fix: str = FIX
) -> None:
    """Refuse what CodaLab v1.5's bundle parser would refuse, or silently get wrong."""
    check = Checker("CodaLab v1.5", Path(__file__), source, fix)
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


def _check_codalab_pages(check: Checker, pages: Mapping[Any, Any], members: Collection[str]) -> None:
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


def _check_codalab_phase(check: Checker, number: Any, phase: Any, members: Collection[str]) -> dt.datetime:
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


def _check_codalab_leaderboard(check: Checker, board: Mapping[Any, Any]) -> None:
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
