"""Finding the one model file: links are names, never followed out of the submission."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import BASELINE_MODEL

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.model_files import find_model_file


@pytest.mark.parametrize("target", ["/etc", "/etc/hostname", "/nonexistent"])
def test_a_second_model_name_linked_out_gives_one_answer_wherever_it_leads(tmp_path: Path, target: str) -> None:
    shutil.copy(BASELINE_MODEL, tmp_path / "model.keras")
    os.symlink(target, tmp_path / "probe.keras")
    with pytest.raises(SubmissionError, match=r"holds 2 model files: model\.keras, probe\.keras"):
        find_model_file(tmp_path)


@pytest.mark.parametrize("target", ["/etc", "/etc/hostname", "/nonexistent"])
@pytest.mark.parametrize("name", ["model.h5", "model.keras"])
def test_the_only_model_linked_out_is_refused_wherever_it_leads(tmp_path: Path, target: str, name: str) -> None:
    os.symlink(target, tmp_path / name)
    with pytest.raises(SubmissionError, match="pointing outside the submission folder"):
        find_model_file(tmp_path)


@pytest.mark.parametrize("target", ["/etc", "/etc/hostname", "/nonexistent"])
def test_an_hdf5_name_linked_out_beside_the_model_gives_one_answer(tmp_path: Path, target: str) -> None:
    shutil.copy(BASELINE_MODEL, tmp_path / "model.keras")
    os.symlink(target, tmp_path / "other.h5")
    with pytest.raises(SubmissionError, match=r"holds 2 model files: model\.keras, other\.h5"):
        find_model_file(tmp_path)


@pytest.mark.parametrize("name", ["model.h5", "model.keras"])
def test_a_fifo_named_like_a_model_is_refused_unread(tmp_path: Path, name: str) -> None:
    os.mkfifo(tmp_path / name)
    with pytest.raises(SubmissionError, match="is not a regular file"):
        find_model_file(tmp_path)


def test_a_link_loop_does_not_lead_the_model_search_out(tmp_path: Path) -> None:
    """model.h5 -> loop/../sub/FILE with loop -> loop and sub -> '/': realpath would give up at the loop and
    the kernel would follow 'sub' out (an attacker's internal error and existence oracle). The answer is the
    same whether the file outside exists or not."""
    messages = []
    for target in ("etc/hostname", "etc/no_such_file"):
        submission = tmp_path / target.replace("/", "_")
        submission.mkdir()
        os.symlink("loop", submission / "loop")
        os.symlink("/", submission / "sub")
        os.symlink(f"loop/../sub/{target}", submission / "model.h5")
        with pytest.raises(SubmissionError) as error:
            find_model_file(submission)
        messages.append(str(error.value).replace(str(submission), "S"))
    assert messages[0] == messages[1]
    assert "is not a regular file" in messages[0] or "pointing outside" in messages[0], messages[0]


def test_the_model_found_through_a_link_inside_is_its_target(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    shutil.copy(BASELINE_MODEL, tmp_path / "weights" / "real.keras")
    os.symlink("weights/real.keras", tmp_path / "model.keras")
    assert find_model_file(tmp_path) == (tmp_path / "weights" / "real.keras").resolve()


def test_folders_nested_deeper_than_any_submission_are_refused(tmp_path) -> None:
    """os.walk recurses: a submission 1,100 folders deep ended in a RecursionError (exit 3)."""
    deep = tmp_path / "submission"
    (deep / Path(*["a"] * 70)).mkdir(parents=True)
    with pytest.raises(SubmissionError, match="nested more than 64 deep"):
        find_model_file(deep)


def test_the_probe_keeps_a_lower_inherited_memory_limit(tmp_path) -> None:
    """Under a hard address-space limit below the probe's own cap, a valid model is still read (it was
    reported 'damaged': the child could not raise its limit to 4 GB)."""
    import subprocess
    import sys

    import h5py
    import numpy as np

    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("kernel", data=np.ones((64, 64), np.float32))
    script = (
        "import resource\n"
        "from pathlib import Path\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3_900_000_000, 3_900_000_000))\n"
        "from cityscapes_competition.ingestion.hdf5_probe import probe_hdf5\n"
        f"probe_hdf5(Path({str(path)!r}))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
