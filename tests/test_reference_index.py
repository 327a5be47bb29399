"""The reference index saves work, never changes a score, and notices when it is stale."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import assert_equal_to_official
from PIL import Image

from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.scoring.evaluation import evaluate
from cityscapes_competition.scoring.reference_index import (
    INDEX_NAME,
    INDEX_VERSION,
    build_reference_index,
    load_reference_index,
)


@pytest.fixture
def indexed_case(edge_case, tmp_path):
    root, official = edge_case
    shutil.copytree(root / "ref", tmp_path / "ref")
    build_reference_index(tmp_path / "ref", workers=1)
    return tmp_path / "ref", root / "res", official


def test_scores_with_the_index_equal_the_official_ones(indexed_case) -> None:
    ref, res, official = indexed_case
    scores = evaluate(ref, res, workers=1)
    assert not any("reference index" in warning for warning in scores.warnings)
    assert_equal_to_official(scores, official)


def test_index_entries_cover_every_frame(indexed_case) -> None:
    ref, _, _ = indexed_case
    index = load_reference_index(ref)
    assert len(index) == len(list(ref.rglob("*_gtFine_labelIds.png")))
    entry = next(iter(index.values()))
    assert len(entry.label_counts) == 34 and entry.median_depth is not None


def test_a_stale_index_is_noticed_and_ignored(indexed_case) -> None:
    ref, res, official = indexed_case
    disparity = sorted(ref.rglob("*_disparity.png"))[0]
    Image.fromarray(np.array(Image.open(disparity))).save(disparity, compress_level=1)  # same pixels, new bytes
    scores = evaluate(ref, res, workers=1)
    assert any("no longer matches 1 ground-truth images" in warning for warning in scores.warnings)
    assert_equal_to_official(scores, official)


def test_a_malformed_index_is_an_organiser_error(tmp_path) -> None:
    (tmp_path / INDEX_NAME).write_text(json.dumps({"version": INDEX_VERSION, "frames": {"x": 1}}))
    with pytest.raises(ReferenceDataError, match="not a valid reference index"):
        load_reference_index(tmp_path)


def test_an_index_of_another_version_is_not_used(tmp_path) -> None:
    """Version 1 fingerprinted with BLAKE2b: its entries would never match, so it is not read at all."""
    (tmp_path / INDEX_NAME).write_text(json.dumps({"version": 1, "frames": {"x": 1}}))
    assert load_reference_index(tmp_path) == {}
