"""The starting kit's checker: a participant's submission folder, checked as the platform would, to submission.zip."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import BASELINE, BASELINE_MODEL, REPO

from cityscapes_competition.core.challenge import load_challenge
from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.kit import submission_check
from cityscapes_competition.kit.overlays import outline
from cityscapes_competition.kit.submission_check import (
    OUTPUT_MARKER,
    ZIP_NAME,
    TimeProjection,
    default_sample_data,
    main,
    sample_layout,
    time_findings,
)
from cityscapes_competition.synthetic import scenes as synthetic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SIZE = (256, 128)  # (width, height) of the sample images; the baseline resizes to its own input size
FRAMES = 3


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    """Images and ground truth in one root, as synthetic.generate_split writes them."""
    root = tmp_path_factory.mktemp("sample_root")
    synthetic.generate_split(root, "val", FRAMES, seed=11, size=SIZE, workers=1)
    return root


@pytest.fixture(scope="module")
def sample_split(sample_root: Path, tmp_path_factory) -> Path:
    """The same data in the starting kit's layout: input_data/leftImg8bit, reference_data/{gtFine,...}."""
    root = tmp_path_factory.mktemp("sample_split")
    shutil.copytree(sample_root / "leftImg8bit", root / "input_data" / "leftImg8bit")
    for kind in ("gtFine", "disparity", "camera"):
        shutil.copytree(sample_root / kind, root / "reference_data" / kind)
    return root


