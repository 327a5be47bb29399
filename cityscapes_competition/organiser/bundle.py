"""Build the competition bundles: ``dist/codalab_bundle.zip`` (CodaLab v1.5) and ``dist/codabench_bundle.zip``.

``python -m cityscapes_competition bundle --check`` (``make check-settings``) checks challenge.yaml
as the build does (both documents against their platform's rules, the pages) and prints what the bundles will
say: the phases in local time and UTC, the limits, each platform's time limit, the image, the leaderboard,
the warnings. It writes nothing; ``--yaml-only`` also refreshes the tracked competition.yaml,
which every build refreshes too.

``python -m cityscapes_competition bundle [--data DIR] [--out dist]`` (``make bundle``). DIR is a build of
``cityscapes_competition.organiser.competition_data``; without ``--data`` the synthetic default is built (or reused) in
``data/competition``. Each bundle holds its competition.yaml (made from challenge.yaml and checked against the
platform's rules before anything is written), the logo, the html pages and these zips:

- ``ingestion_program.zip``, ``scoring_program.zip``: ``ingestion.py``/``score.py``, the program's ``metadata``
  and the package ``cityscapes_competition/`` beside them (the entry points look for it there), so the programs
  need nothing from the image but Python and the pinned dependencies.
- ``input_data.zip`` (leftImg8bit/), ``reference_data.zip`` (gtFine/, disparity/, camera/, reference index).
- ``starting_kit.zip``: starting_kit/, baseline_submission/, the package, tools/train_baseline.py,
  requirements.lock and sample_data/ (the layout of the repository, so the kit's README and checker work as is).
- Codabench only: ``baseline_submission.zip`` (``metadata`` and ``model.keras`` at its root, as participants zip
  theirs), the task's solution, so the organiser can submit it to check the queue before publishing.

Each bundle is for its platform only: Codabench refuses the CodaLab v1.5 bundle on purpose (platforms.py), and
the pages differ (where files and the submit form are, phase migration, Codabench's fact sheet). The build warns
while every deadline of challenge.yaml is in the past.

Big data can be uploaded once to the platform as datasets and named by key instead (``--input-data-key``,
``--reference-data-key`` for CodaLab, ``--codabench-input-data-key``, ``--codabench-reference-data-key``):
then that zip is left out of the bundle. PNG and model files are stored, not compressed again. Every zip is
written under a temporary name beside its target and renamed into place, and its entries have fixed
timestamps, so the same inputs give the same bundles.

The competition image is the repository's ``Dockerfile`` (Python 3.11 and requirements.lock, nothing else):
``docker build --platform linux/amd64 -t ACCOUNT/cityscapes-competition:1.0 .``, ``docker push`` it, and set
``docker_image`` in challenge.yaml to that name. Codabench's default queue stops runs after 600 s; for longer
runs, create a queue (Codabench: Resources > Queue management), start workers on it with the platform's own
compute-worker image (``codalab/competitions-v2-compute-worker``, its ``.env`` holding the queue's
``BROKER_URL``; ``USE_GPU=true`` on GPU machines) and set ``codabench_queue`` to the queue's vhost.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..core.atomic import atomic_stream, write_text_atomic
from ..core.challenge import ChallengeSettings, FactSheetQuestion, Phase, load_challenge
from ..core.errors import ReferenceDataError
from .codabench import check_codabench, codabench_document, codabench_time_limit
from .codalab import CODALAB_REQUIRED_PAGES, check_codalab, codalab_document
from .competition_pages import render_pages
from .platforms import (
    CODABENCH_PLATFORM,
    CODALAB_PLATFORM,
    COMPETITION_YAML,
    INGESTION_PROGRAM,
    INPUT_DATA,
    LOGO,
    REFERENCE_DATA,
    SCORING_PROGRAM,
    SOLUTION,
    STARTING_KIT,
    BundleLayout,
    default_layout,
    docker_image_warnings,
    is_uuid,
    past_deadline_warnings,
    render_yaml,
    to_utc,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_NAME = Path(__file__).resolve().parents[1].name
DEFAULT_DATA = REPO_ROOT / "data" / "competition"
DEFAULT_OUT = REPO_ROOT / "dist"
COMMITTED_YAML = REPO_ROOT / COMPETITION_YAML  # the CodaLab v1.5 document, committed for organisers to read
CODALAB_BUNDLE = "codalab_bundle.zip"
CODABENCH_BUNDLE = "codabench_bundle.zip"
DATA_MANIFEST = "competition_data.json"  # competition_data.MANIFEST_NAME: written last by a complete build
DATA_FOLDERS = ("input_data", "reference_data", "sample_data")
STARTING_KIT_FILES = ("tools/train_baseline.py", "requirements.lock")  # beside the folders the kit holds whole
STORED_SUFFIXES = frozenset({".png", ".h5", ".hdf5", ".keras", ".zip", ".jpg", ".jpeg", ".gz"})  # compressed already
LARGE_BUNDLE_BYTES = 300 * 1000**2
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # as challenge.yaml writes local times
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: reproducible zips
_SKIPPED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".DS_Store"})
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})
_PAGE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PAGES_SOURCE = Path(__file__).with_name("competition_pages.py")
# What each program's entry point imports (test_package_layout proves it: scoring and ingestion import only
# core and png): the program zips carry these subpackages and the package's top files, nothing else.
PROGRAM_SUBPACKAGES = {
    INGESTION_PROGRAM: ("core", "png", "ingestion"),
    SCORING_PROGRAM: ("core", "png", "scoring"),
}
_PACKAGE_TOP_FILES = ("__init__.py", "challenge.yaml")  # for a program: not cli.py, which reaches everything
_DATA_FIX = (
    "Build it with 'python -m cityscapes_competition data --out DIR' (add --cityscapes ROOT "
    "for the real Cityscapes data), or leave --data out to build the synthetic default."
)
_KEY_FIX = "Pass the key (a UUID) the platform shows for the zip you uploaded as a dataset, or leave the option out."


@dataclass(frozen=True)
class DatasetKeys:
    """Keys of data zips uploaded to one platform beforehand; None: the zip goes into the bundle."""

    input_data: str | None = None
    reference_data: str | None = None


@dataclass(frozen=True)
class FileEntry:
    arcname: str  # name inside the zip, '/'-separated
    path: Path


@dataclass(frozen=True)
class Part:
    """One zip inside a bundle."""

    name: str
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class DataFolders:
    input_data: Path
    reference_data: Path
    sample_data: Path


@dataclass(frozen=True)
class BundlePlan:
    platform: str
    path: Path
    yaml_text: str
    logo: Path
    pages: Mapping[str, str]  # file name in the bundle -> html
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class BuiltBundle:
    platform: str
    path: Path
    size: int
    part_sizes: Mapping[str, int]  # zip name -> bytes


@dataclass(frozen=True)
class BundleReport:
    bundles: tuple[BuiltBundle, ...]
    warnings: tuple[str, ...]


# ----------------------------------------------------------------------------------------------- inputs


def competition_data_folders(data: Path) -> DataFolders:
    """The three folders of a complete competition_data build."""
    if not (data / DATA_MANIFEST).is_file():
        raise ReferenceDataError(
            f"is not a complete competition data build (it holds no {DATA_MANIFEST})", data, _DATA_FIX
        )
    folders = [data / name for name in DATA_FOLDERS]
    for folder in folders:
        if not folder.is_dir():
            raise ReferenceDataError(f"has no {folder.name}/ folder", data, _DATA_FIX)
    return DataFolders(*folders)


def checked_pages(pages: Mapping[str, str]) -> dict[str, str]:
    """The rendered pages, if every page the platforms require is there and none is empty."""
    for name in CODALAB_REQUIRED_PAGES:
        if name not in pages:
            raise ReferenceDataError(
                f"render_pages gave no '{name}' page; CodaLab v1.5 requires {', '.join(CODALAB_REQUIRED_PAGES)}",
                _PAGES_SOURCE,
                f"Add '{name}' to PAGE_NAMES and its template page_templates/{name}.html.",
            )
    for name, html in pages.items():
        if not _PAGE_NAME.fullmatch(name):
            raise ReferenceDataError(
                f"render_pages gave a page named {name!r}", _PAGES_SOURCE, "Name pages in lower case: a-z, 0-9, _."
            )
        if not isinstance(html, str) or not html.strip():
            raise ReferenceDataError(
                f"the page '{name}' is empty, and Codabench refuses empty pages",
                _PAGES_SOURCE,
                f"Fill in page_templates/{name}.html.",
            )
    return dict(pages)


def checked_keys(keys: DatasetKeys, option_prefix: str) -> DatasetKeys:
    for field, value in (("input-data", keys.input_data), ("reference-data", keys.reference_data)):
        if value is not None and not is_uuid(value):
            raise ReferenceDataError(f"--{option_prefix}{field}-key {value!r} is not a dataset key", None, _KEY_FIX)
    return keys


def tree_files(root: Path, prefix: str = "") -> tuple[FileEntry, ...]:
    """Every file under ``root`` (caches left out), sorted, named ``prefix`` + its path relative to ``root``."""
    if not root.is_dir():
        raise ReferenceDataError("is missing", root, "Restore it from the repository.")
    entries = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_dir() or _SKIPPED_NAMES.intersection(relative.parts) or path.suffix in _SKIPPED_SUFFIXES:
            continue
        entries.append(FileEntry(prefix + relative.as_posix(), path))
    return tuple(entries)


def package_files(
    repo: Path, settings: ChallengeSettings, subpackages: tuple[str, ...] | None = None
) -> tuple[FileEntry, ...]:
    """The package, carrying the challenge.yaml the bundle's documents were made from; with ``subpackages``,
    only those and the package's top files (a program's share)."""
    files = tree_files(repo / PACKAGE_NAME, f"{PACKAGE_NAME}/")
    if subpackages is not None:
        kept = {f"{PACKAGE_NAME}/{name}" for name in _PACKAGE_TOP_FILES}
        prefixes = tuple(f"{PACKAGE_NAME}/{name}/" for name in subpackages)
        files = tuple(entry for entry in files if entry.arcname in kept or entry.arcname.startswith(prefixes))
    challenge = f"{PACKAGE_NAME}/challenge.yaml"
    return tuple(FileEntry(challenge, settings.source) if entry.arcname == challenge else entry for entry in files)


def program_part(name: str, folder: Path, package: tuple[FileEntry, ...]) -> Part:
    """A program zip: the folder's files (entry point and metadata) with the package beside them."""
    metadata = folder / "metadata"
    try:
        command = (yaml.safe_load(metadata.read_text(encoding="utf-8")) or {}).get("command")
    except (OSError, yaml.YAMLError, AttributeError):
        command = None
    if not isinstance(command, str) or not command.strip():
        raise ReferenceDataError("has no 'command:' line", metadata, "Restore it from the repository.")
    return Part(name, tree_files(folder) + package)


