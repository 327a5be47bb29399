"""The competition's submission rules, enforced exactly by the scoring program.

Rules (challenge.yaml, per phase): a submission must be made strictly before its phase's deadline (to
the second, in the competition's time zone); at most ``max_submissions_per_day`` per participant on one
calendar day in that zone, and ``max_submissions`` in total. Failed submissions never count. The
platforms count too, but coarsely (CodaLab v1.5: whole UTC days, the competition's end by date only).

Where the data comes from:
- **CodaLab v1.5** (INPUT/metadata exists): read in codalab/codalab-competitions,
  ``codalab/apps/web/tasks.py`` ``score()``. It writes the scoring run's ``input.txt``, which the worker
  (codalab/competitions-v1-compute-worker ``worker.py`` ``get_bundle``) copies to ``INPUT/metadata``:
  ``submitted-by`` (the participant's username), ``submitted-at``
  (``submitted_at.replace(microsecond=0).isoformat()``, UTC: ``2019-03-10T08:00:00+00:00``),
  ``competition-submission`` (the participant's ``submission_number`` in the phase), ``competition-phase``
  (the phase's ``phasenumber``, not its pk) and ``automatic-submission`` (``True``/``False``), beside
  ``ref``/``res``/``coopetition`` URLs. The ``coopetition`` zip unpacks to ``INPUT/coopetition/``, with one
  ``coopetition_phase_<phasenumber>.txt`` per phase: a ``csv.DictWriter`` dump of the phase's FINISHED
  submissions (all participants; timestamps ``str(datetime)``: microseconds only when nonzero).
- **Codabench** gives the scoring program no such data (only ``ref/`` and ``res/``); it enforces its
  own limits. **Locally or self-hosted**: a submission ledger (submission_ledger.py), if given.

Counting on CodaLab. The CSV has no submission time. Its ``started_at`` is the closest: the models set it
on every save while the status is RUNNING, so it is when the last step (scoring) started, after the
submission (queue and ingestion time later); ``completed_at`` also moves later (every save while
FINISHED, e.g. making it public). So: a participant's submissions made before this one are their finished
rows with a lower ``submission_number`` (CodaLab gives each new one max + 1 over all of theirs in the
phase); the total counts those, the day counts those that started on or after this submission's local
midnight. Only a submission that waited in the queue across midnight is counted on the wrong day.

Organiser re-runs (``views.submission_re_run``, ``tasks.re_run_all_submissions_in_phase``, phase
migration in ``models.py``): each creates a NEW submission of the same participant (so ``submitted-by``
is the participant), with a fresh ``submitted_at``, saved with ``ignore_submission_limits=True``, which
skips the numbering: its number is the first unused one counting from 0, so the participant's first
forced submission in a phase is number 0, later ones max + 1 (indistinguishable from their own). A
submission is recognised as an organiser's when (see ``recognise_rerun``):
1. ``automatic-submission`` is true (a phase migration), or
2. its number is 0 (a participant's own submissions are numbered from 1), or
3. its number is already among the participant's finished submissions (the same submission scored again), or
4. it was made in a phase at least ``PLATFORM_CLOSE_MARGIN`` after the next phase started: CodaLab takes a
   participant's submission only into the active phase (``CompetitionPhase.is_active``, checked in
   ``api/views/competition_views.py``), which ends when the next one starts. Not for the last phase: its
   end on the platform is the competition's end date, which challenge.yaml does not hold.
Any other re-run (a second re-run of a participant's submissions after the final deadline, or re-runs
that push a day over its limit) is refused like a submission: re-score with
``enforce_submission_rules: false`` in challenge.yaml, or the scorer's ``--no-submission-rules``.
"""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from .challenge import ChallengeSettings, Phase
from .errors import ReferenceDataError, SubmissionError
from .submission_ledger import (
    LimitReached,
    Reservation,
    SubmissionLedger,
    SubmissionLimits,
    check_limits,
    local_day_bounds,
)

UTC = dt.UTC
PLATFORM_CLOSE_MARGIN = dt.timedelta(minutes=10)  # a submission's saving may lag its acceptance a little
METADATA_FILE = "metadata"
COOPETITION_FOLDER = "coopetition"
CSV_COLUMNS = (
    "participant__user__username",
    "pk",
    "when_made_public",
    "when_unmade_public",
    "started_at",
    "completed_at",
    "download_count",
    "submission_number",
    "like_count",
    "dislike_count",
)
_NEEDED_CSV_COLUMNS = ("participant__user__username", "started_at", "completed_at", "submission_number")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?")
_PLATFORM_FIX = (
    "This file is written by the platform for the scoring run; if the platform's format changed, "
    "score without the rules (enforce_submission_rules: false in challenge.yaml, or --no-submission-rules)"
)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class RuleDecision:
    """What the rules said about a submission that may be scored."""

    checked: bool  # False: re-run, rules switched off, or nothing to count with
    summary: str  # one line for the scoring log
    reservation: Reservation | None = None  # ledger mode: finish it after scoring

    def complete(self, scores: Mapping[str, float | None]) -> None:
        """Record the scores (ledger mode; nothing to do otherwise)."""
        if self.reservation is not None:
            self.reservation.complete(scores)

    def fail(self, reason: str = "") -> None:
        """Release the try: a failed submission never counts (ledger mode; nothing to do otherwise)."""
        if self.reservation is not None:
            self.reservation.fail(reason)


