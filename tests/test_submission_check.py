"""The starting kit's checker: a participant's submission folder, checked as the platform would, to submission.zip."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import BASELINE, BASELINE_MODEL, REPO

from cityscapes_competition.core.challenge import load_challenge
from cityscapes_competition.core.errors import ReferenceDataError, SubmissionError, UserFacingError
from cityscapes_competition.core.naming import pick_samples
from cityscapes_competition.ingestion.run import run_ingestion
from cityscapes_competition.ingestion.submission_metadata import read_settings
from cityscapes_competition.kit import check_log, folders, layout, submission_check, time_projection
from cityscapes_competition.kit.check_log import CheckLog
from cityscapes_competition.kit.folders import default_output, prepare_output, unpack_submission
from cityscapes_competition.kit.layout import OUTPUT_MARKER, ZIP_NAME
from cityscapes_competition.kit.overlays import outline
from cityscapes_competition.kit.sample_data import default_sample_data, sample_layout
from cityscapes_competition.kit.submission_check import Schedule, batch_shapes, check_submission, main, schedule
from cityscapes_competition.kit.time_projection import TimeProjection, budget_warning, time_findings
from cityscapes_competition.organiser.competition_data import build_competition_data
from cityscapes_competition.png.png_io import read_rgb
from cityscapes_competition.synthetic import scenes as synthetic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SIZE = (256, 128)  # (width, height) of the sample images; the baseline resizes to its own input size
FRAMES = 3
KIT_FRAMES = 5  # as many as the starting kit's sample: with the baseline's batch of 4, a last batch of 1
CHALLENGE = load_challenge()
IN_PHASE_1 = CHALLENGE.phases[0].start + dt.timedelta(days=1)
AFTER_THE_END = CHALLENGE.phases[-1].deadline + dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    """Images and ground truth in one root, as synthetic.generate_split writes them."""
    root = tmp_path_factory.mktemp("sample_root")
    synthetic.generate_split(root, "val", FRAMES, seed=11, size=SIZE, workers=1)
    return root


@pytest.fixture(scope="module")
def kit_like_sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kit_like_sample")
    synthetic.generate_split(root, "val", KIT_FRAMES, seed=11, size=SIZE, workers=1)
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
    slow = TimeProjection(load_seconds=10, ingest_per_image=2.0, score_per_image=0.1)  # ingestion 1010 s
    fits, line = time_findings(slow, 3600, "Phase 1", None)
    assert not fits and "600 s at which Codabench's default queue stops every run" in line
    fits, line = time_findings(slow, 3600, "Phase 1", "our-queue")
    assert fits and "for 500 test images, ingestion about 1010 s" in line and "scoring about 50 s" in line
    fits, line = time_findings(slow, 900, "Phase 1", None)
    assert not fits and "the ingestion would not fit" in line and "execution time limit of 900 s" in line
    assert "600 s" in line and "smaller inference.input_size" in line
    quick = TimeProjection(load_seconds=5, ingest_per_image=0.2, score_per_image=0.05)
    fits, line = time_findings(quick, 3600, "Phase 1", None)
    assert fits and "the 600 s cap of Codabench's default queue" in line


def test_the_limit_applies_to_each_step_not_to_their_sum() -> None:
    """Both platforms give the ingestion and the scoring the whole limit each (challenge.yaml)."""
    both = TimeProjection(load_seconds=0, ingest_per_image=1.0, score_per_image=0.9)  # 500 s and 450 s
    fits, line = time_findings(both, 600, "Phase 1", None)
    assert fits, line
    scoring = TimeProjection(load_seconds=0, ingest_per_image=0.1, score_per_image=1.3)
    fits, line = time_findings(scoring, 600, "Phase 1", None)
    assert not fits and "the scoring would not fit" in line and "min_area" in line


def many_test_images(sample: Path, target: Path, count: int) -> Path:
    """``count`` test images named as frames of the sample's cities, each a hard link to a sample image."""
    images = sorted((sample / "leftImg8bit").rglob("*_leftImg8bit.png"))
    for index in range(count):
        source = images[index % len(images)]
        folder = target / "leftImg8bit" / "val" / source.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        os.link(source, folder / f"{source.parent.name}_{index:06d}_000019_leftImg8bit.png")
    return target