def bundle_parts(repo: Path, data: DataFolders, settings: ChallengeSettings) -> dict[str, Part]:
    package = package_files(repo, settings)
    kit = (
        tree_files(repo / "starting_kit", "starting_kit/")
        + tree_files(repo / "baseline_submission", "baseline_submission/")
        + package
        + tuple(FileEntry(name, repo / name) for name in STARTING_KIT_FILES)
        + tree_files(data.sample_data, "sample_data/")
    )
    return {
        **{
            program: program_part(program, repo / program.removesuffix(".zip"), package_files(repo, settings, parts))
            for program, parts in PROGRAM_SUBPACKAGES.items()
        },
        INPUT_DATA: Part(INPUT_DATA, tree_files(data.input_data)),
        REFERENCE_DATA: Part(REFERENCE_DATA, tree_files(data.reference_data)),
        STARTING_KIT: Part(STARTING_KIT, kit),
    }


def solution_part(repo: Path) -> Part:
    """The baseline as Codabench's task solution: its files at the zip's root, as a participant submits them."""
    return Part(SOLUTION, tree_files(repo / "baseline_submission"))


# ------------------------------------------------------------------------------------------------ plans


def layout_for(pages: Mapping[str, str], keys: DatasetKeys) -> BundleLayout:
    layout = default_layout(list(pages))
    return BundleLayout(
        pages=layout.pages,
        input_data=keys.input_data or INPUT_DATA,
        reference_data=keys.reference_data or REFERENCE_DATA,
    )