@dataclass(frozen=True)
class PlatformSubmission:
    """The scoring run's INPUT/metadata on CodaLab v1.5."""

    participant: str
    submitted_at: dt.datetime  # aware, UTC
    number: int  # the participant's submission number in the phase
    phase_number: int
    automatic: bool


@dataclass(frozen=True)
class FinishedSubmission:
    """One row of INPUT/coopetition/coopetition_phase_<N>.txt."""

    participant: str
    number: int
    started_at: dt.datetime  # aware, UTC


def check_submission(
    input_dir: Path,
    settings: ChallengeSettings,
    *,
    ledger_path: Path | None,
    now: dt.datetime | None = None,
    participant: str | None = None,
    enforce: bool = True,
) -> RuleDecision:
    """Apply the rules to the submission being scored; SubmissionError (the message) when refused.

    Platform mode when ``INPUT/metadata`` exists, else ledger mode when ``ledger_path`` is given (the
    submission time is ``now``, the participant ``participant`` or the OS user), else nothing is checked.
    ``enforce=False`` is the scorer's ``--no-submission-rules``.
    """
    metadata = input_dir / METADATA_FILE
    switched_off = _switched_off(settings, enforce)
    if metadata.exists():
        if switched_off:
            return RuleDecision(False, f"Submission rules not checked: {switched_off}.")
        return _check_platform(input_dir, metadata, settings)
    if ledger_path is not None:
        moment = _aware(now or dt.datetime.now(UTC))
        who = participant or _os_user()
        ledger = SubmissionLedger(ledger_path, stale_after=dt.timedelta(seconds=2 * settings.execution_time_limit))
        return _check_with_ledger(ledger, settings, who, moment, switched_off, label=str(input_dir))
    reason = switched_off or f"no platform metadata ({metadata}) and no submission ledger"
    return RuleDecision(False, f"Submission rules not checked: {reason}.")


def _switched_off(settings: ChallengeSettings, enforce: bool) -> str:
    if not settings.enforce_submission_rules:
        return f"enforce_submission_rules is false in {settings.source.name}"
    return "" if enforce else "--no-submission-rules"


# ---- platform mode (CodaLab v1.5) ----


def _check_platform(input_dir: Path, metadata: Path, settings: ChallengeSettings) -> RuleDecision:
    submission = read_platform_metadata(metadata)
    phase = _platform_phase(settings, submission.phase_number, metadata)
    rerun = recognise_rerun(submission, phase, settings)
    if rerun:
        return _rerun_decision(submission, phase, rerun)
    finished = read_finished_submissions(coopetition_file(input_dir, phase.number))
    if any(row.participant == submission.participant and row.number == submission.number for row in finished):
        return _rerun_decision(submission, phase, "its number is already among the finished submissions")
    refuse_after_deadline(phase, submission.submitted_at, settings)
    earlier = [
        row for row in finished if row.participant == submission.participant and 0 < row.number < submission.number
    ]
    day_start, _ = local_day_bounds(submission.submitted_at, settings.time_zone)
    on_day = sum(row.started_at >= day_start for row in earlier)
    try:
        check_limits(on_day, len(earlier), _limits(settings))
    except LimitReached as refusal:
        raise _limit_error(settings, phase, submission.submitted_at, refusal) from None
    return RuleDecision(True, _summary(settings, phase, submission.submitted_at, on_day + 1, len(earlier) + 1))


def coopetition_file(input_dir: Path, phase_number: int) -> Path:
    return input_dir / COOPETITION_FOLDER / f"coopetition_phase_{phase_number}.txt"


def recognise_rerun(submission: PlatformSubmission, phase: Phase, settings: ChallengeSettings) -> str:
    """Why this submission is an organiser's (rules 1, 2 and 4 of the module docstring), or ""."""
    if submission.automatic:
        return "automatic-submission: an automatic migration to this phase"
    if submission.number == 0:
        return "submission number 0: only submissions an organiser forces in are numbered from 0"
    following = _next_phase(settings, phase)
    if following is not None and submission.submitted_at >= following.start + PLATFORM_CLOSE_MARGIN:
        return f"made after {following.name} started, when the platform takes no participant's submission here"
    return ""


