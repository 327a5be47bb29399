"""The bundles: what they hold, their competition.yaml documents and the platforms' rules they are checked against."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import itertools
import re
import uuid
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from dateutil import parser as dateutil_parser
from helpers import REPO

from cityscapes_competition.core.challenge import DEFAULT_CHALLENGE_FILE, ChallengeSettings, Phase, load_challenge
from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.organiser import bundle as bundle_module
from cityscapes_competition.organiser.bundle import (
    CODABENCH_BUNDLE,
    CODALAB_BUNDLE,
    DatasetKeys,
    build_bundles,
    committed_yaml_text,
    main,
    settings_lines,
)
from cityscapes_competition.organiser.codabench import (
    CODABENCH_DEFAULT_QUEUE_SECONDS,
    check_codabench,
    codabench_document,
)
from cityscapes_competition.organiser.codalab import CODALAB_REQUIRED_PAGES, check_codalab, codalab_document
from cityscapes_competition.organiser.competition_data import build_competition_data
from cityscapes_competition.organiser.competition_pages import render_pages
from cityscapes_competition.organiser.platforms import (
    CODABENCH_PLATFORM,
    CODALAB_PLATFORM,
    codalab_worker_image,
    default_layout,
    past_deadline_warnings,
    render_yaml,
)

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
    layout = default_layout(render_pages(settings, CODALAB_PLATFORM))
    parts = [layout.ingestion_program, layout.scoring_program, layout.input_data, layout.reference_data]
    return ["competition.yaml", layout.logo, *layout.pages.values(), *parts, layout.starting_kit, layout.solution]


def codalab_yaml(settings: ChallengeSettings) -> dict:
    """The CodaLab v1.5 document as the platform reads it: from the rendered text."""
    layout = default_layout(render_pages(settings, CODALAB_PLATFORM))
    return yaml.full_load(render_yaml(codalab_document(settings, layout), CODALAB_PLATFORM))


def codabench_yaml(settings: ChallengeSettings) -> dict:
    document = codabench_document(settings, default_layout(render_pages(settings, CODABENCH_PLATFORM))).document
    return yaml.safe_load(render_yaml(document, CODABENCH_PLATFORM))


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
        "'.venv/bin/python -m cityscapes_competition bundle --yaml-only' (make bundle does it too; --check "
        "only says whether it is current)"
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
    shipped = {
        name.split("/")[1] for name in files if name.startswith("cityscapes_competition/") and name.count("/") > 1
    }
    assert shipped == {"core", "png", program.split("_")[0]}  # not the kit, the organiser's tools or the generator
    assert "cityscapes_competition/cli.py" not in files
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
        "starting_kit/export_keras_hub.py",
        "baseline_submission/metadata",
        "baseline_submission/model.keras",
        "cityscapes_competition/kit/submission_check.py",
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
        expected = zipfile.ZIP_STORED if name.endswith((".png", ".h5", ".keras")) else zipfile.ZIP_DEFLATED
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
    assert "organiser/codalab.py" in message  # the code that builds the document, not an organiser setting


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
    pages = {name: html for name, html in render_pages(settings, CODALAB_PLATFORM).items() if name != "data"}
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
    result = codabench_document(long_run, default_layout(render_pages(long_run, CODABENCH_PLATFORM)))
    assert {phase["execution_time_limit"] for phase in result.document["phases"]} == {CODABENCH_DEFAULT_QUEUE_SECONDS}
    assert "queue" not in result.document
    (warning,) = result.warnings
    assert "3600 s" in warning and "600 s" in warning and "codabench_queue" in warning
    assert codalab_yaml(long_run)["phases"][1]["execution_time_limit"] == 3600


def test_a_codabench_queue_keeps_the_time_limit(settings: ChallengeSettings) -> None:
    queued = dataclasses.replace(settings, execution_time_limit=3600, codabench_queue=QUEUE)
    result = codabench_document(queued, default_layout(render_pages(queued, CODABENCH_PLATFORM)))
    assert result.document["queue"] == QUEUE and not result.warnings
    assert {phase["execution_time_limit"] for phase in result.document["phases"]} == {3600}
    check_codabench(result.document, layout_members(queued), queued.source)


def test_a_codabench_queue_must_be_a_vhost(settings: ChallengeSettings) -> None:
    named = dataclasses.replace(settings, codabench_queue="my-gpu-queue")
    document = codabench_document(named, default_layout(render_pages(named, CODABENCH_PLATFORM))).document
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
    assert "every deadline is in the past" in captured.err  # the seeds' 2019 dates
    assert (tmp_path / "competition.yaml").read_text() == committed_yaml_text(load_challenge())
    assert captured.out.startswith(f"Settings: {DEFAULT_CHALLENGE_FILE}\n")  # what is being built, first
    assert "  codabench_bundle.zip -> Codabench: Benchmarks > Management > Upload" in captured.out


def test_cli_turns_an_organiser_mistake_into_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bundle_module, "COMMITTED_YAML", tmp_path / "competition.yaml")
    assert main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "dist")]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "competition_data.json" in error


@pytest.fixture
def organiser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """main() with a stale competition.yaml in tmp_path; the list records every data build main asks for."""
    (tmp_path / "competition.yaml").write_text("stale\n")
    monkeypatch.setattr(bundle_module, "COMMITTED_YAML", tmp_path / "competition.yaml")
    monkeypatch.setattr(bundle_module, "DEFAULT_OUT", tmp_path / "dist")
    data_builds: list[str] = []
    monkeypatch.setattr(bundle_module, "default_competition_data", lambda: data_builds.append("built") or tmp_path)
    return data_builds


def organiser_edits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    text = DEFAULT_CHALLENGE_FILE.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "challenge.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    monkeypatch.setattr(bundle_module, "load_challenge", lambda: load_challenge(path))


def test_the_check_says_what_it_checked_and_writes_nothing(
    organiser: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"Settings: {DEFAULT_CHALLENGE_FILE}\n")
    assert "local time in Europe/Moscow (then UTC)" in out
    assert (
        "1 Phase 1: 2019-02-11 00:00:00 to 2019-03-14 23:59:00 (2019-02-10 21:00:00 to 2019-03-14 20:59:00 UTC), ended"
    ) in out
    assert (
        "2 Phase 2: 2019-03-15 00:00:00 to 2019-04-09 23:59:00 (2019-03-14 21:00:00 to 2019-04-09 20:59:00 UTC)" in out
    )
    assert "20 a day (Europe/Moscow days), 200 in all, per participant and phase" in out
    assert "CodaLab v1.5 3600 s, Codabench 600 s (its default queue)" in out
    assert "docker image  cityscapes-competition:1.0" in out
    assert "'Results', ranked by iou_class: iou_class (IoU class), iiou_class" in out and "ap50m (AP 50m)" in out
    assert "model_description (text, required), external_data (checkbox, on the leaderboard)" in out
    assert f"{tmp_path / 'competition.yaml'}: out of date (make bundle, or --yaml-only, refreshes it" in out
    assert out.endswith("(3 warnings above); nothing was written.\n")
    assert "every deadline is in the past" in err and "600 s" in err and "names no registry account" in err
    assert (tmp_path / "competition.yaml").read_text() == "stale\n"
    assert not (tmp_path / "dist").exists() and organiser == []


def test_yaml_only_refreshes_the_tracked_yaml_and_says_so(
    organiser: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = tmp_path / "competition.yaml"
    assert main(["--yaml-only"]) == 0
    assert f"Updated {committed} from {DEFAULT_CHALLENGE_FILE}" in capsys.readouterr().out
    assert committed.read_text() == committed_yaml_text(load_challenge())
    assert main(["--yaml-only"]) == 0
    assert f"{committed}: up to date" in capsys.readouterr().out
    assert main(["--check"]) == 0
    assert f"{committed}: up to date" in capsys.readouterr().out
    assert organiser == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('deadline: "2019-03-14 23:59:00"', "deadline: 2019-03-14 23:59:00", 'quote the date: deadline: "2019-03-14'),
        ("  columns:", "  colums:", "unknown key 'leaderboard.colums' (did you mean 'leaderboard.columns'?)"),
        # the platforms' own rules, checked without any data
        ("codabench_queue: null", "codabench_queue: my-queue", "Codabench wants the queue's vhost, a UUID"),
        ('start: "2019-03-15 00:00:00"', 'start: "2019-03-14 23:59:00"', "to end strictly before the next starts"),
    ],
)
def test_a_mistake_is_one_line_with_exit_2_and_nothing_written(
    organiser: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    message: str,
) -> None:
    organiser_edits(tmp_path, monkeypatch, old, new)
    for argv in (["--check"], ["--yaml-only"], []):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("bundle: error: ") and err.count("\n") == 1 and message in err
        assert "challenge.yaml" in err and "--check" in err
    assert (tmp_path / "competition.yaml").read_text() == "stale\n"
    assert organiser == []  # the build stops before the data build, which may take minutes


def test_a_bad_dataset_key_or_data_folder_is_refused_before_any_data_is_built(
    organiser: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--input-data-key", "nope"]) == 2
    assert "--input-data-key 'nope' is not a dataset key" in capsys.readouterr().err
    assert main(["--check", "--data", str(tmp_path / "nothing")]) == 2
    assert "competition_data.json" in capsys.readouterr().err
    assert organiser == []


def test_the_check_tells_where_each_phase_stands(settings: ChallengeSettings) -> None:
    planned = with_phases(
        settings, ("2030-01-01 00:00:00", "2030-02-01 23:59:00"), ("2030-02-02 00:00:00", "2030-03-01 23:59:00")
    )
    lines = settings_lines(planned, dt.datetime(2030, 1, 15, tzinfo=dt.UTC))
    assert "(2029-12-31 21:00:00 to 2030-02-01 20:59:00 UTC), open now" in lines[3]
    assert "(2030-02-01 21:00:00 to 2030-03-01 20:59:00 UTC), opens in 17 days" in lines[4]
    changed = dataclasses.replace(
        planned, codabench_queue=QUEUE, enforce_submission_rules=False, migrate_to_next_phase=False, fact_sheet=()
    )
    text = "\n".join(settings_lines(changed, dt.datetime(2030, 1, 15, tzinfo=dt.UTC)))
    assert f"CodaLab v1.5 3600 s, Codabench 3600 s (queue {QUEUE})" in text
    assert "NOT checked by the scoring program (enforce_submission_rules: false)" in text
    assert "migration     off (migrate_to_next_phase: false)" in text and "fact sheet    none" in text


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


# ---------------------------------------------------------------------------------- replays of the platforms


class PlatformRefusal(Exception):
    """What a platform's own code raises on a bundle (its message as the platform words it)."""