class PacedModel:
    """A small Keras model behind a pace it cannot beat, as a heavier model's would be: every batch sleeps
    PER_IMAGE seconds an image, and a batch shape never seen before TRACE seconds more (TensorFlow tracing the
    model again). Sleeps dominate the run, so the comparison holds on a loaded machine; ``timed`` marks the
    calls made inside the timed inference."""

    PER_IMAGE, TRACE = 0.04, 1.0

    def __init__(self, model) -> None:
        self.model, self.seen, self.timed, self.traced_while_timed = model, set(), False, []

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def predict_on_batch(self, batch):
        if batch.shape not in self.seen:
            self.seen.add(batch.shape)
            if self.timed:
                self.traced_while_timed.append(batch.shape)
            time.sleep(self.TRACE)
        time.sleep(self.PER_IMAGE * len(batch))
        return self.model.predict_on_batch(batch)


@pytest.fixture
def paced(monkeypatch, tmp_path) -> tuple[Path, list[PacedModel]]:
    """A submission of a small model (batch 4, fixed 64x128 input); every load of it is paced."""
    import keras

    from cityscapes_competition.ingestion import inference, model_loading

    inputs = keras.Input((64, 128, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(x)
    submission = tmp_path / "paced_submission"
    submission.mkdir()
    keras.Model(inputs, keras.layers.Conv2D(19, 1)(x)).save(submission / "model.keras")
    (submission / "metadata").write_text("inference:\n  batch_size: 4\n  scores: logits\n")
    loaded: list[PacedModel] = []
    real_load, real_run = model_loading.load_model_safely, inference.run_inference

    def load(path: Path) -> PacedModel:
        loaded.append(PacedModel(real_load(path)))
        return loaded[-1]

    def run(model, *args, **kwargs):
        model.timed = True
        try:
            return real_run(model, *args, **kwargs)
        finally:
            model.timed = False

    monkeypatch.setattr(model_loading, "load_model_safely", load)
    monkeypatch.setattr(inference, "run_inference", run)
    return submission, loaded


def test_the_timed_sample_run_traces_no_batch_shape(paced, kit_like_sample, tmp_path) -> None:
    """5 sample images in batches of 4 (a batch of 4, then one of 1), then the timing run's 15 (three of 4, one
    of 3): each shape warmed before the timed runs."""
    submission, loaded = paced
    stream = io.StringIO()
    result = check_submission(submission, kit_like_sample, tmp_path / "out", stream=stream, now=IN_PHASE_1)
    assert result.passed, stream.getvalue()
    (model,) = loaded
    assert {shape[0] for shape in model.seen} == {4, 1, 3} and model.traced_while_timed == []


def test_the_time_projection_matches_a_real_run_over_many_images(paced, kit_like_sample, tmp_path) -> None:
    """The checker's projection from the kit's 5 images against the real ingestion of 48.

    The real run traces once (a batch of 4) and predicts 48 images, as the projection counts. Warmed on a batch
    of 4 only, as before, the batch of 1 traced inside the timed run and the projection was 3.6 times the real
    run; timed on the 5 images alone, the pipeline's fill and drain counted as per-image time."""
    submission, _ = paced
    count = 48
    result = check_submission(submission, kit_like_sample, tmp_path / "out", stream=io.StringIO(), now=IN_PHASE_1)
    assert result.projection is not None
    test_images = many_test_images(kit_like_sample, tmp_path / "input_data", count)
    started = time.perf_counter()
    summary = run_ingestion(test_images, tmp_path / "res", submission, stream=io.StringIO())
    actual = time.perf_counter() - started
    assert summary.images == count
    projected = dataclasses.replace(result.projection, images=count).ingestion
    assert 0.5 < projected / actual < 2.0, (projected, actual, result.projection)


def test_the_steady_pace_cancels_what_each_run_pays_once() -> None:
    # 0.3 s of fill and drain in each run, 0.08 s an image: 5 images in 0.7 s, 15 in 1.5 s
    assert time_projection.steady_pace(0.7, 5, 1.5, 15) == pytest.approx(0.08)
    assert time_projection.steady_pace(1.6, 5, 1.5, 15) == pytest.approx(0.1)  # a burst of load: the average
    assert time_projection.full_run_warmup({(4, 256, 512): 3.0, (1, 256, 512): 1.0}, 4) == 2.0  # 500 = 125 x 4
    assert time_projection.full_run_warmup({(3, 256, 512): 2.0}, 3) == 4.0  # 166 x 3, then a batch of 2


def test_the_timing_run_names_each_copy_apart(kit_like_sample) -> None:
    from cityscapes_competition.ingestion.run import discover_test_images

    images = discover_test_images(kit_like_sample)
    copies = submission_check.repeated(images, 3)
    assert len({image.frame.stem for image in copies}) == 3 * len(images) == len(copies)
    assert [image.path for image in copies] == [image.path for image in images] * 3


def test_every_batch_shape_of_the_run_is_warmed_once() -> None:
    assert batch_shapes([(256, 512)] * 5, 4) == [(4, 256, 512), (1, 256, 512)]
    assert batch_shapes([(256, 512)] * 8, 4) == [(4, 256, 512)]
    assert batch_shapes([(256, 512)] * 3, 4) == [(3, 256, 512)]
    assert batch_shapes([(10, 20), (10, 20), (30, 40), (10, 20)], 2) == [(2, 10, 20), (1, 30, 40), (1, 10, 20)]
    assert batch_shapes([], 4) == []


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
    assert code == 2 and stderr.count("\n") == 1 and "the submission does not exist" in stderr
    (tmp_path / "model.keras").write_bytes(b"")
    code, _, stderr = run_check(tmp_path / "model.keras", sample_root, tmp_path / "out", capsys)
    assert code == 2 and "is neither a folder nor a .zip file" in stderr
    assert f"Give the folder that holds it with the other file: check_submission.py {tmp_path}" in stderr
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


def test_the_default_sample_is_the_starting_kits(tmp_path) -> None:
    """The kit's sample_data/; in the repository the competition data's sample, which the kit ships; else the
    kit's frames generated once, so the baseline scores the same in the repository and in the kit."""
    log = CheckLog(stream=io.StringIO())
    generated = default_sample_data(log, kit_root=tmp_path, size=(64, 32), workers=1)
    assert generated == tmp_path / "data" / "sample_data"
    stems = sorted(p.name[: -len("_leftImg8bit.png")] for p in generated.rglob("*_leftImg8bit.png"))
    picked = pick_samples(synthetic.split_spec("val", synthetic.DEFAULT_TEST_COUNT).frames, layout.KIT_SAMPLE_COUNT)
    assert stems == [frame.stem for frame in picked]
    stamp = (generated / layout.GENERATED_MARKER).stat().st_mtime_ns
    assert default_sample_data(log, kit_root=tmp_path, size=(64, 32), workers=1) == generated
    assert (generated / layout.GENERATED_MARKER).stat().st_mtime_ns == stamp
    (generated / layout.GENERATED_MARKER).write_text("3 64x32 seed 20190211\n")  # an older sample
    default_sample_data(log, kit_root=tmp_path, size=(64, 32), workers=1)
    assert (generated / layout.GENERATED_MARKER).read_text() != "3 64x32 seed 20190211\n"

    built = build_competition_data(
        tmp_path / "data" / "competition", synthetic_count=6, synthetic_size=(64, 32), progress=False, workers=1
    )  # what make demo builds, the kit's sample_data
    assert default_sample_data(log, kit_root=tmp_path) == built.sample_data
    for image in generated.rglob("*_leftImg8bit.png"):  # the same pixels: the same scores
        shipped = next(built.sample_data.rglob(image.name))
        assert np.array_equal(read_rgb(image), read_rgb(shipped)), image.name
    (tmp_path / "sample_data").mkdir()  # the unzipped starting kit ships one
    assert default_sample_data(log, kit_root=tmp_path) == tmp_path / "sample_data"


def test_the_generated_sample_follows_the_competition_datas_defaults() -> None:
    defaults = inspect.signature(build_competition_data).parameters
    assert defaults["sample_count"].default == layout.KIT_SAMPLE_COUNT
    assert defaults["seed"].default == layout.KIT_SAMPLE_SEED
    assert defaults["synthetic_count"].default == synthetic.DEFAULT_TEST_COUNT


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


# --- a zipped submission, and the metadata beside the model ---------------------------------------------------


def write_zip(target: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A zip as GitHub's Download ZIP writes one: folder entries, files, links stored as Unix links."""
    folders = sorted({name.rsplit("/", 1)[0] + "/" for name in [*files, *(links or {})] if "/" in name})
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.comment = b"0123456789abcdef0123456789abcdef01234567"  # GitHub writes the commit here
        for folder in folders:
            archive.writestr(zipfile.ZipInfo(folder), b"")
        for name, data in files.items():
            archive.writestr(name, data)
        for name, pointee in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, pointee)
    return target


def test_a_github_archive_with_the_submission_in_a_sub_folder_passes(sample_root, tmp_path, capsys) -> None:
    """repo-main/my_submission/{metadata,model.keras}: the model is found in its sub-folder, and so is the
    metadata beside it, as the platform's ingestion finds them; the check goes beside the zip by default."""
    (tmp_path / "downloads").mkdir()
    archive = write_zip(
        tmp_path / "downloads" / "my-model-main.zip",
        {
            "my-model-main/README.md": b"# my model\n",
            "my-model-main/my_submission/metadata": (BASELINE / "metadata").read_bytes(),
            "my-model-main/my_submission/model.keras": BASELINE_MODEL.read_bytes(),
        },
    )
    code = main([str(archive), "--sample-data", str(sample_root)])
    stdout = capsys.readouterr().out
    out = tmp_path / "downloads" / "my-model-main_check"
    assert code == 0, stdout
    assert "ok    zip: 3 files unpacked" in stdout
    assert "my_submission/metadata (input_size 256x512" in stdout
    (note,) = marked(stdout, "note")
    assert "CodaLab v1.5" in note and "submission.zip" in note  # where the platforms look for it
    assert zip_names(out / ZIP_NAME) == ["metadata", "model.keras"]
    with zipfile.ZipFile(out / ZIP_NAME) as written:
        assert written.read("metadata") == (BASELINE / "metadata").read_bytes()
    assert not (out / "unpacked").exists()  # the copy of the zip's files is not kept
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == ["my-model-main.zip", "my-model-main_check"]


def test_the_checkers_own_zip_passes_and_an_ended_competition_says_so(sample_root, tmp_path) -> None:
    first = check_submission(BASELINE, sample_root, tmp_path / "first", stream=io.StringIO(), now=AFTER_THE_END)
    assert first.passed and first.zip_path is not None
    stream = io.StringIO()
    again = check_submission(first.zip_path, sample_root, None, stream=stream, now=AFTER_THE_END)
    lines = stream.getvalue().strip().splitlines()
    assert again.passed and again.zip_path == tmp_path / "first" / "submission_check" / ZIP_NAME
    assert "the competition is over; its last deadline was" in lines[0]
    assert lines[-1].startswith("Summary: every check passed") and "no submission can be made now" in lines[-1]
    assert "upload" not in lines[-1]


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"../evil.txt": b"x"}, "leads out of the archive"),
        ({"/tmp/evil.txt": b"x"}, "has an absolute path"),
        ({"repo\\metadata": b"x"}, "has a '\\' in its name"),
        ({"bomb.bin": bytes(30 * 1024**2)}, "a zip bomb, not a submission"),
        ({"repo-main/metadata": b"x", "repo-main/latest": "/etc/passwd"}, "which is a symbolic link"),
        ({"repo-main/metadata": b"x", "repo-main/up": "../../.."}, "which is a symbolic link"),
    ],
)
def test_a_dangerous_zip_is_refused_before_anything_is_unpacked(tmp_path, files, fragment) -> None:
    links = {name: target for name, target in files.items() if isinstance(target, str)}
    files = {name: data for name, data in files.items() if name not in links}
    archive = write_zip(tmp_path / "submission.zip", files, links)
    with pytest.raises(SubmissionError) as error:
        unpack_submission(archive, tmp_path / "unpacked")
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "unpacked").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_counts_sizes_and_flags_are_bounded(tmp_path, monkeypatch) -> None:
    def refused(archive: Path) -> str:
        with pytest.raises(SubmissionError) as error:
            unpack_submission(archive, tmp_path / "unpacked")
        return str(error.value)

    many = write_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(5)})
    monkeypatch.setattr(folders, "MAX_ZIP_MEMBERS", 3)
    assert "lists 5 members" in refused(many)
    large = write_zip(tmp_path / "large.zip", {"model.h5": os.urandom(4096)})
    monkeypatch.setattr(folders, "MAX_UNPACKED_BYTES", 1000)
    assert "would unpack to" in refused(large)
    with zipfile.ZipFile(tmp_path / "twice.zip", "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("metadata", b"a")
        archive.writestr("metadata", b"b")
    assert "holds 'metadata' 2 times" in refused(tmp_path / "twice.zip")
    data = bytearray(write_zip(tmp_path / "secret.zip", {"metadata": b"x"}).read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # zipfile writes no encrypted member
        data[data.index(signature) + flags_at] |= 0x1
    (tmp_path / "secret.zip").write_bytes(bytes(data))
    assert "is encrypted" in refused(tmp_path / "secret.zip")
    (tmp_path / "text.zip").write_text("not a zip")
    assert "is not a zip archive" in refused(tmp_path / "text.zip")


def test_a_refused_zip_fails_the_check_in_one_line(tmp_path, sample_root, capsys) -> None:
    archive = write_zip(tmp_path / "submission.zip", {"../metadata": b"inference: {}\n"})
    code, stdout, stderr = run_check(archive, sample_root, tmp_path / "out", capsys)
    assert code == 1 and not stderr
    (failure,) = marked(stdout, "FAIL")
    assert failure.split()[1] == "zip:" and "leads out of the archive" in failure
    assert not (tmp_path / "out" / ZIP_NAME).exists() and not (tmp_path / "metadata").exists()


# --- what the metadata and the model say together ---------------------------------------------------------------


def test_an_input_size_the_model_cannot_take_fails_before_running(tmp_path, sample_root, capsys) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    shutil.copy(BASELINE_MODEL, submission / "model.keras")
    (submission / "metadata").write_text("inference:\n  input_size: [512, 1024]\n  time_budget_seconds: 5000\n")
    code, stdout, _ = run_check(submission, sample_root, tmp_path / "out", capsys)
    assert code == 1
    (failure,) = marked(stdout, "FAIL")
    assert "'inference.input_size' is [512, 1024] but the model's input is fixed at 256x512" in failure
    assert "(None, 256, 512, 3)" in failure and "Remove input_size" in failure
    (warning,) = marked(stdout, "WARN")
    assert "time_budget_seconds is 5000 s, more than the execution time limit of 3600 s" in warning
    assert "ingestion: needs the metadata" in stdout and not (tmp_path / "out" / ZIP_NAME).exists()


def test_a_time_budget_the_platform_overrules_is_a_warning(tmp_path) -> None:
    path = tmp_path / "metadata"
    path.write_text("inference:\n  time_budget_seconds: 1200\n")
    settings = read_settings(path)
    assert "more than the execution time limit of 900 s" in budget_warning(settings, 900, "Phase 1", "our-queue")
    assert "600 s at which Codabench's default queue kills" in budget_warning(settings, 3600, "Phase 1", None)
    assert budget_warning(settings, 3600, "Phase 1", "our-queue") is None
    path.write_text("inference:\n  time_budget_seconds: 500\n")
    assert budget_warning(read_settings(path), 3600, "Phase 1", None) is None


# --- when, and where ----------------------------------------------------------------------------------------------


def test_the_schedule_says_when_the_competition_is_over() -> None:
    first, last = CHALLENGE.phases[0], CHALLENGE.phases[-1]
    before = schedule(CHALLENGE, first, first.start - dt.timedelta(days=1))
    assert not before.open and before.text.startswith(f"{first.name} opens on ")
    assert schedule(CHALLENGE, first, IN_PHASE_1) == Schedule(
        True, f"open until {first.deadline:%Y-%m-%d %H:%M:%S} ({CHALLENGE.time_zone.key})"
    )
    over = schedule(CHALLENGE, last, AFTER_THE_END)
    assert not over.open and over.text.startswith("the competition is over")
    assert f"{last.deadline:%Y-%m-%d %H:%M:%S}" in over.text


def test_the_default_output_is_beside_the_submission_and_ignored_by_git() -> None:
    assert default_output(Path("my_submission")) == Path("my_submission_check")
    assert default_output(Path("my_submission/")) == Path("my_submission_check")
    assert default_output(Path("downloads/repo-main.zip")) == Path("downloads/repo-main_check")
    assert default_output(Path(".")) == Path.cwd().with_name(Path.cwd().name + "_check")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for made in ("baseline_submission_check/submission.zip", "my_submission_check/scores/scores.txt"):
        done = subprocess.run(["git", "check-ignore", "-q", made], cwd=REPO, capture_output=True, timeout=30)
        assert done.returncode == 0, f"{made} is not ignored by git"


# --- a fifth attacker's holes (the checker's zip input) ----------------------------------------------------------


def test_zip_members_deep_lzma_or_more_than_declared_are_refused(tmp_path) -> None:
    def refused(archive: Path) -> str:
        with pytest.raises(SubmissionError) as error:
            unpack_submission(archive, tmp_path / "unpacked")
        assert not (tmp_path / "unpacked").exists()
        return str(error.value)

    deep = write_zip(tmp_path / "deep.zip", {"a/" * 1200 + "metadata": b"x"})  # Path.mkdir recursed past the limit
    assert "more than 64 folders deep" in refused(deep)
    with zipfile.ZipFile(tmp_path / "lzma.zip", "w", zipfile.ZIP_LZMA) as archive:  # its errors were a traceback
        archive.writestr("metadata", b"inference: {}\n")
    assert "only stored or deflated members are unpacked" in refused(tmp_path / "lzma.zip")
    data = bytearray(write_zip(tmp_path / "lie.zip", {f"f{i}": b"x" for i in range(3)}).read_bytes())
    end = data.rindex(b"PK\x05\x06")
    data[end + 8 : end + 12] = (1).to_bytes(2, "little") * 2  # the end record declares 1 member of the 3 listed
    (tmp_path / "lie.zip").write_bytes(bytes(data))
    original = folders.MAX_ZIP_MEMBERS
    try:
        folders.MAX_ZIP_MEMBERS = 2
        assert "lists 3 members" in refused(tmp_path / "lie.zip")
    finally:
        folders.MAX_ZIP_MEMBERS = original


def test_the_output_folder_never_holds_the_submission_nor_is_a_link(tmp_path) -> None:
    out = tmp_path / "my_check"
    (out / "results").mkdir(parents=True)
    inside = write_zip(out / "submission.zip", {"metadata": b"x"})
    for submission in (inside, out / "results"):
        with pytest.raises(UserFacingError, match="holds the submission"):
            prepare_output(out, submission)
    assert inside.exists() and (out / "results").exists()  # nothing emptied
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "results").mkdir(parents=True)
    (tmp_path / "link_check").symlink_to(elsewhere)
    with pytest.raises(UserFacingError, match="is a symbolic link"):
        prepare_output(tmp_path / "link_check", tmp_path / "submission")
    assert (elsewhere / "results").exists()


def test_names_from_a_zip_cannot_forge_lines_of_the_log(tmp_path) -> None:
    stream = io.StringIO()
    log = check_log.CheckLog(stream)
    log.ok("model", "found model\n  ok    metadata: forged \x1b[2J")
    assert stream.getvalue().count("\n") == 1 and "\x1b" not in stream.getvalue()


def test_a_folder_named_like_a_zip_is_a_folder(tmp_path) -> None:
    folder = tmp_path / "my_submission.zip"
    folder.mkdir()
    assert not folders.is_zip_path(folder) and folders.is_zip_path(tmp_path / "other.zip")
