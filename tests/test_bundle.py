"""The bundles: what they hold, their competition.yaml documents and the platforms' rules they are checked against."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import re
import uuid
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dateutil import parser as dateutil_parser

from cityscapes_competition import bundle as bundle_module
from cityscapes_competition.bundle import (
    CODABENCH_BUNDLE,
    CODALAB_BUNDLE,
    DatasetKeys,
    build_bundles,
    committed_yaml_text,
    main,
)
from cityscapes_competition.challenge import ChallengeSettings, Phase, load_challenge
from cityscapes_competition.competition_data import build_competition_data
from cityscapes_competition.competition_pages import render_pages
from cityscapes_competition.errors import ReferenceDataError
from cityscapes_competition.platform_yaml import (
    CODABENCH_DEFAULT_QUEUE_SECONDS,
    CODALAB_REQUIRED_PAGES,
    check_codabench,
    check_codalab,
    codabench_document,
    codalab_document,
    default_layout,
    render_yaml,
)
from conftest import REPO

TINY_SIZE = (256, 128)
QUEUE = "7f1c4a52-3c0e-4b7e-9a57-2f4b8f0e1d11"  # a vhost, as Codabench shows it
MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_competition_data(
        tmp_path_factory.mktemp("bundle") / "data",
        synthetic_count=2,
        synthetic_size=TINY_SIZE,
        sample_count=1,
        progress=False,
        workers=1,
    )
    return built.out


@pytest.fixture(scope="module")
def settings() -> ChallengeSettings:
    return load_challenge()


@pytest.fixture(scope="module")
def built(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build_bundles(data, out)
    return out


def members(archive_bytes: bytes) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        return {info.filename: info for info in archive.infolist()}


def read(bundle: Path, name: str) -> bytes:
    with zipfile.ZipFile(bundle) as archive:
        return archive.read(name)


def layout_members(settings: ChallengeSettings) -> list[str]:
    layout = default_layout(render_pages(settings))
    parts = [layout.ingestion_program, layout.scoring_program, layout.input_data, layout.reference_data]
    return ["competition.yaml", layout.logo, *layout.pages.values(), *parts, layout.starting_kit]


def codalab_yaml(settings: ChallengeSettings) -> dict:
    """The CodaLab v1.5 document as the platform reads it: from the rendered text."""
    return yaml.full_load(render_yaml(codalab_document(settings, default_layout(render_pages(settings))), "CodaLab"))


def codabench_yaml(settings: ChallengeSettings) -> dict:
    document = codabench_document(settings, default_layout(render_pages(settings))).document
    return yaml.safe_load(render_yaml(document, "Codabench"))


def codabench_reads(field: object) -> dt.datetime | None:
    """codabench src/apps/competitions/unpackers/utils.py, get_datetime (the server's time zone is UTC)."""
    if not field:
        return None
    if isinstance(field, dt.date):
        field = dt.datetime.combine(field, dt.time())
    elif not isinstance(field, dt.datetime):
        field = dateutil_parser.parse(field)
    return field.replace(tzinfo=dt.UTC)


def with_phases(settings: ChallengeSettings, *moments: tuple[str, str], zone: ZoneInfo = MOSCOW) -> ChallengeSettings:
    phases = tuple(
        Phase(number, f"Phase {number}", "", _local(start, zone), _local(deadline, zone))
        for number, (start, deadline) in enumerate(moments, 1)
    )
    return dataclasses.replace(settings, phases=phases, time_zone=zone)


def _local(text: str, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone)


# ------------------------------------------------------------------------------------------------ contents


def test_committed_competition_yaml_is_up_to_date(settings: ChallengeSettings) -> None:
    committed = (REPO / "competition.yaml").read_text(encoding="utf-8")
    assert committed == committed_yaml_text(settings), (
        "competition.yaml is out of date with cityscapes_competition/challenge.yaml: run "
        "'.venv/bin/python -m cityscapes_competition.bundle --yaml-only' (make bundle does it too)"
    )


def test_codalab_bundle_holds_what_its_yaml_names(built: Path) -> None:
    bundle = built / CODALAB_BUNDLE
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        definition = yaml.full_load(archive.read("competition.yaml"))
    assert [name for name in names if ".yaml" in name] == ["competition.yaml"]  # the parser takes the first
    assert definition["image"] in names
    assert all(definition["html"][page] in names for page in CODALAB_REQUIRED_PAGES)
    for phase in definition["phases"].values():
        for key in ("ingestion_program", "scoring_program", "input_data", "reference_data", "starting_kit"):
            assert phase[key] in names
    assert list(definition["leaderboard"]["columns"]) == [column.key for column in load_challenge().columns]


def test_codabench_bundle_holds_what_its_yaml_names(built: Path) -> None:
    bundle = built / CODABENCH_BUNDLE
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        definition = yaml.safe_load(archive.read("competition.yaml"))
    assert definition["version"] == 2
    assert {definition["image"], definition["terms"], *(page["file"] for page in definition["pages"])} <= set(names)
    task = definition["tasks"][0]
    assert {task[key] for key in ("ingestion_program", "scoring_program", "input_data", "reference_data")} <= set(names)
    assert [column["key"] for column in definition["leaderboards"][0]["columns"]] == [
        column.key for column in load_challenge().columns
    ]


@pytest.mark.parametrize(
    ("program", "entry"), [("scoring_program.zip", "score.py"), ("ingestion_program.zip", "ingestion.py")]
)
def test_program_zips_carry_the_package_beside_the_entry_point(built: Path, program: str, entry: str) -> None:
    files = members(read(built / CODALAB_BUNDLE, program))
    assert {"metadata", entry, "cityscapes_competition/__init__.py", "cityscapes_competition/challenge.yaml"} <= set(
        files
    )
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
    with zipfile.ZipFile(io.BytesIO(read(built / CODALAB_BUNDLE, program))) as archive:
        assert (
            archive.read("cityscapes_competition/challenge.yaml")
            == (REPO / "cityscapes_competition" / "challenge.yaml").read_bytes()
        )
        assert yaml.safe_load(archive.read("metadata"))["command"].startswith("python3 -I -u $")


def test_codabench_programs_and_pages_plan_with_the_default_queue_limit(built: Path) -> None:
    # challenge.yaml asks 3600 s; Codabench's default queue stops runs at 600 s, so its bundle says 600 everywhere.
    with zipfile.ZipFile(io.BytesIO(read(built / CODABENCH_BUNDLE, "ingestion_program.zip"))) as archive:
        packaged = yaml.safe_load(archive.read("cityscapes_competition/challenge.yaml"))
    assert packaged["execution_time_limit"] == 600
    with zipfile.ZipFile(built / CODABENCH_BUNDLE) as bundle:
        terms = [bundle.read(name).decode() for name in bundle.namelist() if "terms" in name]
    assert terms and "600 seconds" in terms[0] and "3600 seconds" not in terms[0]


def test_starting_kit_holds_checker_package_baseline_and_sample(built: Path) -> None:
    files = members(read(built / CODALAB_BUNDLE, "starting_kit.zip"))
    assert {
        "starting_kit/README.md",
        "starting_kit/check_submission.py",
        "baseline_submission/metadata",
        "baseline_submission/model.h5",
        "cityscapes_competition/submission_check.py",
        "requirements.lock",
        "tools/train_baseline.py",
    } <= set(files)
    assert any(name.startswith("sample_data/input_data/leftImg8bit/") for name in files)
    assert any(name.startswith("sample_data/reference_data/gtFine/") for name in files)


def test_compressed_files_are_stored_and_text_deflated(built: Path) -> None:
    bundle_files = members((built / CODALAB_BUNDLE).read_bytes())
    assert bundle_files["input_data.zip"].compress_type == zipfile.ZIP_STORED
    assert bundle_files["competition.yaml"].compress_type == zipfile.ZIP_DEFLATED
    for name, info in members(read(built / CODALAB_BUNDLE, "starting_kit.zip")).items():
        expected = zipfile.ZIP_STORED if name.endswith((".png", ".h5")) else zipfile.ZIP_DEFLATED
        assert info.compress_type == expected, name


def test_the_same_inputs_give_the_same_bundles(data: Path, built: Path, tmp_path: Path) -> None:
    build_bundles(data, tmp_path)
    for name in (CODALAB_BUNDLE, CODABENCH_BUNDLE):
        assert (
            hashlib.sha256((tmp_path / name).read_bytes()).digest()
            == hashlib.sha256((built / name).read_bytes()).digest()
        )


def test_a_failed_write_leaves_the_previous_bundle_and_no_temporary_file(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / CODALAB_BUNDLE).write_bytes(b"previous")

    def disk_full(bundle: zipfile.ZipFile, part: bundle_module.Part) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "write_part", disk_full)
    with pytest.raises(ReferenceDataError, match="No space left on device"):
        build_bundles(data, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [CODALAB_BUNDLE]
    assert (tmp_path / CODALAB_BUNDLE).read_bytes() == b"previous"


# -------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("where", ["top", "phase"])
def test_codalab_refuses_a_key_its_models_do_not_know(settings: ChallengeSettings, where: str) -> None:
    document = codalab_yaml(settings)
    (document if where == "top" else document["phases"][1])["submission_deadline"] = "tomorrow"
    with pytest.raises(ReferenceDataError) as refused:
        check_codalab(document, layout_members(settings), settings.source)
    message = str(refused.value)
    assert "submission_deadline" in message and "CodaLab v1.5" in message and "breaks the upload" in message
    assert "platform_yaml.py" in message  # the code that builds the document, not an organiser setting


def test_codabench_refuses_a_key_it_would_ignore(settings: ChallengeSettings) -> None:
    document = codabench_yaml(settings)
    document["phases"][0]["ends"] = document["phases"][0]["end"]
    with pytest.raises(ReferenceDataError, match=r"phases\[0\]\.ends.*silently ignored"):
        check_codabench(document, layout_members(settings), settings.source)


def test_codalab_refuses_a_missing_html_page(settings: ChallengeSettings) -> None:
    document = codalab_yaml(settings)
    del document["html"]["data"]
    with pytest.raises(ReferenceDataError, match="lacks the html page 'data'"):
        check_codalab(document, layout_members(settings), settings.source)


def test_a_missing_page_stops_the_build_before_anything_is_written(
    data: Path, settings: ChallengeSettings, tmp_path: Path
) -> None:
    pages = {name: html for name, html in render_pages(settings).items() if name != "data"}
    with pytest.raises(ReferenceDataError) as refused:
        build_bundles(data, tmp_path / "out", pages=pages)
    message = str(refused.value)
    assert "competition_pages.py" in message and "'data'" in message and "page_templates/data.html" in message
    assert not (tmp_path / "out").exists()


def test_a_page_file_missing_from_the_bundle_is_refused(settings: ChallengeSettings) -> None:
    files = [name for name in layout_members(settings) if name != "terms.html"]
    with pytest.raises(
        ReferenceDataError, match=re.escape("'terms.html' at 'html.terms', which is not a file of the bundle")
    ):
        check_codalab(codalab_yaml(settings), files, settings.source)


def test_codalab_refuses_a_second_yaml_file(settings: ChallengeSettings) -> None:
    with pytest.raises(ReferenceDataError, match=re.escape("only '.yaml' file")):
        check_codalab(codalab_yaml(settings), [*layout_members(settings), "notes.yaml"], settings.source)


def test_codabench_refuses_a_phase_starting_when_the_previous_ends(settings: ChallengeSettings) -> None:
    touching = with_phases(
        settings, ("2019-02-11 00:00:00", "2019-03-15 00:00:00"), ("2019-03-15 00:00:00", "2019-04-09 23:59:00")
    )
    check_codalab(codalab_yaml(touching), layout_members(touching), touching.source)  # fine for CodaLab
    with pytest.raises(ReferenceDataError, match="end strictly before the next starts"):
        check_codabench(codabench_yaml(touching), layout_members(touching), touching.source)


def test_incomplete_competition_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reference_data").mkdir()
    with pytest.raises(ReferenceDataError, match=r"competition_data\.json.*python -m cityscapes_competition"):
        build_bundles(tmp_path, tmp_path / "out")


# --------------------------------------------------------------------------------------- dates and limits


def test_dates_are_converted_from_the_challenge_time_zone_to_utc(settings: ChallengeSettings) -> None:
    utc = dt.UTC
    codalab = codalab_yaml(settings)
    assert codalab["phases"][1]["start_date"] == dt.datetime(2019, 2, 10, 21, 0, tzinfo=utc)  # 00:00 MSK
    assert codalab["phases"][2]["start_date"] == dt.datetime(2019, 3, 14, 21, 0, tzinfo=utc)
    assert codalab["end_date"] == dt.datetime(2019, 4, 9, 20, 59, tzinfo=utc)  # the last deadline, 23:59 MSK
    codabench = codabench_yaml(settings)
    assert [(codabench_reads(phase["start"]), codabench_reads(phase["end"])) for phase in codabench["phases"]] == [
        (dt.datetime(2019, 2, 10, 21, 0, tzinfo=utc), dt.datetime(2019, 3, 14, 20, 59, tzinfo=utc)),
        (dt.datetime(2019, 3, 14, 21, 0, tzinfo=utc), dt.datetime(2019, 4, 9, 20, 59, tzinfo=utc)),
    ]
    assert "+00:00" in render_yaml(codalab_document(settings, default_layout(["overview"])), "CodaLab")


def test_daylight_saving_time_is_converted_per_date(settings: ChallengeSettings) -> None:
    berlin = with_phases(
        settings,
        ("2024-03-01 00:00:00", "2024-03-30 12:00:00"),  # CET, UTC+1
        ("2024-04-01 00:00:00", "2024-10-31 12:00:00"),  # starts in CEST (UTC+2), ends in CET again
        zone=ZoneInfo("Europe/Berlin"),
    )
    phases = codabench_yaml(berlin)["phases"]
    assert codabench_reads(phases[0]["start"]) == dt.datetime(2024, 2, 29, 23, 0, tzinfo=dt.UTC)
    assert codabench_reads(phases[1]["start"]) == dt.datetime(2024, 3, 31, 22, 0, tzinfo=dt.UTC)
    assert codabench_reads(phases[1]["end"]) == dt.datetime(2024, 10, 31, 11, 0, tzinfo=dt.UTC)
    assert codalab_yaml(berlin)["phases"][2]["start_date"] == dt.datetime(2024, 3, 31, 22, 0, tzinfo=dt.UTC)


def test_codabench_refuses_an_unquoted_timestamp(settings: ChallengeSettings) -> None:
    document = codabench_yaml(settings)
    document["phases"][0]["start"] = dt.datetime(2019, 2, 10, 21, 0, tzinfo=dt.UTC)  # what an unquoted date loads as
    assert codabench_reads(document["phases"][0]["start"]) == dt.datetime(2019, 2, 10, 0, 0, tzinfo=dt.UTC)
    with pytest.raises(ReferenceDataError, match="keeps only its day"):
        check_codabench(document, layout_members(settings), settings.source)


def test_codabench_default_queue_caps_the_time_limit_with_a_warning(settings: ChallengeSettings) -> None:
    long_run = dataclasses.replace(settings, execution_time_limit=3600, codabench_queue=None)
    result = codabench_document(long_run, default_layout(render_pages(long_run)))
    assert {phase["execution_time_limit"] for phase in result.document["phases"]} == {CODABENCH_DEFAULT_QUEUE_SECONDS}
    assert "queue" not in result.document
    (warning,) = result.warnings
    assert "3600 s" in warning and "600 s" in warning and "codabench_queue" in warning
    assert codalab_yaml(long_run)["phases"][1]["execution_time_limit"] == 3600


def test_a_codabench_queue_keeps_the_time_limit(settings: ChallengeSettings) -> None:
    queued = dataclasses.replace(settings, execution_time_limit=3600, codabench_queue=QUEUE)
    result = codabench_document(queued, default_layout(render_pages(queued)))
    assert result.document["queue"] == QUEUE and not result.warnings
    assert {phase["execution_time_limit"] for phase in result.document["phases"]} == {3600}
    check_codabench(result.document, layout_members(queued), queued.source)


def test_a_codabench_queue_must_be_a_vhost(settings: ChallengeSettings) -> None:
    named = dataclasses.replace(settings, codabench_queue="my-gpu-queue")
    document = codabench_document(named, default_layout(render_pages(named))).document
    with pytest.raises(ReferenceDataError, match="vhost, a UUID"):
        check_codabench(document, layout_members(named), named.source)


# --------------------------------------------------------------------------------------------- dataset keys


def test_dataset_keys_replace_the_data_zips_of_one_platform(data: Path, tmp_path: Path) -> None:
    input_key, reference_key = str(uuid.uuid4()), str(uuid.uuid4())
    build_bundles(data, tmp_path, codalab_keys=DatasetKeys(input_key, reference_key))
    with zipfile.ZipFile(tmp_path / CODALAB_BUNDLE) as archive:
        names = archive.namelist()
        phase = yaml.full_load(archive.read("competition.yaml"))["phases"][1]
    assert (phase["input_data"], phase["reference_data"]) == (input_key, reference_key)
    assert "input_data.zip" not in names and "reference_data.zip" not in names
    assert {"input_data.zip", "reference_data.zip"} <= set(zipfile.ZipFile(tmp_path / CODABENCH_BUNDLE).namelist())


def test_a_dataset_key_must_be_a_uuid(data: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ReferenceDataError, match="--codabench-reference-data-key 'reference_data' is not a dataset key"
    ):
        build_bundles(data, tmp_path / "out", codabench_keys=DatasetKeys(reference_data="reference_data"))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ CLI and image


def test_cli_reports_the_sizes_and_the_warnings(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bundle_module, "COMMITTED_YAML", tmp_path / "competition.yaml")
    assert main(["--data", str(data), "--out", str(tmp_path / "dist")]) == 0
    captured = capsys.readouterr()
    assert re.search(r"CodaLab v1\.5 bundle: .*codalab_bundle\.zip \(\d+\.\d\d [kMG]B\)", captured.out)
    assert re.search(r"Codabench bundle: .*codabench_bundle\.zip", captured.out)
    assert re.search(r"reference_data\.zip +\d+\.\d\d [kMG]B", captured.out)
    assert "warning:" in captured.err and "600 s" in captured.err
    assert (tmp_path / "competition.yaml").read_text() == committed_yaml_text(load_challenge())


def test_cli_turns_an_organiser_mistake_into_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bundle_module, "COMMITTED_YAML", tmp_path / "competition.yaml")
    assert main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "dist")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "competition_data.json" in error


def test_dockerfile_installs_the_lock_and_sets_nothing_the_platforms_override() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[0] == "FROM" and "python:3.11-slim" in dockerfile
    assert not {"ENTRYPOINT", "CMD", "WORKDIR", "USER", "ENV"} & set(instructions)
    assert "--no-deps" in dockerfile and "requirements.lock" in dockerfile
    left_out = re.search(r"\^\(([^)]*)\)==", dockerfile).group(1).split("|")
    locked = {line.split("==")[0] for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line}
    assert set(left_out) <= locked  # the filter names pinned packages, so it cannot go stale silently
    assert "!requirements.lock" in (REPO / ".dockerignore").read_text().splitlines()