def codalab_worker_pulls(image_name: str) -> str:
    """codalab/competitions-v1-compute-worker, worker.py, docker_image_clean (then `docker pull` of the result)."""
    image_name = '"{}"'.format(image_name.strip().split(" ")[0])
    return re.sub("[^0-9a-zA-Z/.:-]+", "", image_name)


def codabench_get_datetime(field: object) -> dt.datetime | None:
    return codabench_reads(field)


def codabench_imports_v1(competition_yaml: dict) -> list[dict]:
    """codabench's import of a bundle without 'version: 2', up to the phases it would save.

    src/apps/competitions/tasks.py, unpack_competition: str(yaml.get('version', '1')) in ('1', '1.5') picks
    unpackers/v1.py, V15Unpacker; its _unpack_phases (sorted by phasenumber; end = next start - 1 day, the last
    phase ends at end_date; auto_migration becomes auto_migrate_to_this_phase); base_unpacker.py,
    _validate_phase_ordering; then save() -> src/apps/api/serializers/competitions.py, CompetitionSerializer
    .validate_phases."""
    assert str(competition_yaml.get("version", "1")) in ("1", "1.5")
    phases = sorted(competition_yaml["phases"].values(), key=lambda phase: phase["phasenumber"])
    unpacked = []
    for index, phase in enumerate(phases):
        new_phase = {
            "index": index,
            "start": codabench_get_datetime(phase["start_date"]),
            "name": phase["label"],
            "auto_migrate_to_this_phase": phase.get("auto_migration", False),
        }
        if phase.get("execution_time_limit"):
            new_phase["execution_time_limit"] = phase["execution_time_limit"]
        if index + 1 < len(phases):
            new_phase["end"] = codabench_get_datetime(phases[index + 1]["start_date"]) - dt.timedelta(days=1)
        else:
            end = competition_yaml.get("end_date")
            new_phase["end"] = codabench_get_datetime(end) if end and end != "null" else None
        unpacked.append(new_phase)
    for earlier, later in itertools.pairwise(unpacked):
        if earlier["end"] is None or later["start"] <= earlier["end"]:
            raise PlatformRefusal("Phases must be sequential")
    return codabench_validate_phases(unpacked)


