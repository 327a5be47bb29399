"""What the two platforms' competition.yaml documents share: the bundle's contents, dates, YAML, the checker.

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
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..core.challenge import SETTINGS_FIX, ChallengeSettings
from ..core.errors import ReferenceDataError

# codalab/competitions-v1-compute-worker, worker.py, docker_image_clean: what it deletes from an image name.
CODALAB_WORKER_STRIPPED = re.compile(r"[^0-9a-zA-Z/.:-]+")


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
FIX = SETTINGS_FIX
_STRUCTURE_FIX = (
    "The document is built in this file (codalab_document or codabench_document) from the names bundle.py puts "
    "in the bundle; keep to the keys and rules written down at the file's top, which come from the platforms' sources."
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


class Checker:
    """Collects nothing: the first broken rule raises one message naming the platform and the fix."""

    def __init__(self, platform: str, builder: Path, source: Path | None, fix: str):
        self.platform = platform
        self.builder = builder  # the module that builds the platform's document
        self.source = source
        self.fix = fix

    def fail(self, problem: str) -> ReferenceDataError:
        """A value made from challenge.yaml breaks a rule: the organiser corrects challenge.yaml."""
        return ReferenceDataError(f"the {self.platform} competition.yaml {problem}", self.source, self.fix)

    def fail_structure(self, problem: str) -> ReferenceDataError:
        """The document's shape breaks a rule: the code that builds it (the platform's module) is wrong."""
        return ReferenceDataError(f"the {self.platform} competition.yaml {problem}", self.builder, _STRUCTURE_FIX)

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