def bundle_plan(
    platform: str,
    path: Path,
    document: dict,
    layout: BundleLayout,
    pages: Mapping[str, str],
    parts: Mapping[str, Part],
    logo: Path,
) -> BundlePlan:
    included = tuple(
        part
        for name, part in parts.items()
        if name not in (INPUT_DATA, REFERENCE_DATA) or name in (layout.input_data, layout.reference_data)
    )
    return BundlePlan(
        platform=platform,
        path=path,
        yaml_text=render_yaml(document, platform),
        logo=logo,
        pages={layout.pages[name]: html for name, html in pages.items()},
        parts=included,
    )


def plan_members(plan: BundlePlan) -> list[str]:
    return [COMPETITION_YAML, LOGO, *plan.pages, *(part.name for part in plan.parts)]


def logo_path() -> Path:
    from .competition_pages import LOGO_PATH

    if not LOGO_PATH.is_file():
        raise ReferenceDataError("is missing", LOGO_PATH, "Draw it again with tools/make_logo.py.")
    return LOGO_PATH


def layout_members(layout: BundleLayout, *, solution: bool) -> list[str]:
    """The names a bundle of this layout holds, before its zips are written (data named by key are not in it)."""
    parts = [layout.ingestion_program, layout.scoring_program, layout.input_data, layout.reference_data]
    return [COMPETITION_YAML, layout.logo, *layout.pages.values(), *parts, layout.starting_kit] + (
        [layout.solution] if solution else []
    )