def codabench_imports_v2(competition_yaml: dict) -> list[dict]:
    """unpackers/v2.py, V2Unpacker._unpack_phases (what the phases keep), then CompetitionSerializer.validate_phases."""
    assert str(competition_yaml["version"]) == "2"
    phases = sorted(competition_yaml["phases"], key=lambda phase: phase.get("index", 0))
    unpacked = [
        {
            "index": index,
            "start": codabench_get_datetime(phase.get("start")),
            "end": codabench_get_datetime(phase.get("end")),
            "auto_migrate_to_this_phase": phase.get("auto_migrate_to_this_phase", False),
        }
        for index, phase in enumerate(phases)
    ]
    return codabench_validate_phases(unpacked)


def codabench_validate_phases(phases: list[dict]) -> list[dict]:
    """src/apps/api/serializers/competitions.py, CompetitionSerializer.validate_phases."""
    if not phases or len(phases) <= 0:
        raise PlatformRefusal("Competitions must have at least one phase")
    if len(phases) == 1 and phases[0].get("auto_migrate_to_this_phase"):
        raise PlatformRefusal("You cannot auto migrate in a competition with one phase")
    if phases[0].get("auto_migrate_to_this_phase") is True:
        raise PlatformRefusal("You cannot auto migrate to the first phase of a competition")
    return phases


