"""Shared fixtures: small data sets made once per session, and the official evaluation of them (slow)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from helpers import BASELINE_MODEL, TinyCase, run_official, write_tiny_case

from edge_case_data import write_edge_case_data

# Test modules that load TensorFlow or run the official scripts: marked slow, left out by 'make test-fast'.
SLOW_MODULES = frozenset(
    {
        "test_fuzz",
        "test_hdf5_probe",
        "test_inference",
        "test_ingestion",
        "test_keras_hub_export",
        "test_model_formats",
        "test_model_graph",
        "test_model_memory",
        "test_model_safety",
        "test_official_equivalence",
        "test_official_harness",
        "test_platform_worker",
        "test_reference_index",
        "test_submission_check",
        "test_training",
    }
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A fast run ('-m "not slow"') does not even import the slow modules: some import TensorFlow (the
    baseline's training does), which the check below would then blame on the fast ones."""
    if config.getoption("markexpr") == "not slow" and collection_path.stem in SLOW_MODULES:
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A fast run that loaded TensorFlow lists a slow module among the fast: say which list to fix."""
    if session.config.getoption("markexpr") == "not slow" and "tensorflow" in sys.modules and exitstatus == 0:
        print("\nTensorFlow was loaded by a test not marked slow: add its module to conftest.SLOW_MODULES")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def tiny_case_template(tmp_path_factory) -> TinyCase:
    return write_tiny_case(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_case(tiny_case_template: TinyCase, tmp_path: Path) -> TinyCase:
    """A private copy that a test may break."""
    ref, res = tmp_path / "ref", tmp_path / "res"
    shutil.copytree(tiny_case_template.ref, ref)
    shutil.copytree(tiny_case_template.res, res)
    return TinyCase(ref, res, tiny_case_template.frames)


@pytest.fixture(scope="session")
def baseline_h5(tmp_path_factory) -> Path:
    """The trained baseline saved again as legacy HDF5: only the .keras is committed, and .h5 stays accepted."""
    from cityscapes_competition.ingestion.model_loading import load_model_safely

    path = tmp_path_factory.mktemp("baseline_h5") / "model.h5"
    load_model_safely(BASELINE_MODEL).save(path)
    return path


# Seeds whose data the official code evaluates without hitting its issue-#89 crash.
EDGE_CASE_SEEDS = (2, 4, 5)


@pytest.fixture(scope="session", params=EDGE_CASE_SEEDS)
def edge_case(request, tmp_path_factory) -> tuple[Path, dict]:
    root = write_edge_case_data(tmp_path_factory.mktemp(f"edge{request.param}"), request.param)
    return root, run_official(root, root / "official.json")


@pytest.fixture(scope="session")
def synthetic_case(tmp_path_factory) -> tuple[Path, dict]:
    from cityscapes_competition.synthetic import results as synthetic_results
    from cityscapes_competition.synthetic import scenes as synthetic

    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate_split(root / "ref", "val", 8, seed=3, size=(512, 256), workers=2)
    synthetic_results.generate_results(root / "ref", root / "res", seed=3, instances_per_image=30, mask_mode="mixed")
    return root, run_official(root, root / "official.json")


@pytest.fixture(scope="session")
def keras():
    """Keras on TensorFlow, CPU only and quiet, as the ingestion imports it (slow tests only)."""
    from cityscapes_competition.ingestion.keras_runtime import import_keras

    return import_keras()


@pytest.fixture(scope="session")
def tf_keras(keras):
    """tf.keras 2.x, to write the legacy .h5 files participants still have (after Keras 3 is set up)."""
    import tf_keras

    return tf_keras