# ------------------------------------------------------------------------------------------------ check


def check_settings(settings: ChallengeSettings, now: dt.datetime) -> tuple[str, ...]:
    """What the build checks before it needs any data (the pages, both documents against their platform's rules);
    returns the build's warnings. Nothing is written."""
    codalab_layout = layout_for(checked_pages(render_pages(settings, CODALAB_PLATFORM)), DatasetKeys())
    codalab_text = render_yaml(codalab_document(settings, codalab_layout), CODALAB_PLATFORM)
    check_codalab(yaml.full_load(codalab_text), layout_members(codalab_layout, solution=False), settings.source)
    limit, _ = codabench_time_limit(settings)
    capped = dataclasses.replace(settings, execution_time_limit=limit)  # as codabench_challenge gives its programs
    codabench_layout = layout_for(checked_pages(render_pages(capped, CODABENCH_PLATFORM)), DatasetKeys())
    codabench_doc = codabench_document(settings, codabench_layout)
    codabench_text = render_yaml(codabench_doc.document, CODABENCH_PLATFORM)
    check_codabench(yaml.safe_load(codabench_text), layout_members(codabench_layout, solution=True), settings.source)
    return docker_image_warnings(settings) + codabench_doc.warnings + past_deadline_warnings(settings, now)


def settings_lines(settings: ChallengeSettings, now: dt.datetime) -> list[str]:
    """The settings as the bundles will state them, for the organiser to read before uploading."""
    zone = settings.time_zone.key
    rules = (
        "checked by the scoring program too"
        if settings.enforce_submission_rules
        else "NOT checked by the scoring program (enforce_submission_rules: false)"
    )
    rows = [
        ("title", settings.title),
        ("phases", f"local time in {zone} (then UTC); a submission must be made before its deadline's second"),
        *(("", phase_line(settings, phase, now)) for phase in settings.phases),
        (
            "submissions",
            f"{settings.max_submissions_per_day} a day ({zone} days), {settings.max_submissions} in all, "
            f"per participant and phase; {rules}",
        ),
        ("time limit", time_limit_line(settings)),
        ("docker image", settings.docker_image),
        (
            "leaderboard",
            f"'{settings.leaderboard_title}', ranked by {settings.columns[0].key}: "
            + ", ".join(f"{column.key} ({column.label})" for column in settings.columns),
        ),
        (
            "migration",
            "each participant's last submission of a phase re-runs in the next"
            if settings.migrate_to_next_phase
            else "off (migrate_to_next_phase: false)",
        ),
        ("contact", settings.contact_email or "none (contact_email)"),
        ("fact sheet", fact_sheet_line(settings)),
    ]
    return [f"Settings: {settings.source}"] + [f"  {label:<14}{text}".rstrip() for label, text in rows]