def codalab_unpacks_phases(competition_yaml: dict) -> list[dict]:
    """codalab-competitions, codalab/apps/web/models.py, CompetitionDefBundle.unpack, its phase loop: the first
    phase's auto_migration is reset ("First phase can't have auto_migration=True"), start_date goes through
    localize_datetime (a datetime is kept whole), then phase.auto_migration = bool(phase_spec.get(...))."""
    phases = []
    for index, number in enumerate(competition_yaml["phases"]):
        phase_spec = dict(competition_yaml["phases"][number])
        if index == 0:
            phase_spec["auto_migration"] = False
        start = phase_spec["start_date"]
        assert type(start) is dt.datetime and start.tzinfo is not None  # localize_datetime keeps it as is
        phases.append({"start_date": start, "auto_migration": bool(phase_spec.get("auto_migration", False))})
    return phases


def django_slugify(value: str) -> str:
    """django.utils.text.slugify (Django 1.11), which codalab's _innertabs.html applies to a page's codename."""
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def codalab_extra_pages(competition_yaml: dict) -> list[dict]:
    """CompetitionDefBundle.unpack: every html key but overview, evaluation, terms and data becomes a page whose
    codename and label (the tab's text) are the key; the tab's anchor is the codename slugified."""
    default_pages = ("overview", "evaluation", "terms", "data")
    return [
        {"label": name, "anchor": django_slugify(name)}
        for name in competition_yaml["html"]
        if name not in default_pages
    ]


def codabench_validate_fact_sheet(fact_sheet: object) -> dict | None:
    """src/apps/api/serializers/competitions.py, CompetitionSerializer.validate_fact_sheet."""
    if not bool(fact_sheet):
        return None
    if not isinstance(fact_sheet, dict):
        raise PlatformRefusal("Not valid JSON")
    expected_keys = {"key", "type", "title", "selection", "is_required", "is_on_leaderboard"}
    valid_question_types = {"checkbox", "text", "select"}
    for key, value in fact_sheet.items():
        missing_keys = expected_keys.symmetric_difference(set(value.keys()))
        if missing_keys:
            raise PlatformRefusal(f"Missing {missing_keys} values for {key}")
        if key != value["key"]:
            raise PlatformRefusal(f"key:{value['key']}  does not match JSON key:{key}")
        if value["type"] not in valid_question_types:
            raise PlatformRefusal(f"{value['type']} is not a valid question type")
    return fact_sheet


