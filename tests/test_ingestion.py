"""The ingestion program: a participant's model over the test images, to results the scorer reads."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import BASELINE, REPO

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.inference import _Budget
from cityscapes_competition.ingestion.program import ingest_main
from cityscapes_competition.scoring.evaluation import evaluate
from cityscapes_competition.synthetic import scenes as synthetic

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
SIZE = (256, 128)  # (width, height) of the generated test images


@pytest.fixture(scope="session")
def test_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ingestion_data")
    synthetic.generate_split(root, "val", 4, seed=5, size=SIZE, workers=1)
    return root


def _keras():
    import keras

    return keras


def segmentation_model(channels: int = 19, stride: int = 4, fixed_input: tuple[int, int] | None = (64, 128)):
    """A small built-in-layers model: RGB 0..255 in, per-pixel softmax scores at 1/stride resolution out."""
    keras = _keras()
    inputs = keras.Input((*fixed_input, 3) if fixed_input else (None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=stride, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(channels, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def make_submission(folder: Path, model, metadata: str = "", wrapper: str | None = None) -> Path:
    root = folder / wrapper if wrapper else folder
    root.mkdir(parents=True, exist_ok=True)
    model.save(root / "model.h5")
    (root / "metadata").write_text(metadata)
    return folder


def ingest(test_data: Path, submission: Path, output: Path, capsys) -> tuple[int, str, str]:
    code = ingest_main([str(test_data), str(output), str(REPO / "ingestion_program"), str(submission)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_full_run_writes_what_the_scorer_reads(test_data, tmp_path, capsys) -> None:
    submission = make_submission(tmp_path / "sub", segmentation_model(), "inference:\n  batch_size: 3\n")
    code, out, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 0, err
    assert "4/4 images" in out and "images/s" in out and "ETA" in out
    assert not (tmp_path / "out" / "metadata").exists()
    assert len(list((tmp_path / "out" / "pixel").rglob("*.png"))) == 4
    assert len(list((tmp_path / "out" / "instance").rglob("*.txt"))) == 4
    scores = evaluate(test_data, tmp_path / "out", workers=1)
    assert scores.pixel is not None and scores.instance is not None and not scores.warnings


def test_output_size_differing_from_input_size_is_upsampled(test_data, tmp_path, capsys) -> None:
    from PIL import Image

    submission = make_submission(tmp_path / "sub", segmentation_model(stride=8, fixed_input=None))
    code, _, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 0, err
    prediction = next((tmp_path / "out" / "pixel").rglob("*.png"))
    assert Image.open(prediction).size == SIZE


def test_metadata_and_model_in_a_wrapper_folder(test_data, tmp_path, capsys) -> None:
    submission = make_submission(tmp_path / "sub", segmentation_model(), wrapper="my-model-main")
    code, _, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 0, err


def test_metadata_beside_the_model_in_a_sub_folder(test_data, tmp_path, capsys) -> None:
    """repo-main/my_submission/{metadata,model.h5}: the metadata the checker finds, beside the model."""
    submission = make_submission(
        tmp_path / "sub", segmentation_model(), "inference:\n  batch_size: 3\n", wrapper="repo-main/my_submission"
    )
    (submission / "repo-main" / "README.md").write_text("my model\n")
    code, out, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 0, err
    assert "batch 3" in out  # its settings were read


def test_an_input_size_the_model_cannot_take_is_refused_before_predicting(test_data, tmp_path, capsys) -> None:
    _refused(
        test_data,
        tmp_path,
        capsys,
        segmentation_model(fixed_input=(64, 128)),
        "inference:\n  input_size: [128, 256]\n",
        "'inference.input_size' is [128, 256] but the model's input is fixed at 64x128",
        "(None, 64, 128, 3)",
        "metadata",
    )
    assert not (tmp_path / "out" / "pixel").exists()  # nothing was predicted


def test_label_id_models(test_data, tmp_path, capsys) -> None:
    submission = make_submission(tmp_path / "sub", segmentation_model(channels=34), "inference:\n  output: labelIds\n")
    code, _, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 0, err


def _refused(test_data, tmp_path, capsys, model, metadata: str, *fragments: str) -> None:
    submission = make_submission(tmp_path / "sub", model, metadata)
    code, _, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_wrong_channel_count(test_data, tmp_path, capsys) -> None:
    _refused(test_data, tmp_path, capsys, segmentation_model(channels=20), "", "outputs 20 channels", "trainIds")


def test_nan_outputs(test_data, tmp_path, capsys) -> None:
    model = segmentation_model()
    weights = model.layers[-1].get_weights()
    model.layers[-1].set_weights([np.full_like(weights[0], np.nan), weights[1]])
    _refused(test_data, tmp_path, capsys, model, "", "NaN or infinite scores")


def test_two_outputs(test_data, tmp_path, capsys) -> None:
    keras = _keras()
    inputs = keras.Input((64, 128, 3))
    x = keras.layers.Conv2D(19, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, [x, x])
    _refused(test_data, tmp_path, capsys, model, "", "output")


def test_platform_trap_in_metadata(test_data, tmp_path, capsys) -> None:
    _refused(test_data, tmp_path, capsys, segmentation_model(), "model: model.h5\n", "downloaded as a URL")


def test_time_budget_stops_early_with_the_time_per_image() -> None:
    # After the first batch (it traces the model): 2 more images at 10 s each give 10 s per image, and
    # 30 s spent + 10 s x 497 images left = 5000 s, more than the budget.
    budget = _Budget(budget=100.0, total=500, start=0.0)
    budget.after_batch(1, 10.0)
    budget.after_batch(2, 20.0)
    with pytest.raises(SubmissionError, match=r"takes 10\.00 s per image, so 500 images would take about 5000 s"):
        budget.after_batch(3, 30.0)


class _PacedModel:
    """A model whose prediction takes a known time per image: softmax scores of a fixed map."""

    def __init__(self, seconds_per_image: float) -> None:
        self.seconds_per_image = seconds_per_image

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds_per_image * len(batch))
        scores = np.zeros((len(batch), 8, 16, 19), np.float32)
        scores[..., 7] = 1.0
        return scores


@pytest.mark.parametrize("batch_size", [1, 4])
def test_the_budget_reports_the_models_real_pace(test_data, tmp_path, monkeypatch, batch_size) -> None:
    """Results are written behind the model and in bursts: counting them, a short run's pace looked many times
    faster than the model's (0.05 s per image reported against 0.75 s)."""
    from cityscapes_competition.ingestion import inference
    from cityscapes_competition.ingestion.run import discover_test_images
    from cityscapes_competition.ingestion.submission_metadata import InferenceSettings

    real_write = inference.ResultWriter.write

    def slow_write(self, result):  # writers that lag: the first results land well after their prediction
        time.sleep(0.5)
        return real_write(self, result)

    monkeypatch.setattr(inference.ResultWriter, "write", slow_write)
    images = discover_test_images(test_data) * 10  # 40 images
    inference.load_test_image(images[0], (64, 128))  # TensorFlow's import (for the resize) before the clock
    settings = InferenceSettings(batch_size=batch_size)
    with pytest.raises(SubmissionError) as refusal:
        inference.run_inference(_PacedModel(0.1), images, tmp_path / "out", settings, "model.keras", (64, 128),
                                time_budget=3.0)  # fmt: skip
    match = re.search(r"takes ([\d.]+) s per image", str(refusal.value))
    assert match is not None, refusal.value
    assert 0.08 <= float(match.group(1)) <= 0.2, refusal.value


