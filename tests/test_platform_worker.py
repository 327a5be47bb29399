"""The bundles run end to end as the platforms' compute workers run them, on a tiny competition data set.

CodaLab v1.5: ported from codalab/competitions-v1-compute-worker ``worker.py`` (``get_bundle``, ``run``) and
codalab/codalab-competitions ``apps/web/tasks.py`` (the run.txt/input.txt the site sends, scores.txt parsing).
Codabench: from codalab/codabench ``compute_worker/compute_worker.py`` (``prepare``, ``_run_program_directory``,
``replace_legacy_metadata_command``, ``push_scores``, ``push_output``). Docker is played by running each command
without a shell, ``sys.executable`` standing in for the image's ``python3``; the participant's submission is
``baseline_submission/`` zipped. Upload destinations (stdout, output URLs) are left out.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import REPO

from cityscapes_competition.organiser.bundle import BundleReport, build_bundles
from cityscapes_competition.organiser.competition_data import build_competition_data
from cityscapes_competition.scoring.scores import LEADERBOARD_KEYS

TINY_SIZE = (256, 128)  # (width, height) of the synthetic test images
RUN_TIMEOUT = 600  # seconds; only a hung program gets near it
# worker.py, get_bundle: a metadata value is downloaded as a bundle unless its key is one of these.
V15_NOT_DOWNLOADED = ("description", "command", "exitCode", "elapsedTime", "stdout", "stderr")
V15_NOT_DOWNLOADED += ("submitted-by", "submitted-at")
SUBMITTED_AT = "2019-02-20T10:00:00"  # UTC, no microseconds, inside phase 1 of challenge.yaml
COOPETITION_HEADER = (
    "participant__user__username,pk,when_made_public,when_unmade_public,started_at,completed_at,"
    "download_count,submission_number,like_count,dislike_count"
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> BundleReport:
    root = tmp_path_factory.mktemp("platform")
    data = build_competition_data(
        root / "data", synthetic_count=2, synthetic_size=TINY_SIZE, sample_count=1, progress=False, workers=1
    )
    return build_bundles(data.out, root / "dist")


@pytest.fixture(scope="module")
def submission_zip() -> bytes:
    """baseline_submission/ zipped as a participant does: metadata and model.keras at the root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((REPO / "baseline_submission").iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


def zip_folder(folder: Path) -> bytes:
    """shutil.make_archive(..., 'zip', folder), as both workers pack an output folder."""
    archive = shutil.make_archive(str(folder.parent / f"{folder.name}-packed"), "zip", folder)
    return Path(archive).read_bytes()


def run_without_shell(
    command: list[str], cwd: Path, env: dict[str, str], succeed: bool = True
) -> subprocess.CompletedProcess:
    assert command[0] == "python3", f"the image runs 'python3', the command starts with {command[0]!r}"
    process = subprocess.run(
        [sys.executable, *command[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    if succeed:
        assert process.returncode == 0, f"{command} exited {process.returncode}:\n{process.stdout}\n{process.stderr}"
    return process


def assert_ran_bundled_package(program: Path) -> None:
    """Python caches the bytecode of what it imports beside it: the program imported its own copy."""
    assert (program / "cityscapes_competition" / "__pycache__").is_dir(), f"{program} did not use its package"


def container_env(home: Path, **extra: str) -> dict[str, str]:
    """What a container of the image has: a PATH and a HOME, plus what the worker passes with -e."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONUNBUFFERED": "1"} | extra


def platform_scores_txt(text: str) -> dict[str, float]:
    """apps/web/tasks.py, update_submission: each non-empty line is split on ':' and its value float()ed."""
    scores = {}
    for line in text.split("\n"):
        if len(line) > 0:
            label, value = line.split(":")
            scores[label.strip()] = float(value)
    return scores


def assert_leaderboard(scores: dict, keys: list[str]) -> None:
    assert sorted(scores) == sorted(keys)
    for key in keys:
        assert isinstance(scores[key], int | float) and not isinstance(scores[key], bool), (key, scores[key])
        assert 0.0 <= scores[key] <= 1.0, (key, scores[key])


# ------------------------------------------------------------------------------------------ CodaLab v1.5


class V15Storage:
    """The site's blob storage: URLs the worker downloads, by a file name that keeps its extension."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, name: str, data: bytes) -> str:
        url = f"https://blobs.test/{len(self.blobs)}/{name}?sig=x"
        self.blobs[url] = data
        return url


def v15_only_folder_with_metadata(path: Path) -> Path | None:
    """worker.py, _find_only_folder_with_metadata."""
    names = os.listdir(path)
    if len(names) > 2 and "metadata" in names:
        return None
    for name in names:
        folder = path / name
        if folder.is_dir() and "metadata" in os.listdir(folder):
            return folder
    return None


def v15_get_bundle(storage: V15Storage, root: Path, relative: str, url: str):
    """worker.py, get_bundle: unzip (or keep as 'metadata'), hoist a lone folder, unzip inner zips, recurse."""
    assert url in storage.blobs, f"the worker would download {relative}: {url!r} as a URL"
    extension = os.path.splitext(url.split("?")[0].split("/")[-1])[1]
    bundle_path = root / relative
    metadata_path = bundle_path / "metadata"
    if extension == ".zip":
        with zipfile.ZipFile(io.BytesIO(storage.blobs[url])) as archive:
            archive.extractall(bundle_path)
        folder = v15_only_folder_with_metadata(bundle_path)
        if folder is not None:
            hoisted = root / f"{relative}_tmp"
            shutil.copytree(folder, hoisted)
            shutil.rmtree(bundle_path)
            shutil.move(hoisted, bundle_path)
        for inner in bundle_path.glob("*.zip"):
            with zipfile.ZipFile(inner) as archive:
                archive.extractall(inner.with_suffix(""))
    else:
        bundle_path.mkdir()
        metadata_path.write_bytes(storage.blobs[url])
    metadata = yaml.full_load(metadata_path.read_text()) if metadata_path.exists() else None
    if isinstance(metadata, dict):
        for key, value in list(metadata.items()):
            if key not in V15_NOT_DOWNLOADED and isinstance(value, str):
                metadata[key] = v15_get_bundle(storage, bundle_path, key, value)
    return metadata


def v15_command(template: str, substitutions: list[tuple[str, Path | str]]) -> list[str]:
    """worker.py: each $variable replaced in this order, then the command split on single spaces."""
    for variable, value in substitutions:
        template = template.replace(variable, str(value))
    return template.split(" ")


def v15_phase(bundle: Path) -> tuple[dict, dict[str, bytes]]:
    """apps/web/models.py, CompetitionDefBundle.unpack: the first '.yaml' name is the definition; phase 1's zips."""
    with zipfile.ZipFile(bundle) as archive:
        definition = yaml.full_load(archive.read(next(name for name in archive.namelist() if ".yaml" in name)))
        phase = definition["phases"][1]
        assert phase["is_scoring_only"] is False
        files = {
            key: archive.read(phase[key])
            for key in ("ingestion_program", "input_data", "scoring_program", "reference_data")
        }
    return definition, files


def coopetition_zip(phases: list[int]) -> bytes:
    """apps/web/tasks.py, score: the phases' finished submissions (none yet) and the downloads."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in phases:
            archive.writestr(f"coopetition_phase_{number}.txt", COOPETITION_HEADER + "\r\n")
            archive.writestr(f"coopetition_scores_phase_{number}.txt", "")
        archive.writestr(
            "coopetition_downloads.txt", "submission_pk,submission_owner,downloaded_by,time_of_download\r\n"
        )
        archive.writestr("current_user.txt", "participant")
    return buffer.getvalue()


def v15_predict(storage: V15Storage, files: dict[str, bytes], submission: bytes, work: Path) -> bytes:
    """The prediction step: ingestion over the input data; returns the prediction output zip."""
    return v15_run_prediction(storage, files, submission, work)[1]


def v15_run_prediction(
    storage: V15Storage, files: dict[str, bytes], submission: bytes, work: Path, succeed: bool = True
) -> tuple[subprocess.CompletedProcess, bytes]:
    run_txt = "\n".join(
        [
            f"program: {storage.put('submission.zip', submission)}",
            f"ingestion_program: {storage.put('ingestion_program.zip', files['ingestion_program'])}",
            f"hidden_ref: {storage.put('reference_data.zip', files['reference_data'])}",
            f"input: {storage.put('input_data.zip', files['input_data'])}",
        ]
    )
    root, temp_dir, shared = work / "predict", work / "worker_temp", work / "predict_shared"
    for folder in (root, temp_dir, shared):
        folder.mkdir(parents=True)
    bundles = v15_get_bundle(storage, root, "run", storage.put("run.txt", run_txt.encode()))
    run = root / "run"
    shutil.move(run / "hidden_ref", temp_dir)  # hidden from the submission, given to ingestion as $hidden
    hidden = temp_dir / "hidden_ref"
    assert "command" not in (bundles["program"] or {}), "a submission command would run beside the ingestion"
    assert (run / "program" / "metadata").exists(), "without metadata it is a results submission: no ingestion"
    for name in ("output", "temp"):
        (run / name).mkdir(exist_ok=True)
    (run / "output" / "detailed_results.html").touch()  # the worker's empty detailed results
    command = v15_command(
        bundles["ingestion_program"]["command"],
        [
            ("$program", run / "ingestion_program"),
            ("$ingestion_program", run / "ingestion_program"),
            ("$submission_program", run / "program"),
            ("$predictions", run / "input" / "res"),
            ("$input", run / "input"),
            ("$output", run / "output"),
            ("$tmp", run / "temp"),
            ("$shared", shared),
            ("$hidden", hidden),
        ],
    )
    started = time.monotonic()
    env = container_env(work / "home", PYTHONPATH=f"$PYTHONPATH:{run / 'program'}")  # -e, not expanded
    process = run_without_shell(command, cwd=run, env=env, succeed=succeed)
    assert not (run / "output" / "metadata").exists(), "Codabench fails a submission whose ingestion writes metadata"
    status = {"exitCode": 0, "ingestionExitCode": process.returncode, "elapsedTime": time.monotonic() - started}
    with (run / "output" / "metadata").open("a+") as metadata:
        metadata.write(yaml.dump(status, default_flow_style=False))
    return process, zip_folder(run / "output")


def v15_score(storage: V15Storage, files: dict[str, bytes], predictions: bytes, work: Path) -> Path:
    """The scoring step: score.py over INPUT holding ref/, res/, coopetition/ and the scoring metadata."""
    input_txt = "\n".join(
        [
            f"ref: {storage.put('reference_data.zip', files['reference_data'])}",
            f"res: {storage.put('output.zip', predictions)}",
            f"history: {storage.put('history.txt', b'')}",
            f"scores: {storage.put('scores.txt', b'')}",
            f"coopetition: {storage.put('coopetition.zip', coopetition_zip([1, 2]))}",
            "submitted-by: participant",
            f"submitted-at: {SUBMITTED_AT}",
            "competition-submission: 1",
            "competition-phase: 1",
            "automatic-submission: False",
        ]
    )
    run_txt = "\n".join(
        [
            f"program: {storage.put('scoring_program.zip', files['scoring_program'])}",
            f"input: {storage.put('input.txt', input_txt.encode())}",
        ]
    )
    root, shared = work / "score", work / "score_shared"
    root.mkdir()
    shared.mkdir()
    bundles = v15_get_bundle(storage, root, "run", storage.put("run.txt", run_txt.encode()))
    run = root / "run"
    for name in ("output", "temp"):
        (run / name).mkdir(exist_ok=True)
    (run / "output" / "detailed_results.html").touch()
    command = v15_command(
        bundles["program"]["command"],
        [
            ("$program", run / "program"),
            ("$predictions", run / "input" / "res"),
            ("$input", run / "input"),
            ("$output", run / "output"),
            ("$tmp", run / "temp"),
            ("$shared", shared),
        ],
    )
    run_without_shell(command, cwd=run, env=container_env(work / "home"))
    return run / "output"


def test_codalab_v15_worker_runs_ingestion_then_scoring(
    bundles: BundleReport, submission_zip: bytes, tmp_path: Path
) -> None:
    definition, files = v15_phase(bundles.bundles[0].path)
    storage = V15Storage()
    predictions = v15_predict(storage, files, submission_zip, tmp_path)
    with zipfile.ZipFile(io.BytesIO(predictions)) as archive:
        names = archive.namelist()
    assert any(name.startswith("pixel/") for name in names) and any(name.startswith("instance/") for name in names)

    output = v15_score(storage, files, predictions, tmp_path)
    assert_ran_bundled_package(tmp_path / "predict" / "run" / "ingestion_program")
    assert_ran_bundled_package(tmp_path / "score" / "run" / "program")
    scores = platform_scores_txt((output / "scores.txt").read_text())
    assert_leaderboard(scores, list(definition["leaderboard"]["columns"]))
    assert sorted(scores) == sorted(LEADERBOARD_KEYS)
    assert (output / "detailed_results.html").stat().st_size > 0


# --------------------------------------------------------------------------------------------- Codabench


def codabench_command(template: str, kind: str, is_scoring: bool) -> str:
    """compute_worker.py, replace_legacy_metadata_command (ingestion_only_during_scoring false)."""
    for variable, value in (
        ("$input", "/app/input_data" if kind == "ingestion" else "/app/input"),
        ("$output", "/app/output"),
        ("$program", "/app/program"),
        ("$ingestion_program", "/app/program"),
        ("$hidden", "/app/input/ref"),
        ("$shared", "/app/shared"),
        ("$submission_program", "/app/ingested_program"),
        ("$tmp", "/app/output"),
        ("$predictions", "/app/input/res" if is_scoring else "/app/output"),
    ):
        template = template.replace(variable, value)
    return template


def codabench_run(
    template: str, kind: str, is_scoring: bool, mounts: dict[str, Path], home: Path, succeed: bool = True
) -> subprocess.CompletedProcess:
    """The container: the command split as docker-py splits a string, /app paths mapped to the mounted folders."""
    arguments = []
    for argument in shlex.split(codabench_command(template, kind, is_scoring)):
        for mount, folder in mounts.items():
            if argument == mount or argument.startswith(mount + "/"):
                argument = str(folder) + argument[len(mount) :]
                break
        assert not argument.startswith("/app/"), f"{argument} is not mounted in the {kind} container"
        arguments.append(argument)
    return run_without_shell(arguments, cwd=mounts["/app/program"], env=container_env(home), succeed=succeed)


def codabench_metadata_command(program: Path) -> str | None:
    """_run_program_directory: metadata.yaml, else metadata; its command, if any."""
    for name in ("metadata.yaml", "metadata"):
        if (program / name).exists():
            metadata = yaml.full_load((program / name).read_text())
            return metadata.get("command") if isinstance(metadata, dict) else None
    raise AssertionError(f"{program} has no metadata")


def codabench_task(bundle: Path) -> tuple[dict, dict[str, bytes]]:
    """The v2 unpacker: competition.yaml at the root; the first phase's task and its files."""
    with zipfile.ZipFile(bundle) as archive:
        definition = yaml.safe_load(archive.read("competition.yaml"))
        assert definition["version"] == 2
        task_index = definition["phases"][0]["tasks"][0]
        task = next(task for task in definition["tasks"] if task["index"] == task_index)
        files = {
            key: archive.read(task[key])
            for key in ("ingestion_program", "input_data", "scoring_program", "reference_data")
        }
    return definition, files


def extract(data: bytes, folder: Path) -> Path:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
    return folder


def codabench_score(
    files: dict[str, bytes], predictions: bytes, work: Path, home: Path, succeed: bool = True
) -> tuple[Path, subprocess.CompletedProcess]:
    """The scoring step (prepare, then _run_program_directory): the scoring program over input/ref and input/res."""
    score = work / "score"
    program = extract(files["scoring_program"], score / "program")
    extract(files["reference_data"], score / "input" / "ref")
    extract(predictions, score / "input" / "res")
    (score / "output").mkdir()
    (score / "shared").mkdir()
    mounts = {
        "/app/program": program,
        "/app/output": score / "output",
        "/app/shared": score / "shared",
        "/app/input": score / "input",
    }
    return score, codabench_run(codabench_metadata_command(program), "program", True, mounts, home, succeed)


def test_codabench_worker_runs_ingestion_then_scoring(
    bundles: BundleReport, submission_zip: bytes, tmp_path: Path
) -> None:
    definition, files = codabench_task(bundles.bundles[1].path)
    home = tmp_path / "home"

    # Prediction: the submission (no command: nothing runs for it) and the ingestion program; no reference data.
    predict = tmp_path / "predict"
    submission = extract(submission_zip, predict / "program")
    ingestion = extract(files["ingestion_program"], predict / "ingestion_program")
    input_data = extract(files["input_data"], predict / "input_data")
    (predict / "output").mkdir()
    assert codabench_metadata_command(submission) is None
    mounts = {
        "/app/program": ingestion,
        "/app/output": predict / "output",
        "/app/input_data": input_data,
        "/app/ingested_program": submission,
    }
    codabench_run(codabench_metadata_command(ingestion), "ingestion", False, mounts, home)
    assert_ran_bundled_package(ingestion)
    assert not (predict / "output" / "metadata").exists(), "push_output refuses an output holding 'metadata'"
    status = {"exitCode": None, "elapsedTime": 1.0, "ingestionExitCode": 0, "ingestionElapsedTime": 1.0}
    (predict / "output" / "metadata").write_text(yaml.dump(status, default_flow_style=False))
    predictions = zip_folder(predict / "output")

    # Scoring: the scoring program over input/ref and input/res.
    score, _ = codabench_score(files, predictions, tmp_path, home)
    assert_ran_bundled_package(score / "program")

    # push_scores: scores.json when present; upload_submission_scores stores each leaderboard column's value
    # in a non-null DecimalField and skips the other keys.
    scores = json.loads((score / "output" / "scores.json").read_text())
    columns = [column["key"] for column in definition["leaderboards"][0]["columns"]]
    assert_leaderboard({key: scores[key] for key in columns if key in scores}, columns)


# ------------------------------------------------------------------------------ hostile submissions


def with_files(submission: bytes, extra: dict[str, str]) -> bytes:
    """The submission zip with more files at its root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(submission)) as source, zipfile.ZipFile(buffer, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        for name, text in extra.items():
            target.writestr(name, text)
    return buffer.getvalue()


SHADOWING_MODULES = ("yaml", "numpy", "h5py", "keras", "tensorflow", "PIL", "scipy", "pathlib", "argparse", "json")


def shadowing_modules(markers: Path) -> dict[str, str]:
    """Modules a hostile submission ships so that the ingestion imports them in place of the real ones.

    Importing one leaves a marker file (``open`` is a builtin: the module needs no import to do it).
    """
    markers.mkdir(parents=True, exist_ok=True)
    files = {f"{name}.py": f"open({str(markers / name)!r}, 'w').close()\n" for name in SHADOWING_MODULES}
    files["sitecustomize.py"] = f"open({str(markers / 'sitecustomize')!r}, 'w').close()\n"
    return files


def test_codalab_v15_ingestion_imports_nothing_from_the_submission_on_pythonpath(
    bundles: BundleReport, submission_zip: bytes, tmp_path: Path
) -> None:
    """worker.py starts the ingestion with -e PYTHONPATH=$PYTHONPATH:<run>/program (the submission folder)."""
    _, files = v15_phase(bundles.bundles[0].path)
    markers = tmp_path / "markers"
    hostile = with_files(submission_zip, shadowing_modules(markers))
    process, predictions = v15_run_prediction(V15Storage(), files, hostile, tmp_path)
    assert process.returncode == 0, process.stderr
    assert sorted(path.name for path in markers.iterdir()) == []
    with zipfile.ZipFile(io.BytesIO(predictions)) as archive:
        assert any(name.startswith("pixel/") for name in archive.namelist())


@pytest.mark.parametrize("program", ["ingestion", "scoring"])
def test_entry_points_started_without_isolation_still_import_nothing_from_pythonpath(
    program: str, tiny_case, tmp_path: Path
) -> None:
    """The same threat when the command lacks -I: the entry points drop PYTHONPATH before importing anything."""
    markers = tmp_path / "markers"
    shadows = tmp_path / "shadows"
    shadows.mkdir()
    for name, text in shadowing_modules(markers).items():
        # Imported while Python starts (sitecustomize; pathlib by a .pth file of an editable install), before any
        # program: only -I prevents those, and the entry points report them (next test).
        if name not in ("sitecustomize.py", "pathlib.py"):
            (shadows / name).write_text(text)
    if program == "ingestion":
        (shadows / "metadata").write_text("inference:\n  batch_size: 1\n")  # yaml parses it; no model: exit 2
        command = [REPO / "ingestion_program" / "ingestion.py", tmp_path / "input", tmp_path / "out", tmp_path, shadows]
    else:
        command = [REPO / "scoring_program" / "score.py", tiny_case.ref.parent, tmp_path / "out"]
    env = container_env(tmp_path / "home", PYTHONPATH=str(shadows))
    process = subprocess.run(
        [sys.executable, *map(str, command)], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert process.returncode == (2 if program == "ingestion" else 0), process.stderr
    assert "Traceback" not in process.stderr
    assert sorted(path.name for path in markers.iterdir()) == []


def test_an_entry_point_stops_if_python_already_ran_a_file_from_pythonpath(tmp_path: Path) -> None:
    """A sitecustomize.py on PYTHONPATH runs when Python starts, before the program: it is reported, not ignored."""
    markers, shadows = tmp_path / "markers", tmp_path / "shadows"
    shadows.mkdir()
    (shadows / "sitecustomize.py").write_text(shadowing_modules(markers)["sitecustomize.py"])
    env = container_env(tmp_path / "home", PYTHONPATH=str(shadows))
    command = [sys.executable, str(REPO / "scoring_program" / "score.py"), str(tmp_path), str(tmp_path / "out")]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert process.returncode == 2
    assert "imported 'sitecustomize'" in process.stderr and "python3 -I" in process.stderr
    isolated = subprocess.run([*command[:1], "-I", *command[1:]], env=env, capture_output=True, text=True)
    assert "imported 'sitecustomize'" not in isolated.stderr


def test_codabench_runs_a_submission_command_and_then_scores_the_failed_ingestion_as_failed(
    bundles: BundleReport, submission_zip: bytes, tmp_path: Path
) -> None:
    """compute_worker.py: _run_program_directory runs the submission's own 'command' beside the ingestion;
    start() then marks the prediction "Scoring" whatever the ingestion's exit code, and push_output writes
    ingestionExitCode into the output that becomes the scoring run's input/res."""
    _, files = codabench_task(bundles.bundles[1].path)
    home = tmp_path / "home"
    hostile = with_files(submission_zip, {"run.py": "open('ran.txt', 'w').close()\n"})  # in its working folder
    predict = tmp_path / "predict"
    submission = extract(hostile, predict / "program")
    metadata = (submission / "metadata").read_text()
    (submission / "metadata").write_text("command: python3 $program/run.py\n" + metadata)
    ingestion = extract(files["ingestion_program"], predict / "ingestion_program")
    input_data = extract(files["input_data"], predict / "input_data")
    (predict / "output").mkdir()

    # The platform runs the participant's command as a program (kind "program"): it is not ours to prevent.
    program_mounts = {"/app/program": submission, "/app/output": predict / "output", "/app/input_data": input_data}
    codabench_run(codabench_metadata_command(submission), "program", False, program_mounts, home)
    assert (submission / "ran.txt").exists()

    # Our ingestion refuses the submission: exit 2, its reason left beside the (absent) results.
    mounts = {**program_mounts, "/app/program": ingestion, "/app/ingested_program": submission}
    ingested = codabench_run(codabench_metadata_command(ingestion), "ingestion", False, mounts, home, succeed=False)
    assert ingested.returncode == 2, ingested.stderr
    assert "remove the 'command' line" in ingested.stderr
    status = {"exitCode": 0, "elapsedTime": 1.0, "ingestionExitCode": 2, "ingestionElapsedTime": 1.0}
    (predict / "output" / "metadata").write_text(yaml.dump(status, default_flow_style=False))

    # Scoring runs anyway; the scorer fails with the ingestion's reason, not "missing predictions".
    score, scored = codabench_score(files, zip_folder(predict / "output"), tmp_path, home, succeed=False)
    assert scored.returncode == 2, scored.stderr
    assert "the ingestion program failed (exit code 2)" in scored.stderr
    assert "remove the 'command' line" in scored.stderr
    assert "Traceback" not in scored.stderr
    assert not (score / "output" / "scores.json").exists() and not (score / "output" / "scores.txt").exists()
    assert "remove the &#x27;command&#x27; line" in (score / "output" / "detailed_results.html").read_text()


# ------------------------------------------------------------------- CodaLab v1.5's detailed results


class V15DetailedResultsWatcher:
    """detailed_result_put.sh (competitions-v1-compute-worker), replayed in a thread:

        while sleep 1 ; do echo $2 | entr -d python /worker/detailed_result_put.py $1 $2 ; done

    entr runs the upload once when it starts and again when the file changes; with -d it exits as soon
    as the file's folder gains an entry (a new file, or a file renamed over the watched one). worker.py
    kills the loop's bash when its poll (``time.sleep(1)`` then ``poll()``) finds the scorer gone: an entr
    already started survives as an orphan, but no new one starts. Changes are seen by polling every 5 ms,
    the folder's entries compared by name and inode, as inotify reports them to entr.
    """

    def __init__(self, path: Path) -> None:
        import threading

        self.path, self.uploads, self.killed = path, [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def kill(self) -> None:
        self.killed.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self.killed.wait(1.0):  # `while sleep 1`: a kill during the sleep ends the loop
            self._entr()

    def _entr(self) -> None:
        self._put()
        entries, changed = self._entries(), self._mtime()
        while not self.killed.is_set():
            time.sleep(0.005)
            if self._entries() != entries:
                return  # -d: the folder gained or replaced an entry
            if self._mtime() != changed:
                changed = self._mtime()
                self._put()

    def _entries(self) -> set[tuple[str, int]]:
        return {(entry.name, entry.inode()) for entry in os.scandir(self.path.parent)}

    def _mtime(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return -1

    def _put(self) -> None:  # detailed_result_put.py: put_blob(url, path)
        with contextlib.suppress(FileNotFoundError):
            self.uploads.append(self.path.read_text(encoding="utf-8"))


def v15_score_with_watcher(case_input: Path, output: Path) -> tuple[int, str, str]:
    """worker.py run: the empty detailed_results.html, the watcher, the scorer, the kill at the first poll
    that finds it gone (taken at once: the worst case), then the final upload only if the file is empty."""
    from cityscapes_competition.scoring.program import score_main

    output.mkdir()
    page = output / "detailed_results.html"
    page.touch()
    watcher = V15DetailedResultsWatcher(page)
    code = score_main([str(case_input), str(output), "--workers", "1"])
    watcher.kill()
    final = page.read_text(encoding="utf-8")
    shown = final if not final else (watcher.uploads[-1] if watcher.uploads else "")
    return code, final, shown


def test_codalab_v15_shows_the_final_detailed_results(tiny_case, tmp_path: Path) -> None:
    code, final, shown = v15_score_with_watcher(tiny_case.ref.parent, tmp_path / "out")
    assert code == 0 and "images evaluated" in final
    assert shown == final


def test_codalab_v15_shows_the_failure_page(tiny_case, tmp_path: Path) -> None:
    next((tiny_case.res / "pixel").rglob("*.png")).write_bytes(b"not a png")
    code, final, shown = v15_score_with_watcher(tiny_case.ref.parent, tmp_path / "out")
    assert code == 2 and "could not be scored" in final and "not a PNG" in final
    assert shown == final


def test_without_waiting_for_the_watcher_the_final_page_is_lost(tiny_case, tmp_path: Path, monkeypatch) -> None:
    """Why the scorer waits: the atomic write makes entr -d exit, and its restart comes a second later."""
    from cityscapes_competition.scoring import score_files

    monkeypatch.setattr(score_files, "WATCHER_SECONDS", 0.0)
    code, final, shown = v15_score_with_watcher(tiny_case.ref.parent, tmp_path / "out")
    assert code == 0 and "images evaluated" in final
    assert shown != final
