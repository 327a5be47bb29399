"""Building the competition's data folders from a Cityscapes download (faked with synthetic frames) or synthetic."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from cityscapes_competition.core.errors import ReferenceDataError
from cityscapes_competition.core.naming import FrameId, pick_samples
from cityscapes_competition.organiser import competition_data
from cityscapes_competition.organiser.competition_data import (
    INPUT_DATA,
    MANIFEST_NAME,
    REFERENCE_DATA,
    SAMPLE_DATA,
    build_competition_data,
    main,
)
from cityscapes_competition.scoring.reference_index import INDEX_NAME, load_reference_index
from cityscapes_competition.synthetic import scenes as synthetic

SIZE = (256, 128)
FRAMES = 6  # two per val city
KINDS = ("gtFine", "leftImg8bit", "disparity", "camera")


@pytest.fixture(scope="module")
def download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake Cityscapes root: every zip unpacked into it (with gtFine_color files, as in the real download)."""
    root = tmp_path_factory.mktemp("download")
    synthetic.generate_split(root, "val", FRAMES, seed=1, size=SIZE, workers=1)
    return root


@pytest.fixture
def cityscapes(download: Path, tmp_path: Path) -> Path:
    """A private copy of the download that a test may break."""
    return Path(shutil.copytree(download, tmp_path / "cityscapes"))


def _build(out: Path, root: Path, samples: int = 4) -> competition_data.CompetitionData:
    return build_competition_data(out, cityscapes_root=root, sample_count=samples, progress=False, workers=1)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _stems(folder: Path) -> set[str]:
    return {p.name.removesuffix("_leftImg8bit.png") for p in folder.rglob("*_leftImg8bit.png")}


def _expected_reference(stems: set[str]) -> set[str]:
    files = {INDEX_NAME}
    for stem in stems:
        city = stem.split("_")[0]
        files |= {
            f"gtFine/val/{city}/{stem}_gtFine_labelIds.png",
            f"gtFine/val/{city}/{stem}_gtFine_instanceIds.png",
            f"disparity/val/{city}/{stem}_disparity.png",
            f"camera/val/{city}/{stem}_camera.json",
        }
    return files


def _error(out: Path, root: Path) -> str:
    with pytest.raises(ReferenceDataError) as caught:
        _build(out, root)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "temporary folders left"
    return str(caught.value)


# ----------------------------------------------------------------------------------- the layout