def test_no_batch_starts_that_would_end_after_the_budget() -> None:
    # Batches whose time varies up to 1.99x the last one's: each ends within the budget (counted twice).
    rng = np.random.default_rng(0)
    stopped = r"stopped after \d+ of 100000 images: \d+ s of the time budget of 100 s are spent"
    for _ in range(200):
        budget = _Budget(budget=100.0, total=100_000, start=0.0)
        now, batch, predicted = 0.0, float(rng.uniform(0.1, 5.0)), 0
        with pytest.raises(SubmissionError, match=stopped):
            while True:
                budget.before_batch(predicted, now)
                now, predicted = now + batch, predicted + 4
                assert now <= 100.0
                batch *= float(rng.uniform(0.5, 1.99))


def test_the_budget_is_the_phase_limit_less_the_time_spent_and_the_exit_margin() -> None:
    # Per step on both platforms, scoring with its own clock: competitions-v1-compute-worker worker.py `run`
    # (startTime, then signal.alarm(ceil(limit - elapsed)) around a 1 s poll); codabench compute_worker.py
    # `Run.start` (signal.alarm(execution_time_limit) around the gathered containers). Nothing is kept for scoring.
    from cityscapes_competition.ingestion.run import (
        EXIT_MARGIN_SECONDS,
        PLATFORM_SECONDS,
        STOP_TO_EXIT_SECONDS,
        time_budget,
    )
    from cityscapes_competition.ingestion.submission_metadata import InferenceSettings

    assert (STOP_TO_EXIT_SECONDS, PLATFORM_SECONDS, EXIT_MARGIN_SECONDS) == (2.0, 4.0, 6.0)
    assert time_budget(InferenceSettings(), 3600, spent=30) == 3600 - 30 - 6 == 3564
    assert time_budget(InferenceSettings(), 600, spent=7.5) == 600 - 7.5 - 6 == 586.5  # Codabench's default queue
    assert time_budget(InferenceSettings(), 600, spent=598) == 0.0
    assert time_budget(InferenceSettings(time_budget_seconds=500.0), 3600, spent=30) == 500.0  # the participant's
    assert time_budget(InferenceSettings(time_budget_seconds=9000.0), 3600, spent=0) == 3594