def phase_line(settings: ChallengeSettings, phase: Phase, now: dt.datetime) -> str:
    local, form = settings.local, _TIME_FORMAT
    when = f"{local(phase.start):{form}} to {local(phase.deadline):{form}}"
    when_utc = f"{to_utc(phase.start):{form}} to {to_utc(phase.deadline):{form}} UTC"
    if phase.deadline <= now:
        state = "ended"
    elif phase.start <= now:
        state = "open now"
    else:
        state = (
            f"opens in {(phase.start - now).days} days" if phase.start - now >= dt.timedelta(days=2) else "opens soon"
        )
    return f"{phase.number} {phase.name}: {when} ({when_utc}), {state}"


def time_limit_line(settings: ChallengeSettings) -> str:
    limit, _ = codabench_time_limit(settings)
    queue = f"queue {settings.codabench_queue}" if settings.codabench_queue else "its default queue"
    return (
        f"per step (ingestion, then scoring): CodaLab v1.5 {settings.execution_time_limit} s, "
        f"Codabench {limit} s ({queue})"
    )


def fact_sheet_line(settings: ChallengeSettings) -> str:
    if not settings.fact_sheet:
        return "none"
    questions = [
        f"{question.key} ({', '.join(flag for flag, on in _question_flags(question) if on)})"
        for question in settings.fact_sheet
    ]
    return "Codabench asks " + ", ".join(questions)


def _question_flags(question: FactSheetQuestion) -> tuple[tuple[str, bool], ...]:
    return ((question.kind, True), ("required", question.required), ("on the leaderboard", question.on_leaderboard))


def committed_yaml_line(settings: ChallengeSettings, path: Path | None = None) -> str:
    path = path or COMMITTED_YAML
    current = path.is_file() and path.read_text(encoding="utf-8") == committed_yaml_text(settings)
    if current:
        return f"{path}: up to date"
    return f"{path}: out of date (make bundle, or --yaml-only, refreshes it; the test suite fails until then)"


# ------------------------------------------------------------------------------------------------ build


def build_bundles(
    data: Path,
    out: Path,
    *,
    settings: ChallengeSettings | None = None,
    pages: Mapping[str, str] | None = None,
    codalab_keys: DatasetKeys = DatasetKeys(),
    codabench_keys: DatasetKeys = DatasetKeys(),
    repo: Path = REPO_ROOT,
    say: Callable[[str], None] | None = None,
    now: dt.datetime | None = None,
) -> BundleReport:
    """Check both competition.yaml documents, then write OUT/codalab_bundle.zip and OUT/codabench_bundle.zip.

    ``pages``: the same html pages for both platforms instead of each platform's own (render_pages)."""
    settings = settings or load_challenge()
    codalab_pages = checked_pages(pages if pages is not None else render_pages(settings, CODALAB_PLATFORM))
    codalab_keys = checked_keys(codalab_keys, "")
    codabench_keys = checked_keys(codabench_keys, "codabench-")
    parts = bundle_parts(repo, competition_data_folders(data), settings)
    logo = logo_path()

    codalab_layout = layout_for(codalab_pages, codalab_keys)
    codalab = bundle_plan(
        CODALAB_PLATFORM,
        out / CODALAB_BUNDLE,
        codalab_document(settings, codalab_layout),
        codalab_layout,
        codalab_pages,
        parts,
        logo,
    )
    check_codalab(yaml.full_load(codalab.yaml_text), plan_members(codalab), settings.source)

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".codabench-settings-", dir=out) as scratch:
        # On Codabench's default queue the programs, pages and yaml must all plan with the 600 s it allows.
        codabench_settings = codabench_challenge(settings, Path(scratch))
        codabench_pages = checked_pages(
            pages if pages is not None else render_pages(codabench_settings, CODABENCH_PLATFORM)
        )
        codabench_parts = bundle_parts(repo, competition_data_folders(data), codabench_settings)
        codabench_parts[SOLUTION] = solution_part(repo)
        codabench_layout = layout_for(codabench_pages, codabench_keys)
        codabench_doc = codabench_document(settings, codabench_layout)
        codabench = bundle_plan(
            CODABENCH_PLATFORM,
            out / CODABENCH_BUNDLE,
            codabench_doc.document,
            codabench_layout,
            codabench_pages,
            codabench_parts,
            logo,
        )
        check_codabench(yaml.safe_load(codabench.yaml_text), plan_members(codabench), settings.source)
        built = tuple(write_bundle(plan, say) for plan in (codalab, codabench))
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    warnings = docker_image_warnings(settings) + codabench_doc.warnings + past_deadline_warnings(settings, moment)
    return BundleReport(built, warnings)


