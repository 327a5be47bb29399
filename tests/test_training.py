"""The baseline model and its training pipeline: label tables, one training step, export, clear data errors."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, labels, trainId2label

from cityscapes_competition.baseline import training
from cityscapes_competition.baseline.baseline_model import build_baseline_model
from cityscapes_competition.baseline.training import (
    LABEL_ID_TO_TRAIN_ID,
    TRAIN_ID_TO_LABEL_ID,
    Frame,
    TrainingDataError,
)
from cityscapes_competition.core.errors import UserFacingError
from cityscapes_competition.ingestion.model_loading import load_model_safely
from cityscapes_competition.ingestion.submission_metadata import InferenceSettings, read_settings
from cityscapes_competition.synthetic import scenes as synthetic

REPO = Path(__file__).resolve().parents[1]
SMALL = (64, 128)  # (height, width) of the model in these tests
RENDER = (256, 128)  # (width, height) of the generated frames


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    synthetic.generate_split(root, "train", 2, seed=0, size=RENDER, workers=1)
    synthetic.generate_split(root, "val", 1, seed=1, size=RENDER, workers=1)
    return root


def test_label_id_to_train_id_table():
    assert LABEL_ID_TO_TRAIN_ID.shape == (256,)
    assert LABEL_ID_TO_TRAIN_ID[7] == 0  # road
    assert LABEL_ID_TO_TRAIN_ID[26] == 13  # car
    assert LABEL_ID_TO_TRAIN_ID[33] == 18  # bicycle
    for ignored in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 200, 255):
        assert LABEL_ID_TO_TRAIN_ID[ignored] == 255
    for label in labels:  # the official table, entry by entry
        if label.id >= 0:
            expected = 255 if label.ignoreInEval else label.trainId
            assert LABEL_ID_TO_TRAIN_ID[label.id] == expected, label.name
    assert [id2label[int(i)].trainId for i in TRAIN_ID_TO_LABEL_ID] == list(range(19))
    assert [int(i) for i in TRAIN_ID_TO_LABEL_ID] == [trainId2label[t].id for t in range(19)]


def test_model_shape_and_builtin_layers():
    model = build_baseline_model(SMALL)
    assert model.input.shape == (None, *SMALL, 3)
    assert model.output.shape == (None, SMALL[0] // 4, SMALL[1] // 4, 19)
    assert all(type(layer).__module__.startswith("keras.src.layers") for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert isinstance(model.layers[1], keras.layers.Rescaling)  # normalization inside the model
    with pytest.raises(ValueError, match="multiples of 16"):
        build_baseline_model((100, 200))


def test_find_frames_and_load(tiny_root: Path):
    frames = training.find_frames(tiny_root, "train")
    assert [f.stem for f in frames] == ["aachen_000000_000019", "bochum_000000_000019"]
    image, train_ids = next(iter(training.load_frames(frames, SMALL)))
    assert image.shape == (*SMALL, 3) and image.dtype == "uint8"
    assert train_ids.shape == SMALL
    values = set(np.unique(train_ids.numpy()).tolist())
    assert values <= set(range(19)) | {255} and 0 in values and 255 in values


def test_training_step_export_and_reload(tiny_root: Path, tmp_path: Path):
    frames = training.find_frames(tiny_root, "train")
    val = training.find_frames(tiny_root, "val")
    config = training.TrainConfig(input_size=SMALL, epochs=1, batch_size=2, val_batch_size=1)
    logs: list[str] = []
    result = training.train(frames, config, val, log=logs.append)
    (entry,) = result.history
    assert np.isfinite(entry.loss) and 0 <= entry.pixel_accuracy <= 1
    assert entry.val_miou is not None and 0 <= entry.val_miou <= 1
    assert any(line.startswith("epoch 1/1: loss") for line in logs)
    assert result.class_weights is not None and result.class_weights[16] == 0  # no train pixels: weight 0

    batch = np.random.default_rng(1).uniform(0, 255, (2, *SMALL, 3)).astype(np.float32)
    expected = result.model.predict(batch, verbose=0)
    for name in ("model.keras", "model.h5"):  # the default format, and legacy HDF5 on request
        path = training.export_model(result.model, tmp_path / name)
        assert path.is_file() and not list(tmp_path.glob(".*partial*"))
        for reloaded in (keras.models.load_model(path, compile=False, safe_mode=True), load_model_safely(path)):
            np.testing.assert_allclose(reloaded.predict(batch, verbose=0), expected, atol=1e-4)
    with pytest.raises(ValueError, match=r"must end with \.keras or \.h5"):
        training.export_model(result.model, tmp_path / "model.hdf5")

    # The full-resolution prediction the ingestion program would make, scored like the scoring program.
    predicted = training.predict_label_ids(reloaded, batch[:1], (RENDER[1], RENDER[0]))
    assert predicted.shape == (1, RENDER[1], RENDER[0])
    assert set(np.unique(predicted).tolist()) <= set(TRAIN_ID_TO_LABEL_ID.tolist())


def test_masked_loss_ignores_255():
    logits = np.zeros((1, 2, 2, 19), np.float32)
    logits[..., 3] = 5.0
    weights = np.ones(19, np.float32)
    labels_right = np.array([[[3, 255], [255, 255]]], np.int32)
    labels_wrong = np.array([[[3, 0], [0, 0]]], np.int32)
    right = float(training.masked_cross_entropy(labels_right, logits, weights))
    wrong = float(training.masked_cross_entropy(labels_wrong, logits, weights))
    assert right == pytest.approx(float(np.log1p(18 * np.exp(-5.0))), rel=1e-5)
    assert wrong > right


def test_wrong_data_root_is_one_clear_error(tmp_path: Path, tiny_root: Path):
    with pytest.raises(TrainingDataError, match="holds no images of split 'train'"):
        training.find_frames(tmp_path, "train")
    with pytest.raises(TrainingDataError, match="is not a folder"):
        training.find_frames(tmp_path / "missing", "train")
    image = next((tiny_root / "leftImg8bit" / "train").rglob("*_leftImg8bit.png"))
    broken = tmp_path / "broken"
    (broken / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    (broken / "leftImg8bit" / "train" / "aachen" / image.name).write_bytes(image.read_bytes())
    with pytest.raises(TrainingDataError, match=r"has no labels: .*_gtFine_labelIds\.png is missing"):
        training.find_frames(broken, "train")


def load_tool():
    spec = importlib.util.spec_from_file_location("train_baseline", REPO / "tools" / "train_baseline.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_command_line_reports_a_wrong_root_in_one_line(tmp_path: Path, capsys):
    tool = load_tool()
    assert tool.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "model.keras")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "holds no images of split 'train'" in err and "\n" not in err
    assert not (tmp_path / "model.keras").exists()
    with pytest.raises(SystemExit):
        tool.main(["--out", str(tmp_path / "model.onnx")])
    assert "--out must be a folder (e.g. my_submission) or name a .keras or .h5 file" in capsys.readouterr().err
    assert issubclass(TrainingDataError, UserFacingError)


def test_the_validation_frames_are_a_fixed_fraction_of_train_picked_by_name() -> None:
    frames = [
        Frame(Path(f"/d/{c}_{i:06d}_000019_leftImg8bit.png"), Path(f"/g/{c}{i}")) for c in "ab" for i in range(50)
    ]
    kept, held = training.hold_out(frames, 0.1)
    assert len(held) == 10 and len(kept) == 90 and not {f.image for f in kept} & {f.image for f in held}
    assert training.hold_out(frames[::-1], 0.1)[1] == held[::-1]  # the same frames whatever the order
    assert training.hold_out(frames, 0.0) == (frames, [])
    assert len(training.hold_out(frames[:2], 0.9)[0]) == 1  # one frame is always left to train on


def test_the_tool_never_overwrites_and_shows_every_default(tmp_path: Path, capsys) -> None:
    tool = load_tool()
    assert tool.DEFAULT_OUT == Path("my_submission")  # a new folder, never baseline_submission/
    for action in tool.build_parser()._actions:
        if action.help not in (None, argparse.SUPPRESS) and action.dest != "help":
            assert "default" in action.help, action.option_strings
    with pytest.raises(SystemExit):
        tool.main(["--out", str(REPO / "baseline_submission")])  # refused before any training
    assert "already holds model.keras and metadata" in capsys.readouterr().err
    (tmp_path / "old.h5").write_bytes(b"")
    with pytest.raises(SystemExit):
        tool.main(["--out", str(tmp_path), "--force"])
    assert "also holds old.h5: the submission would hold two model files" in capsys.readouterr().err


def test_the_tool_writes_a_complete_submission_validated_on_held_out_train_frames(
    tiny_root: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    tool = load_tool()
    splits: list[str] = []
    real_find = training.find_frames
    monkeypatch.setattr(training, "find_frames", lambda root, split: splits.append(split) or real_find(root, split))
    out = tmp_path / "my_submission"
    argv = ["--data-root", str(tiny_root), "--out", str(out), "--epochs", "1", "--batch-size", "1"]
    assert tool.main([*argv, "--input-size", "64", "128", "--val-fraction", "0.5", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert splits == ["train"]  # val, the competition's test set, is never read
    assert "validating on 1 of the 1 train frames held out (50% of train" in captured.out
    assert read_settings(out / "metadata") == InferenceSettings(
        input_size=(64, 128), output="trainIds", scores="logits", batch_size=4
    )
    assert sorted(p.name for p in out.iterdir()) == ["metadata", "model.keras"]
    assert captured.out.strip().splitlines()[-1].endswith(f"check_submission.py {out}")
    for bar in ("loading frames", "epoch 1/1", "validation"):  # tqdm's bars, with their ETA
        assert bar in captured.err and "<" in captured.err, captured.err