def codabench_validate_answers(fact_sheet: dict, fact_sheet_answers: dict) -> None:
    """src/apps/api/serializers/submissions.py, SubmissionCreationSerializer.validate, its fact sheet part."""
    if set(fact_sheet_answers.keys()) != set(fact_sheet.keys()):
        raise PlatformRefusal("Fact Sheet keys do not match Answer keys")
    for key, value in fact_sheet_answers.items():
        if not fact_sheet[key] and not isinstance(value, str):
            raise PlatformRefusal(f"{value} should be string not {type(value)}")
        elif value not in fact_sheet[key]["selection"] and fact_sheet[key]["selection"]:
            raise PlatformRefusal(f"{key}: {value} is not a valid selection from {fact_sheet[key]}")
        elif not value and fact_sheet[key]["is_required"] == "true" and not isinstance(value, bool):
            raise PlatformRefusal(f"{fact_sheet[key]['title']}({key}) requires an answer")


def codabench_solutions(competition_yaml: dict, bundle_names: list[str]) -> list[dict]:
    """unpackers/v2.py, V2Unpacker._unpack_solutions, and base_unpacker.py, _get_data_key: a solution's path must
    exist in the unpacked bundle (or be a dataset key), its tasks must be task indexes of the document."""
    task_indexes = {task["index"] for task in competition_yaml["tasks"]}
    solutions = []
    for solution in competition_yaml.get("solutions") or []:
        index, tasks = solution["index"], solution["tasks"]
        if not all(task_index in task_indexes for task_index in tasks):
            raise PlatformRefusal(f"ERROR: Solution: {index} missing task index pointers")
        if solution["path"] not in bundle_names:
            raise PlatformRefusal(f'Cannot find dataset: "{solution["path"]}"')
        solutions.append({"file_name": solution["path"], "name": solution.get("name"), "tasks": tasks})
    return solutions


# ------------------------------------------------------------------------------------- docker image names


@pytest.mark.parametrize(
    ("name", "pulled"),
    [
        ("account/cityscapes-competition:1.0", "account/cityscapes-competition:1.0"),
        ("account/cityscapes_competition:1.0", "account/cityscapescompetition:1.0"),
        ("account/image@sha256:" + "ab" * 32, "account/imagesha256:" + "ab" * 32),
        ("  registry.example.org:5000/team/image:2 ", "registry.example.org:5000/team/image:2"),
    ],
)
def test_the_codalab_worker_image_is_docker_image_clean(name: str, pulled: str) -> None:
    assert codalab_worker_pulls(name) == pulled
    assert codalab_worker_image(name) == pulled


@pytest.mark.parametrize("name", ["account/cityscapes_competition:1.0", "account/image@sha256:" + "ab" * 32])
def test_an_image_the_codalab_worker_would_change_stops_the_build(
    data: Path, settings: ChallengeSettings, tmp_path: Path, name: str
) -> None:
    assert codalab_worker_pulls(name) != name  # CodaLab v1.5 would pull another image
    with pytest.raises(ReferenceDataError) as refused:
        build_bundles(data, tmp_path / "out", settings=dataclasses.replace(settings, docker_image=name))
    message = str(refused.value)
    assert f"docker_image {name!r}" in message and "challenge.yaml" in message
    assert f"would pull {codalab_worker_pulls(name)!r}" in message and "docker_image_clean" in message
    assert "by a tag, not by an @sha256: digest" in message and "Set docker_image in challenge.yaml" in message
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------- which bundle goes where


def test_codabench_refuses_the_codalab_document(settings: ChallengeSettings) -> None:
    with pytest.raises(PlatformRefusal, match="You cannot auto migrate to the first phase of a competition"):
        codabench_imports_v1(codalab_yaml(settings))
    # CodaLab v1.5 itself takes it: the first phase's flag is reset, the dates are kept to the second
    phases = codalab_unpacks_phases(codalab_yaml(settings))
    assert phases[0] == {"start_date": dt.datetime(2019, 2, 10, 21, 0, tzinfo=dt.UTC), "auto_migration": False}
    # and Codabench takes its own document
    assert [phase["auto_migrate_to_this_phase"] for phase in codabench_imports_v2(codabench_yaml(settings))] == [
        False,
        True,
    ]