def test_the_time_spent_counts_the_process_start_up() -> None:
    # The platform's clock starts before the container does: what Python spent before run_ingestion counts too.
    code = (
        "import time; time.sleep(1.0); from cityscapes_competition.ingestion.run import process_start_counter; "
        "print(time.perf_counter() - process_start_counter())"
    )
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert 1.0 <= float(result.stdout) <= wall


def test_run_stops_early_when_the_phase_limit_is_too_short(test_data, tmp_path) -> None:
    # A limit the start-up has used up (the alarm counts from before the container: worker.py `run`, `Run.start`):
    # no batch is started at all.
    from cityscapes_competition.ingestion.run import EXIT_MARGIN_SECONDS, run_ingestion

    many = tmp_path / "many" / "leftImg8bit" / "val" / "frankfurt"
    many.mkdir(parents=True)
    source = sorted(test_data.rglob("*_leftImg8bit.png"))[0]
    for frame in range(40):
        shutil.copy(source, many / f"frankfurt_000000_{frame:06d}_leftImg8bit.png")
    submission = make_submission(tmp_path / "sub", segmentation_model())
    with pytest.raises(SubmissionError, match="stopped after 0 of 40 images"):  # nothing left after the margin
        run_ingestion(tmp_path / "many", tmp_path / "out", submission, execution_time_limit=EXIT_MARGIN_SECONDS)
    assert not list((tmp_path / "out").rglob("*.png"))


def _program_with_time_limit(tmp_path: Path, limit: int) -> Path:
    """The ingestion program as the bundle ships it (the package beside the entry point), with another limit."""
    program = tmp_path / "ingestion_program"
    shutil.copytree(REPO / "ingestion_program", program, ignore=shutil.ignore_patterns("__pycache__"))
    package = program / "cityscapes_competition"
    shutil.copytree(REPO / "cityscapes_competition", package, ignore=shutil.ignore_patterns("__pycache__"))
    settings = package / "challenge.yaml"
    text, count = re.subn(r"(?m)^execution_time_limit: \d+", f"execution_time_limit: {limit}", settings.read_text())
    assert count == 1
    settings.write_text(text)
    return program


