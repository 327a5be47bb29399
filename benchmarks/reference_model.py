"""A reference submission with the compute of a typical competitive model, for the ingestion benchmark.

The baseline runs in ~20 ms per image, so its ingestion run is all decoding and post-processing and
the 1.15x goal says nothing about the pipeline. This model adds a convolutional branch at 512x1024
input (random weights, joined through a zero 1x1 convolution) to the trained baseline, nested as
participants nest backbones: its predict time is that of a mid-sized segmentation network while its
outputs stay the baseline's real scores, so post-processing sees what it would in the competition.

    python benchmarks/reference_model.py OUT_FOLDER
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

INPUT_SIZE = (512, 1024)
METADATA = """description: "Benchmark reference: the baseline plus a heavy convolutional branch at 512x1024."
inference:
  input_size: [512, 1024]
  output: trainIds
  scores: logits
  batch_size: 2
"""


def build_reference_model(baseline: Path, widths: tuple[int, ...] = (32, 64, 128, 128, 128, 128, 128, 128)):
    import keras

    from cityscapes_competition.ingestion.model_loading import load_model_safely

    base = load_model_safely(baseline)
    base.name = "baseline"
    inputs = keras.Input((*INPUT_SIZE, 3))
    scaled = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(widths[0], 3, strides=2, padding="same", activation="relu")(scaled)
    x = keras.layers.Conv2D(widths[1], 3, strides=2, padding="same", activation="relu")(x)
    for width in widths[2:]:
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    heavy = keras.layers.Conv2D(19, 1, kernel_initializer="zeros", bias_initializer="zeros")(x)
    half = keras.layers.AveragePooling2D(2)(inputs)
    light = keras.layers.UpSampling2D(2, interpolation="bilinear")(base(half))
    return keras.Model(inputs, keras.layers.Add()([heavy, light]), name="reference")


def write_reference_submission(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model = build_reference_model(REPO / "baseline_submission" / "model.keras")
    model.save(folder / "model.keras")  # saved as participants save theirs
    (folder / "metadata").write_text(METADATA)
    return folder


if __name__ == "__main__":
    print(write_reference_submission(Path(sys.argv[1])))
