"""A model file that crashes the HDF5 library is refused with a message, never a crash of the program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cityscapes_competition.core.errors import SubmissionError
from cityscapes_competition.ingestion.model_files import check_model_file
from cityscapes_competition.ingestion.program import ingest_main

# Two bytes of a Keras .h5's root object header, found by the fuzz test: HDF5 1.14 (h5py 3.14) then
# dereferences garbage while opening the file and dies with SIGSEGV.
CRASHING_PATCH = {857: (1, 199), 992: (109, 151)}  # offset: (byte Keras writes, byte that crashes)


@pytest.fixture(scope="module")
def crashing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    inputs = keras.Input((64, 128, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(19, 1, activation="softmax")(inputs))
    path = tmp_path_factory.mktemp("crash") / "model.h5"
    model.save(path)
    data = bytearray(path.read_bytes())
    for offset, (written, crashing) in CRASHING_PATCH.items():
        if data[offset] != written:
            pytest.skip("Keras now lays the file out differently; find a new crashing patch with tests/test_fuzz.py")
        data[offset] = crashing
    path.write_bytes(bytes(data))
    return path


def test_the_patched_file_does_crash_h5py(crashing_model: Path) -> None:
    """Why the probe exists: reading this file in the program's own process would kill it."""
    code = "import h5py, sys\nwith h5py.File(sys.argv[1], 'r') as f: dict(f.attrs)"
    process = subprocess.run([sys.executable, "-c", code, str(crashing_model)], capture_output=True, timeout=120)
    assert process.returncode < 0, process


def test_a_crashing_model_file_is_one_message(crashing_model: Path) -> None:
    with pytest.raises(SubmissionError, match=r"the HDF5 library crashed reading it \(signal 11\)"):
        check_model_file(crashing_model)


def test_the_ingestion_refuses_it_with_exit_2(crashing_model: Path, tmp_path: Path, capsys) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "metadata").write_text("")
    (submission / "model.h5").write_bytes(crashing_model.read_bytes())
    (tmp_path / "input").mkdir()
    code = ingest_main([str(tmp_path / "input"), str(tmp_path / "out"), str(tmp_path), str(submission)])
    err = capsys.readouterr().err
    assert code == 2 and "damaged or incomplete HDF5 file" in err and "crashed" in err, err


def test_an_intact_model_passes_the_probe(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(19, 1, activation="softmax")(inputs))
    model.save(tmp_path / "model.h5")
    check_model_file(tmp_path / "model.h5")


def test_a_keras_archive_whose_weights_crash_hdf5_is_one_message(crashing_model: Path, tmp_path: Path) -> None:
    """The weights of a .keras archive are copied out and probed like any model file before h5py opens them."""
    import zipfile

    from cityscapes_competition.ingestion.model_loading import load_model_safely

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", '{"class_name": "Functional", "config": {"layers": []}}')
        archive.writestr("model.weights.h5", crashing_model.read_bytes())
    with pytest.raises(SubmissionError, match=r"damaged or incomplete model\.weights\.h5 \(the HDF5 library crashed"):
        load_model_safely(path)


@pytest.mark.parametrize("kind", ["external storage", "virtual dataset"])
def test_data_kept_in_other_files_is_not_read_by_the_probe(tmp_path: Path, monkeypatch, kind: str) -> None:
    """A dataset whose bytes live in a FIFO would block the probe until its timeout; it is refused unread."""
    import os

    import h5py
    import keras

    from cityscapes_competition.ingestion import hdf5_probe
    from cityscapes_competition.ingestion.model_loading import load_model_safely

    monkeypatch.setattr(hdf5_probe, "PROBE_SECONDS", 20)
    inputs = keras.Input((None, None, 3))
    keras.Model(inputs, keras.layers.Conv2D(19, 1)(inputs)).save(tmp_path / "model.h5")
    os.mkfifo(tmp_path / "fifo")
    with h5py.File(tmp_path / "model.h5", "r+") as h5:
        group = h5["model_weights"].create_group("leak")
        if kind == "external storage":
            group.create_dataset("kernel", shape=(16,), dtype="u1", external=[(str(tmp_path / "fifo"), 0, 16)])
        else:
            layout = h5py.VirtualLayout(shape=(16,), dtype="u1")
            layout[:] = h5py.VirtualSource(str(tmp_path / "fifo"), "data", shape=(16,))
            group.create_virtual_dataset("kernel", layout)
    check_model_file(tmp_path / "model.h5")
    with pytest.raises(SubmissionError, match="is not self-contained"):
        load_model_safely(tmp_path / "model.h5")


def _child_run(path: Path) -> tuple[int, str, int]:
    """The probe's child (hdf5_probe.main, which reads the file) in a fresh interpreter: its exit code, what it
    printed and its peak memory in MiB (VmHWM: ru_maxrss would count this test process, carried across exec)."""
    script = (
        "import re, sys\n"
        "from cityscapes_competition.ingestion.hdf5_probe import main\n"
        "code = main(sys.argv[1])\n"
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=600)
    *said, peak = done.stdout.strip().splitlines()
    return done.returncode, " ".join(said), int(peak)


def test_a_huge_contiguous_row_is_read_in_pieces(tmp_path: Path) -> None:
    """A 1.4 KB file declaring one contiguous row of 3 GB (never written): read whole, it took 3.1 GB."""
    import h5py

    path = tmp_path / "row.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", shape=(1, 3 * 2**30), dtype="u1")
    assert path.stat().st_size < 10_000
    code, said, peak = _child_run(path)
    assert code == 0, said
    assert peak < 600, f"{peak} MiB"


def test_a_dataset_of_billions_of_chunks_is_refused_at_once(tmp_path: Path) -> None:
    """2**31 chunks of one byte: reading them would take the probe's whole 300 s."""
    import time

    import h5py

    path = tmp_path / "chunks.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("x", shape=(2**31,), dtype="u1", chunks=(1,))
    started = time.monotonic()
    code, said, _ = _child_run(path)
    assert code == 1 and "is cut into 2147483648 chunks" in said
    assert time.monotonic() - started < 30


def test_a_variable_length_attribute_is_measured_by_its_data(tmp_path: Path) -> None:
    """HDF5 reports a variable-length string's storage as its 16-byte reference: a 600 MB 'keras_version'
    passed the size check, then took 3.3 GB in Keras' loader. The probe measures what it read."""
    import h5py
    import keras
    import numpy as np

    inputs = keras.Input((None, None, 3))
    path = tmp_path / "model.h5"
    keras.Model(inputs, keras.layers.Conv2D(19, 1, activation="softmax")(inputs)).save(path)
    with h5py.File(path, "r+") as file:
        group = file["model_weights"]
        del group.attrs["keras_version"]
        group.attrs.create("keras_version", np.array("3" * (65 * 1024**2), dtype=object), dtype=h5py.string_dtype())
        assert h5py.h5a.open(group.id, b"keras_version").get_storage_size() < 100
    with pytest.raises(SubmissionError, match="attribute 'keras_version' is larger than 64 MB"):
        check_model_file(path)
