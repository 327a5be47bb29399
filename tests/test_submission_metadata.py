"""The participant's metadata: defaults, strict validation, and CodaLab's top-level string trap."""

from __future__ import annotations

import os

import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.submission_metadata import (
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
        ("inference: false\n", "must be a mapping"),
        ("inference: 0\n", "must be a mapping"),
        ("inference: []\n", "must be a mapping"),
        ("inference: ''\n", "must be a mapping"),
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


# ---- hostile metadata: nothing runs, nothing expands, every failure is one bounded message ----------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("command: python3 run.py\n", "has a 'command: 'python3 run.py'' line"),
        ("command: [python3, run.py]\n", "line, which both platforms would run"),
        ("description: x\ncommand: ''\n", "remove the 'command' line"),
        (ALIAS_BOMB, "uses a YAML alias"),
        ("inference: " + "[" * 30_000 + "]" * 30_000 + "\n", "nested too deeply"),
        ("inference:\n  batch_size: " + "9" * 5000 + "\n", "holds a value YAML cannot represent"),
        ("inference:\n  output: " + "x" * 50_000 + "\n", "is 'xxxx"),
        ("x" * 1000 + ": [1]\n", "unknown top-level key 'xxxx"),
        ("inference: !!python/object/apply:os.system [echo]\n", "could not determine a constructor"),
        ("inference:\n  input_size: [512, 1024]\n  input_size: 5\n", "[height, width]"),
    ],
)
def test_hostile_metadata_is_one_short_message(tmp_path, text, fragment) -> None:
    assert len(text.encode()) < 64 * 1024
    with pytest.raises(SubmissionError) as error:
        settings_of(tmp_path, text)
    message = str(error.value)
    assert fragment in message, message
    assert len(message) < 700 and "\n" not in message