def test_without_the_refusal_codabench_would_import_wrong_dates_and_limits(settings: ChallengeSettings) -> None:
    """Why the v1.5 document must not reach Codabench: its v1 import keeps neither the times nor the limit."""
    document = codalab_yaml(settings)
    document["phases"][1]["auto_migration"] = False
    phase_1, _ = codabench_imports_v1(document)
    assert phase_1["start"] == dt.datetime(2019, 2, 10, 0, 0, tzinfo=dt.UTC)  # midnight, not 21:00
    assert phase_1["end"] == dt.datetime(2019, 3, 13, 0, 0, tzinfo=dt.UTC)  # a day early, not 03-14 20:59
    assert phase_1["execution_time_limit"] == 3600 > CODABENCH_DEFAULT_QUEUE_SECONDS  # the default queue cuts it
    assert "force_submission_to_leaderboard" in document  # V15Unpacker never reads it
    # quoting the dates would keep the times, not the end a day early
    quoted = {
        **document,
        "phases": {n: {**p, "start_date": str(p["start_date"])} for n, p in document["phases"].items()},
    }
    assert codabench_imports_v1(quoted)[0]["end"] == dt.datetime(2019, 3, 13, 21, 0, tzinfo=dt.UTC)


def test_the_codalab_document_must_carry_the_refusal(settings: ChallengeSettings) -> None:
    document = codalab_yaml(settings)
    del document["phases"][1]["auto_migration"]
    with pytest.raises(ReferenceDataError, match="auto_migration: true' on its first phase"):
        check_codalab(document, layout_members(settings), settings.source)
    assert "# For CodaLab v1.5 only; Codabench gets codabench_bundle.zip." in committed_yaml_text(settings)


def test_codabench_refuses_migration_into_its_first_phase(settings: ChallengeSettings) -> None:
    document = codabench_yaml(settings)
    document["phases"][0]["auto_migrate_to_this_phase"] = True
    with pytest.raises(PlatformRefusal, match="first phase"):
        codabench_imports_v2(document)
    with pytest.raises(ReferenceDataError, match=r"auto_migrate_to_this_phase' on the first phase"):
        check_codabench(document, layout_members(settings), settings.source)


# ------------------------------------------------------------------------------------------ phase migration


@pytest.mark.parametrize("migrate", [True, False])
def test_both_documents_carry_the_migration_setting(settings: ChallengeSettings, migrate: bool) -> None:
    chosen = dataclasses.replace(settings, migrate_to_next_phase=migrate)
    codalab = [phase["auto_migration"] for phase in codalab_unpacks_phases(codalab_yaml(chosen))]
    codabench = [phase["auto_migrate_to_this_phase"] for phase in codabench_imports_v2(codabench_yaml(chosen))]
    assert codalab == codabench == [False, migrate]
    check_codalab(codalab_yaml(chosen), layout_members(chosen), chosen.source)
    check_codabench(codabench_yaml(chosen), layout_members(chosen), chosen.source)


# ----------------------------------------------------------------------------------------- past deadlines