_TIME_LIMIT_LINE = re.compile(r"^execution_time_limit:[^\n#]*", re.MULTILINE)


def codabench_challenge(settings: ChallengeSettings, scratch: Path) -> ChallengeSettings:
    """The settings as Codabench will apply them: the time limit capped on the default queue (a copy in scratch)."""
    limit, _ = codabench_time_limit(settings)
    if limit == settings.execution_time_limit:
        return settings
    text = settings.source.read_text(encoding="utf-8")
    capped, replaced = _TIME_LIMIT_LINE.subn(f"execution_time_limit: {limit}", text, count=1)
    if replaced != 1:
        raise ReferenceDataError(
            "execution_time_limit must be a top-level line of its own",
            settings.source,
            "Write it as in the repository.",
        )
    copy = scratch / "challenge.yaml"
    copy.write_text(capped, encoding="utf-8")
    return load_challenge(copy)


def write_bundle(plan: BundlePlan, say: Callable[[str], None] | None = None) -> BuiltBundle:
    """The bundle under a temporary name in its folder, renamed into place when complete."""
    sizes: dict[str, int] = {}
    try:
        with atomic_stream(plan.path) as stream, zipfile.ZipFile(stream, "w") as bundle:
            write_bytes(bundle, COMPETITION_YAML, plan.yaml_text.encode("utf-8"))
            write_file(bundle, FileEntry(LOGO, plan.logo))
            for file_name, html in plan.pages.items():
                write_bytes(bundle, file_name, html.encode("utf-8"))
            for part in plan.parts:
                if say:
                    say(f"  {plan.platform}: writing {part.name} ({len(part.files)} files) ...")
                sizes[part.name] = write_part(bundle, part)
    except OSError as error:
        raise ReferenceDataError(
            f"cannot be written ({error.strerror or error})", plan.path, "Free some disk space or choose another --out."
        ) from None
    return BuiltBundle(plan.platform, plan.path, plan.path.stat().st_size, sizes)


def write_part(bundle: zipfile.ZipFile, part: Part) -> int:
    """A zip written straight into the bundle (no copy on disk); returns its size."""
    info = zip_info(part.name, zipfile.ZIP_STORED)
    with bundle.open(info, "w", force_zip64=True) as stream, zipfile.ZipFile(stream, "w") as inner:
        for entry in part.files:
            write_file(inner, entry)
    return bundle.getinfo(part.name).file_size