def test_builds_the_three_folders_from_a_download(cityscapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    data = _build(out, cityscapes)
    stems = {p.name.removesuffix("_leftImg8bit.png") for p in (cityscapes / "leftImg8bit").rglob("*.png")}
    assert (data.frames, data.samples, data.has_distances, data.reused) == (FRAMES, 4, True, False)
    assert (data.reference_data, data.input_data, data.sample_data) == (
        out / REFERENCE_DATA,
        out / INPUT_DATA,
        out / SAMPLE_DATA,
    )
    assert _files(data.reference_data) == _expected_reference(stems)  # no _gtFine_color.png
    assert _files(data.input_data) == {f"leftImg8bit/val/{s.split('_')[0]}/{s}_leftImg8bit.png" for s in stems}
    assert set(load_reference_index(data.reference_data).entries) == {FrameId(*s.split("_")) for s in stems}
    assert any("500" in warning for warning in data.warnings)  # 6 frames, not the 500 of the val split
    label = "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"
    assert (data.reference_data / label).samefile(cityscapes / label)  # hard-linked on one file system
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cityscapes", "out"]
    assert json.loads((out / MANIFEST_NAME).read_text())["frames"] == FRAMES


def test_paeth_photos_are_reencoded_for_the_fast_decoder_with_the_same_pixels(cityscapes: Path, tmp_path: Path) -> None:
    from PIL import Image

    from cityscapes_competition.png.fast_png import decode_rgb

    photos = sorted((cityscapes / "leftImg8bit").rglob("*_leftImg8bit.png"))
    with Image.open(photos[0]) as image:
        pixels = np.asarray(image.convert("RGB"))
    Image.fromarray(pixels).save(photos[0], optimize=True)  # Pillow's adaptive filters: Paeth rows, as a real download
    assert decode_rgb(photos[0].read_bytes()) is None
    data = _build(tmp_path / "out", cityscapes)
    for input_data in (data.input_data, data.sample_data / INPUT_DATA):
        for placed in input_data.rglob("*_leftImg8bit.png"):
            source = cityscapes / placed.relative_to(input_data)
            assert placed.samefile(source) == (source != photos[0])  # only the slow one is rewritten
            decoded = decode_rgb(placed.read_bytes())
            assert decoded is not None
            with Image.open(source) as original:
                np.testing.assert_array_equal(decoded, np.asarray(original.convert("RGB")))


def test_pillow_written_ground_truth_is_reencoded_with_the_same_pixels(cityscapes: Path, tmp_path: Path) -> None:
    """The download's labelIds, instanceIds and disparity (written by the Cityscapes tools through Pillow:
    Paeth rows) are placed Up-filtered, pixel for pixel; files already so, and the camera files, are linked."""
    from PIL import Image

    from cityscapes_competition.png.png_io import rows_filtered_none_or_up

    suffixes = ("_gtFine_labelIds.png", "_gtFine_instanceIds.png", "_disparity.png")
    rewritten = [next(cityscapes.rglob(f"lindau_000000_000019{suffix}")) for suffix in suffixes]
    for path in rewritten:
        with Image.open(path) as image:
            pixels = np.asarray(image)
        Image.fromarray(pixels).save(path)  # as json2labelImg / json2instanceImg save: Pillow's adaptive filters
        assert not rows_filtered_none_or_up(path.read_bytes())
    data = _build(tmp_path / "out", cityscapes)
    for reference in (data.reference_data, data.sample_data / REFERENCE_DATA):
        for placed in reference.rglob("*.*"):
            source = cityscapes / placed.relative_to(reference)
            if placed.name == INDEX_NAME or not source.exists():
                continue
            assert placed.samefile(source) == (source not in rewritten)
            if source in rewritten:
                assert rows_filtered_none_or_up(placed.read_bytes())
                with Image.open(source) as original, Image.open(placed) as copy:
                    assert copy.mode == original.mode
                    np.testing.assert_array_equal(np.asarray(copy), np.asarray(original))


def test_input_data_holds_no_ground_truth(cityscapes: Path, tmp_path: Path) -> None:
    data = _build(tmp_path / "out", cityscapes)
    for folder in (data.input_data, data.sample_data / INPUT_DATA):
        names = [p.name for p in folder.rglob("*") if p.is_file()]
        assert names
        assert all(name.endswith("_leftImg8bit.png") for name in names)


def test_sample_spans_the_cities_with_both_halves(cityscapes: Path, tmp_path: Path) -> None:
    data = _build(tmp_path / "out", cityscapes, samples=4)
    sample_stems = _stems(data.sample_data / INPUT_DATA)
    assert len(sample_stems) == 4
    assert {stem.split("_")[0] for stem in sample_stems} == {"frankfurt", "lindau", "munster"}
    assert _files(data.sample_data / REFERENCE_DATA) == _expected_reference(sample_stems)
    assert sorted(p.name for p in data.sample_data.iterdir()) == [INPUT_DATA, REFERENCE_DATA]


def test_pick_samples_takes_cities_in_turn() -> None:
    frames = [FrameId(city, f"{k:06d}", "000019") for city in ("a", "b", "c") for k in range(3)]
    assert [f.stem for f in pick_samples(frames, 5)] == [
        "a_000000_000019",
        "a_000001_000019",
        "b_000000_000019",
        "b_000001_000019",
        "c_000000_000019",
    ]
    assert pick_samples(frames, 50) == sorted(frames)


def test_zips_unpacked_into_their_own_folders(cityscapes: Path, download: Path, tmp_path: Path) -> None:
    for kind in KINDS:
        (cityscapes / f"{kind}_trainvaltest").mkdir()
        (cityscapes / kind).rename(cityscapes / f"{kind}_trainvaltest" / kind)
    data = _build(tmp_path / "out", cityscapes)
    reference = _build(tmp_path / "plain", download)
    assert _files(data.reference_data) == _files(reference.reference_data)
    assert _files(data.input_data) == _files(reference.input_data)


def test_rebuild_replaces_an_earlier_build(cityscapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(out, cityscapes, samples=4)
    data = _build(out, cityscapes, samples=2)
    assert (data.samples, data.reused) == (2, False)
    assert len(_stems(out / SAMPLE_DATA)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cityscapes", "out"]


# ------------------------------------------------------------------------------ organiser mistakes


def test_missing_archive_is_named(cityscapes: Path, tmp_path: Path) -> None:
    shutil.rmtree(cityscapes / "leftImg8bit")
    message = _error(tmp_path / "out", cityscapes)
    assert str(cityscapes) in message
    assert "leftImg8bit_trainvaltest.zip" in message
    assert "gtFine_trainvaltest.zip" not in message


def test_folder_inside_the_download_gets_a_hint(cityscapes: Path, tmp_path: Path) -> None:
    message = _error(tmp_path / "out", cityscapes / "gtFine")
    assert "pass the folder that holds gtFine/" in message


def test_missing_files_are_listed_and_counted(cityscapes: Path, tmp_path: Path) -> None:
    (cityscapes / "gtFine/val/lindau/lindau_000000_000019_gtFine_instanceIds.png").unlink()
    (cityscapes / "gtFine/val/munster/munster_000001_000019_gtFine_instanceIds.png").unlink()
    (cityscapes / "leftImg8bit/val/munster/munster_000001_000019_leftImg8bit.png").unlink()
    message = _error(tmp_path / "out", cityscapes)
    assert "2 of 6 val frames lack files (3 missing:" in message
    assert "gtFine/val/lindau/lindau_000000_000019_gtFine_instanceIds.png" in message
    assert "leftImg8bit_trainvaltest.zip" in message


def test_image_without_ground_truth_is_refused(cityscapes: Path, tmp_path: Path) -> None:
    for path in (cityscapes / "gtFine/val/frankfurt").glob("frankfurt_000001_000019_*"):
        path.unlink()
    message = _error(tmp_path / "out", cityscapes)
    assert "frankfurt_000001_000019_gtFine_labelIds.png" in message


def test_without_disparity_and_camera_warns_and_continues(cityscapes: Path, tmp_path: Path) -> None:
    shutil.rmtree(cityscapes / "disparity")
    shutil.rmtree(cityscapes / "camera")
    data = _build(tmp_path / "out", cityscapes)
    assert not data.has_distances
    assert any("AP100m and AP50m cannot be computed" in warning for warning in data.warnings)
    assert {Path(name).parts[0] for name in _files(data.reference_data)} == {"gtFine", INDEX_NAME}


def test_partial_disparity_is_refused(cityscapes: Path, tmp_path: Path) -> None:
    (cityscapes / "disparity/val/lindau/lindau_000001_000019_disparity.png").unlink()
    message = _error(tmp_path / "out", cityscapes)
    assert "1 of 6 val frames lack files" in message
    assert "remove its disparity folder" in message


def _outside(tmp_path: Path, source: Path) -> Path:
    target = tmp_path / "elsewhere" / source.name
    target.parent.mkdir(exist_ok=True)
    source.rename(target)
    return target


@pytest.mark.parametrize(
    "link",
    ["gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png", "gtFine/val/munster", "leftImg8bit"],
    ids=["file", "city folder", "archive folder"],
)
def test_links_out_of_the_source_are_refused(cityscapes: Path, tmp_path: Path, link: str) -> None:
    path = cityscapes / link
    path.symlink_to(_outside(tmp_path, path))
    message = _error(tmp_path / "out", cityscapes)
    assert f"{path}: is a link to" in message
    assert "outside the source folder" in message


def test_links_inside_the_source_are_followed(cityscapes: Path, tmp_path: Path) -> None:
    name = "lindau_000000_000019_gtFine_labelIds.png"
    path = cityscapes / "gtFine/val/lindau" / name
    (cityscapes / "moved").mkdir()
    path.rename(cityscapes / "moved" / name)
    path.symlink_to(Path("../../../moved") / name)
    data = _build(tmp_path / "out", cityscapes)
    placed = data.reference_data / "gtFine/val/lindau" / name
    assert placed.is_file() and not placed.is_symlink()


def test_bad_ground_truth_is_named_by_its_source_path(cityscapes: Path, tmp_path: Path) -> None:
    bad = cityscapes / "gtFine/val/munster/munster_000000_000019_gtFine_labelIds.png"
    bad.write_bytes(b"not a png")
    message = _error(tmp_path / "out", cityscapes)
    assert message.startswith(f"{bad}: ")


def test_foreign_output_folder_is_never_replaced(cityscapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ReferenceDataError, match=r"holds no competition_data\.json"):
        _build(out, cityscapes)
    assert (out / "notes.txt").read_text() == "mine"


def test_source_inside_the_output_folder_is_refused(cityscapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _build(out, cityscapes)
    inner = Path(shutil.copytree(cityscapes, out / "cityscapes"))
    with pytest.raises(ReferenceDataError, match="lies inside the output folder"):
        _build(out, inner)
    assert inner.is_dir()


# -------------------------------------------------------------------------------------- synthetic


def _synthetic(out: Path, seed: int = 2, cache: Path | None = None) -> competition_data.CompetitionData:
    return build_competition_data(
        out,
        synthetic_count=3,
        seed=seed,
        sample_count=2,
        progress=False,
        synthetic_size=SIZE,
        synthetic_cache=cache,
        workers=1,
    )


def _no_generation(*args: object, **kwargs: object) -> None:
    raise AssertionError("generated again")


def test_synthetic_build_is_reused_when_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    first = _synthetic(out)
    assert (first.frames, first.samples, first.reused, first.warnings) == (3, 2, False, ())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the generated source is gone
    with monkeypatch.context() as patch:
        patch.setattr(synthetic, "generate_split", _no_generation)
        again = _synthetic(out)
    assert again.reused and again.frames == 3 and again.source == first.source
    assert not _synthetic(out, seed=3).reused  # other settings: rebuilt
    next(out.joinpath(INPUT_DATA).rglob("*.png")).unlink()
    assert not _synthetic(out, seed=3).reused  # incomplete: rebuilt
    assert len(_stems(out / INPUT_DATA)) == 3


def test_synthetic_cache_is_kept_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = _synthetic(tmp_path / "one", cache=cache)
    assert len(list(cache.glob("*/.complete.json"))) == 1
    monkeypatch.setattr(synthetic, "generate_split", _no_generation)
    second = _synthetic(tmp_path / "two", cache=cache)
    assert _files(second.reference_data) == _files(first.reference_data)


# -------------------------------------------------------------------------------------------- CLI


def test_cli_builds_and_reports(cityscapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["--out", str(out), "--cityscapes", str(cityscapes), "--samples", "2", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert f"reference data: {out / REFERENCE_DATA} (6 frames)" in captured.out
    assert "warning:" in captured.err and "500" in captured.err
    assert len(_stems(out / SAMPLE_DATA)) == 2


def test_cli_mistake_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["--out", str(tmp_path / "out"), "--cityscapes", str(missing)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"data: error: {missing}: does not exist")
    assert len(error.splitlines()) == 1


def test_cli_refuses_seed_with_cityscapes(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--out", str(tmp_path / "out"), "--cityscapes", str(tmp_path), "--seed", "3"])
    assert caught.value.code == 2
