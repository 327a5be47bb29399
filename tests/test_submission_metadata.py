"""The participant's metadata: defaults, strict validation, and CodaLab's top-level string trap."""

from __future__ import annotations

import pytest

from cityscapes_competition.errors import SubmissionError
from cityscapes_competition.submission_metadata import (
    InferenceSettings,
    InstanceSettings,
    find_metadata,
    read_settings,
)


def settings_of(tmp_path, text: str) -> InferenceSettings:
    path = tmp_path / "metadata"
    path.write_text(text)
    return read_settings(path)


def test_empty_metadata_gives_the_defaults(tmp_path) -> None:
    assert settings_of(tmp_path, "") == InferenceSettings()
    assert settings_of(tmp_path, "description: my model\n") == InferenceSettings()


def test_every_setting_is_read(tmp_path) -> None:
    settings = settings_of(
        tmp_path,
        "description: x\ninference:\n  input_size: [512, 1024]\n  output: labelIds\n  scores: logits\n"
        "  batch_size: 4\n  time_budget_seconds: 3000\n  instances:\n    mode: none\n    min_area: 50\n"
        "    max_per_image: 100\n",
    )
    assert settings == InferenceSettings(
        input_size=(512, 1024),
        output="labelIds",
        scores="logits",
        batch_size=4,
        instances=InstanceSettings(mode="none", min_area=50, max_per_image=100),
        time_budget_seconds=3000.0,
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model: model.h5\n", "would be downloaded as a URL"),
        ("inference:\n  model: model.h5\n", "unknown setting 'model'"),
        ("inference:\n  output: trainids\n", "must be one of trainIds, labelIds"),
        ("inference:\n  batch_size: 0\n", "between 1 and 64"),
        ("inference:\n  batch_size: two\n", "whole number"),
        ("inference:\n  batch_size: true\n", "whole number"),
        ("inference:\n  input_size: 512\n", "[height, width]"),
        ("inference:\n  input_size: [512, 99999]\n", "[height, width]"),
        ("inference:\n  instances:\n    max_per_image: 1000\n", "between 1 and 255"),
        ("inference:\n  instances: yes\n", "must be a mapping"),
        ("inference: [1, 2]\n", "must be a mapping"),
        ("inference:\n  time_budget_seconds: -5\n", "between 1"),
        ("extra: [1]\n", "unknown top-level key 'extra'"),
        ("- a\n- b\n", "YAML mapping"),
        ("inference: {output: [unclosed\n", "not valid YAML at line"),
    ],
)
def test_mistakes_are_named(tmp_path, text, fragment) -> None:
    with pytest.raises(SubmissionError, match=None) as error:
        settings_of(tmp_path, text)
    assert fragment in str(error.value)
    assert "metadata" in str(error.value)


def test_binary_metadata(tmp_path) -> None:
    path = tmp_path / "metadata"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(SubmissionError, match="not UTF-8"):
        read_settings(path)


def test_metadata_in_a_github_archive_folder(tmp_path) -> None:
    wrapper = tmp_path / "my-repo-main"
    wrapper.mkdir()
    (wrapper / "metadata").write_text("")
    assert find_metadata(tmp_path) == wrapper / "metadata"


def test_missing_metadata(tmp_path) -> None:
    (tmp_path / "model.h5").write_bytes(b"")
    with pytest.raises(SubmissionError, match="no 'metadata' file"):
        find_metadata(tmp_path)
