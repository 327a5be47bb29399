"""Codabench: the rules its version 2 unpacker applies to a competition.yaml (as data, each with the source
file it comes from), the document built from challenge.yaml, and its check against those rules."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.challenge import ChallengeSettings, FactSheetQuestion
from .platforms import (
    CODABENCH_LEADERBOARD_KEY,
    CODABENCH_PAGE_TITLES,
    FIX,
    SCORE_DIGITS,
    TERMS_PAGE,
    BundleLayout,
    Checker,
    codabench_time,
    is_uuid,
)

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


def check_codabench(
    document: Mapping[str, Any], members: Collection[str], source: Path | None = None, fix: str = FIX
) -> None:
    """Refuse what Codabench's version 2 unpacker and serializers would refuse, or silently ignore."""
    check = Checker("Codabench", Path(__file__), source, fix)
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


def _check_codabench_tasks(check: Checker, tasks: list[Any], members: Collection[str]) -> set[int]:
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


def _check_codabench_fact_sheet(check: Checker, sheet: Mapping[Any, Any]) -> None:
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


def _check_codabench_solutions(check: Checker, solutions: list[Any], tasks: set[int], members: Collection[str]) -> None:
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


def _check_codabench_phases(check: Checker, phases: list[Any], tasks: set[int], members: Collection[str]) -> None:
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


def _check_codabench_leaderboard(check: Checker, board: Mapping[Any, Any], where: str) -> None:
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