def write_file(archive: zipfile.ZipFile, entry: FileEntry) -> None:
    stored = entry.path.suffix.lower() in STORED_SUFFIXES
    info = zip_info(entry.arcname, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    info.file_size = entry.path.stat().st_size
    with entry.path.open("rb") as source, archive.open(info, "w") as target:
        shutil.copyfileobj(source, target, 1 << 20)


def write_bytes(archive: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    archive.writestr(zip_info(arcname, zipfile.ZIP_DEFLATED), data)


def zip_info(arcname: str, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


# ----------------------------------------------------------------------------------- committed yaml, CLI


def committed_yaml_text(settings: ChallengeSettings) -> str:
    """competition.yaml at the repository root: the CodaLab v1.5 document of a bundle holding all its zips."""
    from .competition_pages import PAGE_NAMES

    return render_yaml(codalab_document(settings, default_layout(PAGE_NAMES)), CODALAB_PLATFORM)


def write_committed_yaml(settings: ChallengeSettings, path: Path | None = None) -> bool:
    """Refresh the committed competition.yaml; True if it changed."""
    path = path or COMMITTED_YAML
    text = committed_yaml_text(settings)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text_atomic(path, text)
    return True


def size_text(size: int) -> str:
    for unit, scale in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def report_lines(report: BundleReport) -> Iterable[str]:
    for bundle in report.bundles:
        yield f"{bundle.platform} bundle: {bundle.path} ({size_text(bundle.size)})"
        for name, size in bundle.part_sizes.items():
            yield f"  {name:<22}{size_text(size):>12}"
    if any(bundle.size > LARGE_BUNDLE_BYTES for bundle in report.bundles):
        yield (
            "Large bundles upload and unpack slowly (CodaLab v1.5 reads each zip into memory). You may upload "
            f"{INPUT_DATA} and {REFERENCE_DATA} once as datasets instead (take them out with 'unzip "
            f"{report.bundles[0].path} {INPUT_DATA} {REFERENCE_DATA}') and build again with their keys: "
            "--input-data-key/--reference-data-key (CodaLab), --codabench-input-data-key/"
            "--codabench-reference-data-key (Codabench)."
        )


_UPLOAD = {
    CODABENCH_PLATFORM: "Codabench: Benchmarks > Management > Upload",
    CODALAB_PLATFORM: "CodaLab v1.5 (no submissions since the end of 2025): create a competition from it",
}


def upload_lines(report: BundleReport) -> list[str]:
    """Where each bundle goes: each is made for its own platform (Codabench refuses the other on purpose)."""
    lines = ["Upload each bundle to its own platform (README, 'Building and uploading the bundle'):"]
    return lines + [f"  {bundle.path.name} -> {_UPLOAD[bundle.platform]}" for bundle in report.bundles]


def default_competition_data() -> Path:
    """The synthetic default competition data in data/competition, built once and reused."""
    from .competition_data import build_competition_data

    data = build_competition_data(DEFAULT_DATA, progress=True)
    for warning in data.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return data.out


def main(argv: list[str] | None = None) -> int:
    """Check challenge.yaml, then build dist/codalab_bundle.zip and dist/codabench_bundle.zip (--check: only check)."""
    from ..core.errors import guarded

    parser = argparse.ArgumentParser(prog="python -m cityscapes_competition bundle", description=main.__doc__)
    parser.add_argument(
        "--data", type=Path, help="a competition_data build (default: the synthetic one in data/competition)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the bundles go (default: dist)")
    for platform, prefix in (("CodaLab v1.5", ""), ("Codabench", "codabench-")):
        for kind in ("input", "reference"):
            parser.add_argument(
                f"--{prefix}{kind}-data-key",
                metavar="KEY",
                help=f"{platform}: key of the {kind}_data.zip uploaded as a dataset; the zip is left out of the bundle",
            )
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--check",
        action="store_true",
        help="check challenge.yaml (and --data and the keys, if given) and print what the bundles will say; "
        "writes nothing",
    )
    only.add_argument(
        "--yaml-only", action="store_true", help=f"check, then refresh {COMMITTED_YAML.name} at the repository root"
    )
    args = parser.parse_args(argv)

    def run() -> None:
        # Everything that needs no data is checked first: a mistake must not wait for the data build.
        settings, now = load_challenge(), dt.datetime.now(dt.UTC)
        warnings = check_settings(settings, now)
        codalab_keys = checked_keys(DatasetKeys(args.input_data_key, args.reference_data_key), "")
        codabench_keys = checked_keys(
            DatasetKeys(args.codabench_input_data_key, args.codabench_reference_data_key), "codabench-"
        )
        if args.check and args.data is not None:
            competition_data_folders(args.data)
        for line in settings_lines(settings, now):
            print(line)
        if args.check:
            print(committed_yaml_line(settings))
            say_warnings(warnings)
            print(check_verdict(settings, warnings))
            return
        if write_committed_yaml(settings):
            print(f"Updated {COMMITTED_YAML} from {settings.source}")
        else:
            print(f"{COMMITTED_YAML}: up to date")
        if args.yaml_only:
            say_warnings(warnings)
            return
        data = args.data if args.data is not None else default_competition_data()
        print(f"Building the bundles from {data} into {args.out} ...", flush=True)
        report = build_bundles(
            data,
            args.out,
            settings=settings,
            codalab_keys=codalab_keys,
            codabench_keys=codabench_keys,
            say=lambda line: print(line, flush=True),
        )
        for line in [*report_lines(report), *upload_lines(report)]:
            print(line)
        say_warnings(report.warnings)

    return guarded(run, "bundle")


def check_verdict(settings: ChallengeSettings, warnings: tuple[str, ...]) -> str:
    noted = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''} above" if warnings else "no warnings"
    return f"No mistakes in {settings.source} ({noted}); nothing was written."


def say_warnings(warnings: Iterable[str]) -> None:
    sys.stdout.flush()  # after the lines they are about, in a terminal too
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