def _rerun_decision(submission: PlatformSubmission, phase: Phase, reason: str) -> RuleDecision:
    summary = (
        f"{phase.name}, submission {submission.number} of {submission.participant}: an organiser's re-run "
        f"({reason}); the submission rules do not apply."
    )
    return RuleDecision(False, summary)


def _platform_phase(settings: ChallengeSettings, number: int, metadata: Path) -> Phase:
    for phase in settings.phases:
        if phase.number == number:
            return phase
    known = ", ".join(str(phase.number) for phase in settings.phases)
    raise ReferenceDataError(
        f"competition-phase is {number}, but {settings.source.name} has phases {known}",
        metadata,
        f"Build the bundle from {settings.source.name} again so that its phases match, and upload it",
    )


def read_platform_metadata(path: Path) -> PlatformSubmission:
    """INPUT/metadata as CodaLab v1.5 writes it; any deviation is one message naming the file."""
    fields = _yaml_mapping(path)

    def field(key: str) -> str:
        value = fields.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ReferenceDataError(f"no '{key}' (a text value) in the platform's metadata", path, _PLATFORM_FIX)
        return value.strip()

    automatic = fields.get("automatic-submission", "False")
    if not isinstance(automatic, str) or automatic.lower() not in ("true", "false"):
        raise ReferenceDataError(f"automatic-submission must be True or False, not {automatic!r}", path, _PLATFORM_FIX)
    return PlatformSubmission(
        participant=field("submitted-by"),
        submitted_at=_timestamp_in(path, "submitted-at", field("submitted-at")),
        number=_whole_number(path, "competition-submission", field("competition-submission")),
        phase_number=_whole_number(path, "competition-phase", field("competition-phase")),
        automatic=automatic.lower() == "true",
    )


def _yaml_mapping(path: Path) -> dict:
    try:
        # BaseLoader: every scalar stays text, so a username like "yes" or "123" is read as written
        fields = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    except (OSError, UnicodeDecodeError) as error:
        raise ReferenceDataError(f"cannot read the platform's metadata ({error})", path, _PLATFORM_FIX) from None
    except yaml.YAMLError:
        raise ReferenceDataError("the platform's metadata is not valid YAML", path, _PLATFORM_FIX) from None
    if not isinstance(fields, dict):
        raise ReferenceDataError("the platform's metadata is not a YAML mapping", path, _PLATFORM_FIX)
    return fields