def run_check(submission: Path, sample: Path, out: Path, capsys) -> tuple[int, str, str]:
    code = main([str(submission), "--sample-data", str(sample), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def marked(output: str, mark: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip().startswith(mark)]


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist())


def test_the_baseline_passes_and_gives_the_zip_to_upload(sample_split, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_check(BASELINE, sample_split, out, capsys)
    assert code == 0, stdout + stderr
    assert not marked(stdout, "FAIL") and not marked(stdout, "WARN") and not stderr
    steps = [line.split()[1] for line in marked(stdout, "ok")]
    assert steps == [
        "metadata:",
        "model",
        "model:",
        "sample",
        "ingestion:",
        "scores:",
        "time:",
        "overlays:",
        "submission.zip:",
    ]
    for column in load_challenge().columns:  # as the leaderboard shows them
        assert re.search(rf"^\s+{re.escape(column.label)}\s+\d\.\d{{4}}\b", stdout, re.MULTILINE), column.label
    assert "within the execution time limit of 3600 s" in stdout
    assert zip_names(out / ZIP_NAME) == ["metadata", "model.keras"]  # the model file under its own name
    with zipfile.ZipFile(out / ZIP_NAME) as archive:
        assert archive.read("metadata") == (BASELINE / "metadata").read_bytes()
        assert archive.read("model.keras") == BASELINE_MODEL.read_bytes()
    assert len(list((out / "overlays").glob("*_overlay.png"))) == FRAMES
    assert {p.name for p in (out / "scores").iterdir()} == {"scores.txt", "scores.json", "detailed_results.html"}
    assert len(list((out / "results" / "pixel").rglob("*_labelIds.png"))) == FRAMES
    assert stdout.strip().splitlines()[-1].startswith("Summary: every check passed")


def test_a_wrapper_folder_with_an_h5_is_accepted_and_flattened(sample_root, baseline_h5, tmp_path, capsys) -> None:
    wrapper = tmp_path / "submission" / "my-model-main"  # a GitHub archive: everything in one folder
    (wrapper / "weights").mkdir(parents=True)
    shutil.copy(BASELINE / "metadata", wrapper / "metadata")
    shutil.copy(baseline_h5, wrapper / "weights" / "model.h5")  # .h5 stays accepted
    (wrapper / "README.md").write_text("my model\n")
    (wrapper / "__pycache__").mkdir()
    (wrapper / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (wrapper / ".git").mkdir()
    (wrapper / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    out = tmp_path / "out"
    code, stdout, stderr = run_check(tmp_path / "submission", sample_root, out, capsys)
    assert code == 0, stdout + stderr
    assert zip_names(out / ZIP_NAME) == ["metadata", "model.h5"]
    (left_out,) = marked(stdout, "note")
    assert "README.md" in left_out and "__pycache__/" in left_out and ".git/" in left_out


def test_the_url_trap_in_metadata_fails_with_one_line_and_no_zip(tmp_path, sample_root, capsys) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    shutil.copy(BASELINE_MODEL, submission / "model.keras")
    (submission / "metadata").write_text("model: model.keras\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / OUTPUT_MARKER).write_text("")
    (out / ZIP_NAME).write_bytes(b"an earlier run's zip")  # must not survive a failed check
    code, stdout, _ = run_check(submission, sample_root, out, capsys)
    assert code == 1
    (failure,) = marked(stdout, "FAIL")
    assert "metadata" in failure and "'model: model.keras' would be downloaded as a URL" in failure
    assert not (out / ZIP_NAME).exists()
    assert "Summary: 1 problem" in stdout


def test_a_missing_model_fails_with_one_line_and_no_zip(tmp_path, sample_root, capsys) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    shutil.copy(BASELINE / "metadata", submission / "metadata")
    code, stdout, _ = run_check(submission, sample_root, tmp_path / "out", capsys)
    assert code == 1
    (failure,) = marked(stdout, "FAIL")
    assert "holds no model file" in failure and "Put exactly one model file" in failure
    assert not (tmp_path / "out" / ZIP_NAME).exists()


def test_the_baseline_beside_its_old_h5_fails_naming_both(tmp_path, sample_root, baseline_h5, capsys) -> None:
    submission = tmp_path / "submission"
    shutil.copytree(BASELINE, submission)
    shutil.copy(baseline_h5, submission / "model.h5")  # the file a participant converted from, left behind
    code, stdout, _ = run_check(submission, sample_root, tmp_path / "out", capsys)
    assert code == 1
    (failure,) = marked(stdout, "FAIL")
    assert "holds 2 model files: model.h5, model.keras" in failure and "Remove the others" in failure
    assert not (tmp_path / "out" / ZIP_NAME).exists()


def test_the_time_projection_warns_when_the_limit_is_too_small(sample_root, tmp_path, monkeypatch, capsys) -> None:
    tiny = dataclasses.replace(load_challenge(), execution_time_limit=1)
    monkeypatch.setattr(submission_check, "load_challenge", lambda: tiny)
    code, stdout, stderr = run_check(BASELINE, sample_root, tmp_path / "out", capsys)
    assert code == 0, stdout + stderr  # a warning: this machine is not the platform's
    (warning,) = marked(stdout, "WARN")
    assert "would not fit" in warning and "execution time limit of 1 s" in warning
    assert "smaller inference.input_size" in warning
    assert (tmp_path / "out" / ZIP_NAME).exists()


def test_time_findings_against_the_limit_and_the_default_queue() -> None:
    slow = TimeProjection(load_seconds=10, ingest_per_image=2.0, score_per_image=0.1)  # about 1060 s
    fits, line = time_findings(slow, 3600, "Phase 1", None)
    assert not fits and "600 s at which Codabench's default queue stops every run" in line
    fits, line = time_findings(slow, 3600, "Phase 1", "our-queue")
    assert fits and "about 1060 s for 500 test images" in line
    fits, line = time_findings(slow, 900, "Phase 1", None)
    assert not fits and "more than the execution time limit of 900 s" in line and "600 s" in line
    quick = TimeProjection(load_seconds=5, ingest_per_image=0.2, score_per_image=0.05)
    fits, line = time_findings(quick, 3600, "Phase 1", None)
    assert fits and "the 600 s cap of Codabench's default queue" in line


def test_the_output_folder_is_never_inside_the_submission_nor_a_stranger(tmp_path, sample_root, capsys) -> None:
    submission = tmp_path / "submission"
    shutil.copytree(BASELINE, submission)
    code, _, stderr = run_check(submission, sample_root, submission / "check_output", capsys)
    assert code == 2 and stderr.count("\n") == 1 and "is inside the submission folder" in stderr
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    code, _, stderr = run_check(submission, sample_root, foreign, capsys)
    assert code == 2 and "was not made by this checker" in stderr
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_command_mistakes_are_one_line(tmp_path, sample_root, capsys) -> None:
    code, _, stderr = run_check(tmp_path / "nowhere", sample_root, tmp_path / "out", capsys)
    assert code == 2 and stderr.count("\n") == 1 and "the submission folder does not exist" in stderr
    code = main([str(BASELINE), "--sample-data", str(sample_root), "--out", str(tmp_path / "out"), "--phase", "9"])
    stderr = capsys.readouterr().err
    assert code == 2 and stderr.count("\n") == 1 and "--phase 9: there is no such phase. Give one of" in stderr


def test_sample_layouts(sample_root, sample_split, tmp_path) -> None:
    split = sample_layout(sample_split)
    assert split.input_data.name == "input_data" and split.reference.name == "reference_data"
    single = sample_layout(sample_root)
    assert single.input_data == single.reference == sample_root
    with pytest.raises(ReferenceDataError, match="holds neither input_data/"):
        sample_layout(tmp_path)


def test_the_default_sample_is_shipped_or_generated_once(tmp_path) -> None:
    log = submission_check.CheckLog(stream=open(os.devnull, "w"))  # noqa: SIM115
    try:
        generated = default_sample_data(log, kit_root=tmp_path, size=(64, 32), workers=1)
        assert generated == tmp_path / "data" / "sample_data"
        assert sample_layout(generated).input_data == generated
        stamp = (generated / submission_check.GENERATED_MARKER).stat().st_mtime_ns
        assert default_sample_data(log, kit_root=tmp_path, size=(64, 32), workers=1) == generated
        assert (generated / submission_check.GENERATED_MARKER).stat().st_mtime_ns == stamp
        (tmp_path / "sample_data").mkdir()  # the unzipped starting kit ships one
        assert default_sample_data(log, kit_root=tmp_path) == tmp_path / "sample_data"
    finally:
        log.stream.close()


def test_the_entry_point_runs_from_an_unzipped_starting_kit(tmp_path) -> None:
    kit = tmp_path / "starting_kit_unzipped"
    (kit / "starting_kit").mkdir(parents=True)
    shutil.copy(REPO / "starting_kit" / "check_submission.py", kit / "starting_kit")
    shutil.copytree(REPO / "cityscapes_competition", kit / "cityscapes_competition")
    probe = (
        "import runpy, sys; sys.argv = ['check_submission.py', '--help']\n"
        "try:\n    runpy.run_path(sys.argv_path, run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "import cityscapes_competition; print(cityscapes_competition.__file__)\n"
    ).replace("sys.argv_path", repr(str(kit / "starting_kit" / "check_submission.py")))
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: check_submission.py" in done.stdout and "--sample-data" in done.stdout
    assert done.stdout.strip().splitlines()[-1].startswith(str(kit / "cityscapes_competition"))


def test_outlines_follow_instance_borders_only() -> None:
    instances = np.zeros((6, 6), np.int64)
    instances[1:5, 1:5] = 26001
    border = outline(instances)
    assert border[1, 1:5].all() and border[4, 1:5].all() and border[1:5, 1].all() and border[1:5, 4].all()
    assert not border[2:4, 2:4].any() and not border[0].any() and not border[:, 0].any()


def test_a_link_loop_beside_the_model_is_just_a_name(tmp_path) -> None:
    """left_out lists names without following links: a loop (which Path.resolve raises on) is a name like any."""
    from cityscapes_competition.kit.submission_check import left_out

    shutil.copy(BASELINE / "metadata", tmp_path / "metadata")
    shutil.copy(BASELINE_MODEL, tmp_path / "model.keras")
    os.symlink("loop", tmp_path / "loop")
    os.symlink("/etc", tmp_path / "outside")
    assert left_out(tmp_path / "metadata", tmp_path / "model.keras") == ["loop", "outside"]


def test_a_command_in_metadata_fails_the_check_with_no_zip(tmp_path, sample_root, capsys) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    shutil.copy(BASELINE_MODEL, submission / "model.keras")
    (submission / "metadata").write_text("command: python3 train.py\n" + (BASELINE / "metadata").read_text())
    out = tmp_path / "out"
    code, stdout, _ = run_check(submission, sample_root, out, capsys)
    assert code != 0 and not (out / ZIP_NAME).exists()
    (failure,) = marked(stdout, "FAIL")
    assert "remove the 'command' line" in failure
