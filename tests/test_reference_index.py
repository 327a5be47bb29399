"""The reference index saves work, never changes a score, and notices when it is stale."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import assert_equal_to_official
from PIL import Image

from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.png.png_io import rows_filtered_none_or_up, up_filtered_copy
from cityscapes_competition.scoring import groundtruth
from cityscapes_competition.scoring.evaluation import evaluate
from cityscapes_competition.scoring.groundtruth import discover_ground_truth
from cityscapes_competition.scoring.reference_index import (
    COPIES_DIR,
    INDEX_NAME,
    INDEX_VERSION,
    build_reference_index,
    copy_paths,
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
    index = load_reference_index(ref).entries
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


def test_an_index_of_another_version_is_not_used_and_the_organiser_told(tmp_path) -> None:
    """Version 1 fingerprinted with BLAKE2b: its entries would never match, so it is not read at all."""
    (tmp_path / INDEX_NAME).write_text(json.dumps({"version": 1, "frames": {"x": 1}}))
    index = load_reference_index(tmp_path)
    assert index.entries == {}
    assert "another version of this scorer (1, not" in index.note and "cityscapes_competition index" in index.note


@pytest.fixture
def downloaded_case(edge_case, tmp_path):
    """The edge case's ground truth written as the Cityscapes tools write it (Pillow's save: Paeth rows)."""
    root, official = edge_case
    ref = tmp_path / "ref"
    shutil.copytree(root / "ref", ref)
    for path in [*ref.rglob("*_gtFine_labelIds.png"), *ref.rglob("*_gtFine_instanceIds.png")]:
        Image.fromarray(np.array(Image.open(path))).save(path)
        assert not rows_filtered_none_or_up(path.read_bytes())
    return ref, root / "res", official


def _ground_truth_files(ref) -> dict:
    return {path: path.read_bytes() for path in ref.joinpath("gtFine").rglob("*.png")}


def test_the_index_keeps_fast_copies_of_slow_ground_truth(downloaded_case) -> None:
    ref, res, official = downloaded_case
    before = _ground_truth_files(ref)
    build_reference_index(ref, workers=1)
    assert _ground_truth_files(ref) == before  # the organiser's files stay as they are
    for frame in discover_ground_truth(ref):
        originals = (frame.label_ids, frame.instance_ids)
        for original, copy in zip(originals, copy_paths(ref, frame.frame.stem), strict=True):
            assert rows_filtered_none_or_up(copy.read_bytes())
            assert np.array_equal(np.array(Image.open(copy)), np.array(Image.open(original)))
    scores = evaluate(ref, res, workers=1)
    assert not any("reference index" in warning for warning in scores.warnings)
    assert_equal_to_official(scores, official)


def test_the_scorer_decodes_the_copies_instead_of_the_files(downloaded_case, monkeypatch) -> None:
    ref, res, _ = downloaded_case
    build_reference_index(ref, workers=1)
    copies = {path.read_bytes() for path in (ref / COPIES_DIR).iterdir()}
    decoded: list[bytes] = []
    real_decode = groundtruth._decode
    monkeypatch.setattr(groundtruth, "_decode", lambda data, *args: decoded.append(data) or real_decode(data, *args))
    evaluate(ref, res, workers=1)
    assert decoded and set(decoded) == copies


def test_a_damaged_or_missing_copy_is_noticed_and_the_file_decoded(downloaded_case) -> None:
    ref, res, official = downloaded_case
    build_reference_index(ref, workers=1)
    stems = [frame.frame.stem for frame in discover_ground_truth(ref)]
    label_copy, _ = copy_paths(ref, stems[0])
    label_copy.write_bytes(label_copy.read_bytes()[:-20])
    _, instance_copy = copy_paths(ref, stems[-1])
    instance_copy.unlink()
    scores = evaluate(ref, res, workers=1)
    assert any("no longer matches 2 ground-truth images" in warning for warning in scores.warnings)
    assert_equal_to_official(scores, official)


def test_a_rebuilt_index_keeps_only_the_copies_it_needs(downloaded_case) -> None:
    ref, _, _ = downloaded_case
    build_reference_index(ref, workers=1)
    assert list((ref / COPIES_DIR).glob("*_copy.png"))
    for path in ref.joinpath("gtFine").rglob("*.png"):  # re-encoded in place, as the data builder does
        path.write_bytes(up_filtered_copy(path.read_bytes()))
    build_reference_index(ref, workers=1)
    assert not (ref / COPIES_DIR).exists()
    entries = load_reference_index(ref).entries.values()
    assert all(entry.label_copy is None and entry.instance_copy is None for entry in entries)


def test_the_index_command_says_where_it_wrote_the_copies(downloaded_case, capsys) -> None:
    from cityscapes_competition.cli import index_main

    ref, _, _ = downloaded_case
    assert index_main([str(ref), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    frames = len(discover_ground_truth(ref))
    assert f"Wrote {ref / INDEX_NAME}" in out and f"and {2 * frames} copies" in out and str(ref / COPIES_DIR) in out