def read_finished_submissions(path: Path) -> list[FinishedSubmission]:
    """The phase's finished submissions (coopetition CSV); failed ones are not listed, so never count."""
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.DictReader(file)
            missing = [column for column in _NEEDED_CSV_COLUMNS if column not in (reader.fieldnames or ())]
            if missing:
                raise ReferenceDataError(
                    f"the header lacks {', '.join(missing)} (expected {','.join(CSV_COLUMNS)})", path, _PLATFORM_FIX
                )
            return [_finished_row(path, reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise ReferenceDataError(
            "missing: the platform lists the phase's finished submissions there", path, _PLATFORM_FIX
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ReferenceDataError(f"cannot read the finished submissions ({error})", path, _PLATFORM_FIX) from None


def _finished_row(path: Path, line: int, row: dict) -> FinishedSubmission:
    where = f"line {line}"
    # started_at is empty only for rows that never ran (none should be finished); completed_at then
    started = (row.get("started_at") or "").strip() or (row.get("completed_at") or "").strip()
    return FinishedSubmission(
        participant=(row.get("participant__user__username") or "").strip(),
        number=_whole_number(path, f"{where}: submission_number", (row.get("submission_number") or "").strip()),
        started_at=_timestamp_in(path, f"{where}: started_at", started),
    )


def _whole_number(path: Path, what: str, text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ReferenceDataError(f"{what} must be a whole number, not {text!r}", path, _PLATFORM_FIX)
    return int(text)


def _timestamp_in(path: Path, what: str, text: str) -> dt.datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise ReferenceDataError(f"{what} is not an ISO-8601 time: {text!r}", path, _PLATFORM_FIX) from None


def parse_timestamp(text: str) -> dt.datetime:
    """ISO-8601 date and time, with or without microseconds and offset; naive means UTC. Aware, in UTC."""
    if not _TIMESTAMP.fullmatch(text.strip()):
        raise ValueError(f"not an ISO-8601 date and time: {text!r}")
    return _aware(dt.datetime.fromisoformat(text.strip())).astimezone(UTC)


# ---- ledger mode (local, self-hosted) ----


def _check_with_ledger(
    ledger: SubmissionLedger,
    settings: ChallengeSettings,
    participant: str,
    now: dt.datetime,
    switched_off: str,
    label: str,
) -> RuleDecision:
    if switched_off:
        phase = _latest_started_phase(settings, now)
        reservation = ledger.reserve(participant, phase.number, now, _limits(settings), counted=False, label=label)
        return RuleDecision(False, f"Submission rules not checked: {switched_off}; recorded, not counted.", reservation)
    phase = _open_phase(settings, now)
    try:
        reservation = ledger.reserve(participant, phase.number, now, _limits(settings), label=label)
    except LimitReached as refusal:
        raise _limit_error(settings, phase, now, refusal) from None
    summary = _summary(settings, phase, now, reservation.day_count, reservation.total_count)
    return RuleDecision(True, f"{summary} (ledger {ledger.path})", reservation)


def _open_phase(settings: ChallengeSettings, now: dt.datetime) -> Phase:
    """The phase taking submissions at ``now``; refused with when to submit when none is."""
    phase = settings.phase_at(now)
    if phase is not None:
        return phase
    first = settings.phases[0]
    if now < first.start:
        raise SubmissionError(f"{first.name} has not started; submit from {_show(first.start, settings)}.")
    raise _deadline_error(_latest_started_phase(settings, now), now, settings)


def _latest_started_phase(settings: ChallengeSettings, moment: dt.datetime) -> Phase:
    started = [phase for phase in settings.phases if phase.start <= moment]
    return started[-1] if started else settings.phases[0]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user without a passwd entry
        return f"uid-{os.getuid()}"


# ---- the rules and their messages ----


def refuse_after_deadline(phase: Phase, submitted_at: dt.datetime, settings: ChallengeSettings) -> None:
    """SubmissionError unless ``submitted_at`` is strictly before the phase's deadline."""
    if not phase.accepts(submitted_at):
        raise _deadline_error(phase, submitted_at, settings)


def _deadline_error(phase: Phase, submitted_at: dt.datetime, settings: ChallengeSettings) -> SubmissionError:
    following = _next_phase(settings, phase)
    then = (
        f"submit to {following.name} from {_show(following.start, settings)}"
        if following is not None
        else "no more submissions are accepted"
    )
    return SubmissionError(
        f"This submission was made at {_show(submitted_at, settings)}, at or after the deadline of {phase.name}, "
        f"{_show(phase.deadline, settings)}; {then}."
    )


def _limits(settings: ChallengeSettings) -> SubmissionLimits:
    return SubmissionLimits(settings.max_submissions_per_day, settings.max_submissions, settings.time_zone)


def _limit_error(
    settings: ChallengeSettings, phase: Phase, submitted_at: dt.datetime, refusal: LimitReached
) -> SubmissionError:
    if refusal.kind == "total":
        return SubmissionError(
            f"You have made {refusal.count} submissions in {phase.name}, its limit (failed submissions do not "
            f"count); {phase.name} accepts no more submissions from you."
        )
    day_start, next_day = local_day_bounds(submitted_at, settings.time_zone)
    if next_day >= phase.deadline:
        then = f"{phase.name} closes at {_show(phase.deadline, settings)}, before that day"
    else:
        then = f"submit again from {_show(next_day, settings)}"
    return SubmissionError(
        f"You have made {refusal.count} submissions on {day_start:%Y-%m-%d} ({zone_label(settings)}), "
        f"the daily limit; {then}."
    )


def _summary(settings: ChallengeSettings, phase: Phase, submitted_at: dt.datetime, on_day: int, total: int) -> str:
    day = submitted_at.astimezone(settings.time_zone)
    return (
        f"{phase.name}, submission {on_day} of {settings.max_submissions_per_day} on {day:%Y-%m-%d} "
        f"({zone_label(settings)}), {total} of {settings.max_submissions} in total; "
        f"deadline {phase.deadline:{_TIME_FORMAT}} {zone_label(settings)}"
    )


def _next_phase(settings: ChallengeSettings, phase: Phase) -> Phase | None:
    later = [other for other in settings.phases if other.number > phase.number]
    return later[0] if later else None


def zone_label(settings: ChallengeSettings) -> str:
    """ "Moscow time" for Europe/Moscow; "UTC" for UTC."""
    key = getattr(settings.time_zone, "key", str(settings.time_zone))
    city = key.rsplit("/", 1)[-1].replace("_", " ")
    return city if city.upper() in ("UTC", "GMT") else f"{city} time"


def _show(moment: dt.datetime, settings: ChallengeSettings) -> str:
    """Local time and UTC: '2019-03-11 00:00:00 Moscow time (2019-03-10 21:00:00 UTC)'."""
    local = moment.astimezone(settings.time_zone)
    return f"{local:{_TIME_FORMAT}} {zone_label(settings)} ({moment.astimezone(UTC):{_TIME_FORMAT}} UTC)"


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