@pytest.mark.parametrize("name", ["metadata.yaml", "metadata.yml", "Metadata.YAML"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_a_second_metadata_file_is_refused(tmp_path, name, wrapped) -> None:
    """Codabench's _run_program_directory runs metadata.yaml's command before looking at metadata."""
    folder = tmp_path / "repo-main" if wrapped else tmp_path
    folder.mkdir(exist_ok=True)
    (folder / "metadata").write_text("inference:\n  batch_size: 2\n")
    (folder / name).write_text("command: python3 -c 'import os; os.system(\"id\")'\n")
    with pytest.raises(SubmissionError, match="is a second metadata file") as error:
        find_metadata(tmp_path)
    assert name in str(error.value)


def test_a_metadata_yaml_alone_is_refused_with_its_reason(tmp_path) -> None:
    (tmp_path / "metadata.yaml").write_text("command: python3 run.py\n")
    with pytest.raises(SubmissionError, match="is a second metadata file"):
        find_metadata(tmp_path)


def test_metadata_linked_out_of_the_submission_is_not_read(tmp_path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("inference:\n  batch_size: 3\n")
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "metadata").symlink_to(secret)
    with pytest.raises(SubmissionError, match="points outside the submission folder"):
        read_settings(find_metadata(submission), submission)


def test_a_fifo_as_metadata_is_refused_unread(tmp_path) -> None:
    import os

    os.mkfifo(tmp_path / "metadata")
    with pytest.raises(SubmissionError, match="named pipe"):
        read_settings(find_metadata(tmp_path), tmp_path)


def test_a_byte_order_mark_is_accepted(tmp_path) -> None:
    path = tmp_path / "metadata"
    path.write_bytes(b"\xef\xbb\xbfinference:\n  batch_size: 2\n")
    assert read_settings(path).batch_size == 2


@pytest.mark.parametrize("target", ["/etc", "/nonexistent"])
def test_a_linked_wrapper_folder_is_never_followed(tmp_path, target) -> None:
    """What lies outside the submission is not looked at: the same answer wherever the link leads."""
    os.symlink(target, tmp_path / "repo-main")
    with pytest.raises(SubmissionError, match="holds no 'metadata' file"):
        find_metadata(tmp_path)


@pytest.mark.parametrize("target", ["/etc", "/etc/hostname", "/nonexistent"])
def test_a_linked_metadata_is_refused_wherever_it_leads(tmp_path, target) -> None:
    os.symlink(target, tmp_path / "metadata")
    with pytest.raises(SubmissionError, match="points outside the submission folder"):
        read_settings(find_metadata(tmp_path), tmp_path)


def test_a_link_loop_does_not_lead_the_metadata_out(tmp_path) -> None:
    """loop -> loop, sub -> outside, metadata -> loop/../sub/secret: an attacker's way past realpath."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("db_password: hunter2\n")
    submission = tmp_path / "submission"
    submission.mkdir()
    os.symlink("loop", submission / "loop")
    os.symlink("../outside", submission / "sub")
    os.symlink("loop/../sub/secret.yaml", submission / "metadata")
    with pytest.raises(SubmissionError) as error:
        read_settings(find_metadata(submission), submission)
    assert "hunter2" not in str(error.value)
    assert "link loop" in str(error.value) or "points outside" in str(error.value)


# ---- where the metadata is found: the root, the one top-level folder, or beside the model --------------------


def test_metadata_beside_the_model_in_a_sub_folder(tmp_path) -> None:
    """repo-main/my_submission/{metadata,model.keras}: the ingestion and the checker find both."""
    folder = tmp_path / "repo-main" / "my_submission"
    folder.mkdir(parents=True)
    (folder / "metadata").write_text("inference:\n  batch_size: 2\n")
    (folder / "model.keras").write_bytes(b"")
    (tmp_path / "repo-main" / "README.md").write_text("")
    assert find_metadata(tmp_path, folder / "model.keras") == folder / "metadata"
    with pytest.raises(SubmissionError) as error:
        find_metadata(tmp_path)  # without the model, the message says where the one it saw is
    assert "holds no 'metadata' file" in str(error.value) and "it holds repo-main/my_submission/metadata" in str(
        error.value
    )
    (folder / "metadata.yaml").write_text("command: run.sh\n")
    with pytest.raises(SubmissionError, match="is a second metadata file"):
        find_metadata(tmp_path, folder / "model.keras")


def test_the_root_metadata_comes_first_and_a_misnamed_one_is_named(tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")
    (tmp_path / "metadata").write_text("")
    (folder / "metadata").write_text("")
    assert find_metadata(tmp_path, folder / "model.keras") == tmp_path / "metadata"
    (tmp_path / "metadata").unlink()
    (folder / "metadata").rename(folder / "metadata.txt")
    with pytest.raises(SubmissionError) as error:
        find_metadata(tmp_path, folder / "model.keras")
    message = str(error.value)
    assert "nor beside the model" in message and "models/metadata.txt" in message
    assert "named exactly 'metadata' (no extension)" in message and "beside the model" in message


def test_a_model_outside_the_submission_does_not_lead_the_metadata_out(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metadata").write_text("inference:\n  batch_size: 3\n")
    submission = tmp_path / "submission"
    submission.mkdir()
    with pytest.raises(SubmissionError, match="holds no 'metadata' file"):
        find_metadata(submission, outside / "model.keras")


# ---- messages that say what was meant ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("inference:\n  batchsize: 4\n", "unknown setting 'batchsize' (did you mean 'batch_size'?)"),
        ("inference:\n  input_sise: [256, 512]\n", "(did you mean 'input_size'?)"),
        ("inference:\n  instance:\n    mode: none\n", "(did you mean 'instances'?)"),
        ("inference:\n  instances:\n    minarea: 5\n", "'inference.instances' has unknown setting 'minarea' (did"),
        ("inference:\n  output: trainids\n", "one of trainIds, labelIds (did you mean 'trainIds'?)"),
        ("inference:\n  scores: logit\n", "(did you mean 'logits'?)"),
        ("inferense:\n  batch_size: 4\n", "unknown top-level key 'inferense' (did you mean 'inference'?)"),
        ("inference:\n  colour: red\n", "unknown setting 'colour' (the settings here: batch_size, input_size"),
        ("batch_size: 4\n", "'batch_size' is a setting: indent it under 'inference:'"),
        ("output: trainIds\n", "'output' is a setting: indent it under 'inference:'"),
        ("inference:\n  batch_size:4\n", "Put a space after each ':'"),
        ("inference:\n\tbatch_size: 4\n", "Indent with spaces, not tabs"),
        ("inference:\n  batch_size: 4\n output: trainIds\n", "line 3, column 2"),
        ("inference:\n  batch_size: 4\n output: trainIds\n", "by the same number of spaces"),
        ("inference:\n  input_size: [256, 512\n", "expected ',' or ']'"),
    ],
)
def test_a_misspelt_or_misplaced_setting_gets_a_suggestion(tmp_path, text, fragment) -> None:
    with pytest.raises(SubmissionError) as error:
        settings_of(tmp_path, text)
    assert fragment in str(error.value), str(error.value)