def test_a_run_too_long_for_the_limit_exits_within_it_start_up_included(test_data, tmp_path) -> None:
    """The whole process, as the platform starts it, against the limit it reads: its clock starts before
    the process (competitions-v1-compute-worker worker.py `run`: `startTime` before `docker run`; codabench
    compute_worker.py `Run.start`: the alarm before the container is created), so the wall time from launch
    to exit, plus what the platform adds around the process, must fit."""
    from cityscapes_competition.core.ingestion_status import FAILURE_REASON
    from cityscapes_competition.ingestion.run import EXIT_MARGIN_SECONDS, PLATFORM_SECONDS

    limit = 30
    program = _program_with_time_limit(tmp_path, limit)
    many = tmp_path / "many" / "leftImg8bit" / "val" / "frankfurt"
    many.mkdir(parents=True)
    source = sorted(test_data.rglob("*_leftImg8bit.png"))[0]
    for frame in range(5000):  # at 512x1024, far more than the limit
        os.link(source, many / f"frankfurt_000000_{frame:06d}_leftImg8bit.png")
    submission = make_submission(tmp_path / "sub", segmentation_model(fixed_input=(512, 1024)))
    output = tmp_path / "out"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-I", "-u", str(program / "ingestion.py"), str(tmp_path / "many"), str(output),
         str(program), str(submission)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    wall = time.monotonic() - started
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert wall <= limit - PLATFORM_SECONDS, wall
    budget = float(re.search(r"time budget of (\d+) s", result.stderr).group(1))
    assert limit - EXIT_MARGIN_SECONDS - wall - 1 <= budget <= limit - EXIT_MARGIN_SECONDS, (budget, wall)
    assert (output / FAILURE_REASON).is_file() and not list(output.rglob("*.tmp"))  # written and closed


def test_missing_test_images_are_an_organiser_error(tmp_path, capsys) -> None:
    submission = make_submission(tmp_path / "sub", segmentation_model())
    (tmp_path / "empty").mkdir()
    code, _, err = ingest(tmp_path / "empty", submission, tmp_path / "out", capsys)
    assert code != 0 and "holds no test image" in err


def test_entry_point_as_the_platform_runs_it(test_data, tmp_path) -> None:
    """Split on spaces and run without a shell, as CodaLab's worker does; progress on stdout."""
    submission = make_submission(tmp_path / "sub", segmentation_model())
    command = (REPO / "ingestion_program" / "metadata").read_text().splitlines()[0].split(": ", 1)[1]
    values = {
        "$ingestion_program": str(REPO / "ingestion_program"),
        "$input": str(test_data),
        "$output": str(tmp_path / "out"),
        "$submission_program": str(submission),
    }
    for name in sorted(values, key=len, reverse=True):
        command = command.replace(name, values[name])
    program, *arguments = command.split(" ")
    assert program == "python3"  # on the platform: the competition image's interpreter, with the pinned packages
    result = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4/4 images" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_broken_submission_through_the_entry_point_is_one_line(test_data, tmp_path) -> None:
    submission = tmp_path / "sub"
    submission.mkdir()
    (submission / "metadata").write_text("")
    (submission / "model.h5").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "ingestion_program" / "ingestion.py"), str(test_data), str(tmp_path / "out"),
         str(REPO / "ingestion_program"), str(submission)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "LFS" in result.stderr