def test_a_schedule_entirely_in_the_past_is_warned_about(settings: ChallengeSettings) -> None:
    (warning,) = past_deadline_warnings(settings, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert "every deadline is in the past" in warning and "2019-04-09 23:59:00 Europe/Moscow" in warning
    assert "Running it again" in warning and str(settings.source) in warning
    assert past_deadline_warnings(settings, dt.datetime(2019, 4, 9, 20, 58, 59, tzinfo=dt.UTC)) == ()
    assert past_deadline_warnings(settings, dt.datetime(2019, 4, 9, 20, 59, tzinfo=dt.UTC))  # the deadline itself


# --------------------------------------------------------------------------------- solution, contact, pages


def test_the_baseline_is_the_codabench_tasks_solution(built: Path) -> None:
    with zipfile.ZipFile(built / CODABENCH_BUNDLE) as archive:
        names = archive.namelist()
        definition = yaml.safe_load(archive.read("competition.yaml"))
    (solution,) = codabench_solutions(definition, names)
    assert solution["tasks"] == [0] and solution["name"] == "Baseline"
    with zipfile.ZipFile(io.BytesIO(read(built / CODABENCH_BUNDLE, solution["file_name"]))) as archive:
        assert sorted(archive.namelist()) == ["metadata", "model.keras"]  # at the root, as participants zip theirs
        assert archive.read("model.keras") == (REPO / "baseline_submission" / "model.keras").read_bytes()
    assert solution["file_name"] not in zipfile.ZipFile(built / CODALAB_BUNDLE).namelist()


def test_a_solution_missing_from_the_bundle_is_refused(settings: ChallengeSettings) -> None:
    document = codabench_yaml(settings)
    files = [name for name in layout_members(settings) if name != document["solutions"][0]["path"]]
    with pytest.raises(PlatformRefusal, match="Cannot find dataset"):
        codabench_solutions(document, files)
    with pytest.raises(ReferenceDataError, match=r"solutions\[0\]\.path.*not a file of the bundle"):
        check_codabench(document, files, settings.source)


def test_contact_and_fact_sheet_reach_codabench_as_its_code_reads_them(settings: ChallengeSettings) -> None:
    chosen = dataclasses.replace(settings, contact_email="organisers@example.org")
    document = codabench_yaml(chosen)
    # unpackers/v2.py, V2Unpacker.__init__: competition_yaml.get("contact_email"), .get("fact_sheet")
    assert document.get("contact_email") == "organisers@example.org"
    fact_sheet = codabench_validate_fact_sheet(document.get("fact_sheet"))
    assert list(fact_sheet) == ["model_description", "external_data"]
    codabench_validate_answers(fact_sheet, {"model_description": "U-Net, 512x1024, train", "external_data": False})
    with pytest.raises(PlatformRefusal, match="requires an answer"):
        codabench_validate_answers(fact_sheet, {"model_description": "", "external_data": True})
    # api/views/competitions.py: the leaderboard shows the questions whose is_on_leaderboard == 'true'
    assert [key for key in fact_sheet if fact_sheet[key]["is_on_leaderboard"] == "true"] == ["external_data"]
    codalab = codalab_yaml(chosen)  # CodaLab v1.5's Competition model has neither field
    assert "contact_email" not in codalab and "fact_sheet" not in codalab
    no_questions = codabench_yaml(dataclasses.replace(settings, fact_sheet=()))
    assert "fact_sheet" not in no_questions and "contact_email" not in no_questions


def test_a_fact_sheet_codabench_would_refuse_is_refused(settings: ChallengeSettings) -> None:
    document = codabench_yaml(settings)
    del document["fact_sheet"]["external_data"]["is_on_leaderboard"]
    with pytest.raises(PlatformRefusal, match="Missing"):
        codabench_validate_fact_sheet(document["fact_sheet"])
    with pytest.raises(ReferenceDataError, match="needs exactly"):
        check_codabench(document, layout_members(settings), settings.source)


def test_the_starting_kit_tab_has_a_readable_title_on_both_platforms(settings: ChallengeSettings) -> None:
    assert codalab_extra_pages(codalab_yaml(settings)) == [{"label": "Starting kit", "anchor": "starting-kit"}]
    titles = [page["title"] for page in codabench_yaml(settings)["pages"]]
    assert titles == ["Overview", "Evaluation", "Data", "Starting kit"]


def test_codalab_refuses_a_page_named_like_its_own(settings: ChallengeSettings) -> None:
    document = codalab_yaml(settings)
    document["html"]["Overview"] = document["html"]["overview"]
    with pytest.raises(ReferenceDataError, match=re.escape("label of a page CodaLab v1.5 makes itself")):
        check_codalab(document, layout_members(settings), settings.source)


def test_each_bundle_carries_its_platforms_pages(built: Path) -> None:
    codabench = read(built / CODABENCH_BUNDLE, "data.html").decode()
    codalab = read(built / CODALAB_BUNDLE, "data.html").decode()
    assert "<em>My Submissions</em>" in codabench and "CodaLab" not in codabench
    assert "Submit / View Results" in codalab and "Codabench asks" not in codalab