def test_progress_line_format() -> None:
    from cityscapes_competition.ingestion.inference import Progress

    stream = io.StringIO()
    progress = Progress(10, every_seconds=0, stream=stream)
    progress.advance()
    assert stream.getvalue().startswith("1/10 images, ")
    quiet = io.StringIO()
    progress = Progress(3, every_seconds=3600, stream=quiet)
    progress.advance()
    progress.advance()
    assert quiet.getvalue() == ""  # no line before the interval: the first images' ETA would mislead
    progress.advance()
    assert quiet.getvalue().startswith("3/3 images, ") and "ETA 0s" in quiet.getvalue()  # the last always


def test_unreadable_test_image(test_data, tmp_path, capsys) -> None:
    broken = tmp_path / "data"
    shutil.copytree(test_data / "leftImg8bit", broken / "leftImg8bit")
    next(broken.rglob("*_leftImg8bit.png")).write_bytes(b"not a png")
    submission = make_submission(tmp_path / "sub", segmentation_model())
    code, _, err = ingest(broken, submission, tmp_path / "out", capsys)
    assert code != 0 and "cannot be read as an image" in err


def _through_both_programs(test_data: Path, submission: Path, work: Path) -> str:
    """scores.txt of ``submission`` run by the ingestion and scoring entry points, as the platform runs them."""
    output = work / "results"
    ingestion = subprocess.run(
        [sys.executable, str(REPO / "ingestion_program" / "ingestion.py"), str(test_data), str(output),
         str(REPO / "ingestion_program"), str(submission)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ingestion.returncode == 0, ingestion.stderr[-2000:]
    scoring_input = work / "input"
    scoring_input.mkdir()
    (scoring_input / "ref").symlink_to(test_data)
    (scoring_input / "res").symlink_to(output)
    scoring = subprocess.run(
        [sys.executable, str(REPO / "scoring_program" / "score.py"), str(scoring_input), str(work / "scores")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert scoring.returncode == 0, scoring.stderr[-2000:]
    return (work / "scores" / "scores.txt").read_text()


def test_the_baseline_submission_through_ingestion_and_scoring(test_data, baseline_h5, tmp_path) -> None:
    """The shipped baseline, as a participant submits it, end to end through both programs; saved as .h5, the
    same model scores the same."""
    shipped = _through_both_programs(test_data, BASELINE, tmp_path / "keras")
    scores = dict(line.split(": ") for line in shipped.splitlines())
    assert float(scores["iou_class"]) > 0.2  # far above chance (about 0.02) on the synthetic scenes
    as_h5 = tmp_path / "h5_submission"
    as_h5.mkdir()
    shutil.copy(BASELINE / "metadata", as_h5 / "metadata")
    shutil.copy(baseline_h5, as_h5 / "model.h5")
    assert _through_both_programs(test_data, as_h5, tmp_path / "h5") == shipped


def test_a_model_failing_inside_predict_is_the_participants_error(test_data, tmp_path, capsys) -> None:
    # A fixed 64x128 input fed 32x64 images: Keras fails inside predict.
    _refused(test_data, tmp_path, capsys, segmentation_model(), "inference:\n  input_size: [32, 64]\n", "input_size")


def test_an_output_that_is_a_file_is_one_message(test_data, tmp_path, capsys) -> None:
    submission = make_submission(tmp_path / "sub", segmentation_model())
    (tmp_path / "out").write_text("a file")
    code, _, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err


def test_a_refused_submission_leaves_its_reason_for_the_scorer(test_data, tmp_path, capsys) -> None:
    """Codabench scores after a failed ingestion: the reason waits beside the results (ingestion_status)."""
    from cityscapes_competition.core.ingestion_status import FAILURE_REASON

    submission = make_submission(tmp_path / "sub", segmentation_model(), "command: python3 evil.py\n")
    code, _, err = ingest(test_data, submission, tmp_path / "out", capsys)
    assert code == 2 and "remove the 'command' line" in err
    assert "remove the 'command' line" in (tmp_path / "out" / FAILURE_REASON).read_text()
    assert not (tmp_path / "out" / "metadata").exists()
