"""The synthetic dataset and the synthetic participant results: layout, formats, edge cases, determinism."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cityscapes_competition.core.labels import NUM_LABEL_IDS, color_of, id2label
from cityscapes_competition.core.naming import (
    CAMERA_SUFFIX,
    DISPARITY_SUFFIX,
    GT_COLOR_SUFFIX,
    GT_INSTANCE_IDS_SUFFIX,
    GT_LABEL_IDS_SUFFIX,
    IMAGE_SUFFIX,
    frame_id_from_stem,
    parse_frame_id,
)
from cityscapes_competition.png import fast_png
from cityscapes_competition.png.png_write import encode_mask_png, encode_png
from cityscapes_competition.synthetic import results as synthetic_results
from cityscapes_competition.synthetic import scenes as synthetic

SIZE = (256, 128)
COUNTS = {"val": 4, "train": 2}
SEED = 7


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _array(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    synthetic.generate_dataset(root, COUNTS["val"], COUNTS["train"], seed=SEED, size=SIZE, workers=1)
    return root


@pytest.fixture(scope="module")
def results(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    synthetic_results.generate_results(
        dataset / "gtFine", root, seed=3, instances_per_image=12, mask_mode="mixed", workers=1
    )
    return root


def _frames(root: Path) -> list[tuple[str, Path]]:
    """(split, labelIds path) of every generated frame."""
    return [(p.parent.parent.name, p) for p in sorted((root / "gtFine").rglob(f"*{GT_LABEL_IDS_SUFFIX}"))]


# ------------------------------------------------------------------------------------------ layout


def test_layout_and_names(dataset: Path) -> None:
    for split, count in COUNTS.items():
        spec = synthetic.split_spec(split, count)
        assert len(spec.frames) == count == len(set(spec.frames))
        for frame in spec.frames:
            assert frame_id_from_stem(frame.stem) == frame
            assert frame.city in synthetic.SPLIT_CITIES[split]
            assert len(frame.sequence) == 6 and frame.frame == synthetic.FRAME_NUMBER
            paths = synthetic.frame_paths(dataset, split, frame)
            city, stem = frame.city, frame.stem
            assert paths["image"] == dataset / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}"
            assert paths["label_ids"] == dataset / "gtFine" / split / city / f"{stem}{GT_LABEL_IDS_SUFFIX}"
            assert paths["instance_ids"].name == f"{stem}{GT_INSTANCE_IDS_SUFFIX}"
            assert paths["color"].name == f"{stem}{GT_COLOR_SUFFIX}"
            assert paths["disparity"] == dataset / "disparity" / split / city / f"{stem}{DISPARITY_SUFFIX}"
            assert paths["camera"] == dataset / "camera" / split / city / f"{stem}{CAMERA_SUFFIX}"
            assert all(path.is_file() for path in paths.values())
    files = [p for p in dataset.rglob("*") if p.is_file()]
    assert len(files) == 6 * sum(COUNTS.values())  # nothing else (no temporary files left)
    assert all(parse_frame_id(p.name) is not None for p in files)


def test_split_names_do_not_depend_on_count() -> None:
    assert synthetic.split_spec("val", 3).frames == synthetic.split_spec("val", 10).frames[:3]
    assert [f.city for f in synthetic.split_spec("val", 3).frames] == ["frankfurt", "lindau", "munster"]
    assert synthetic.split_spec("val", 4).frame(3).stem == "frankfurt_000001_000019"
    with pytest.raises(ValueError):
        synthetic.split_spec("nonsense", 1)


def test_image_modes_and_sizes(dataset: Path) -> None:
    for _, labels_path in _frames(dataset):
        stem = labels_path.name[: -len(GT_LABEL_IDS_SUFFIX)]
        split, city = labels_path.parent.parent.name, labels_path.parent.name
        expected = {
            dataset / "leftImg8bit" / split / city / f"{stem}{IMAGE_SUFFIX}": ("RGB",),
            labels_path: ("L",),
            labels_path.with_name(f"{stem}{GT_INSTANCE_IDS_SUFFIX}"): ("I;16", "I;16B"),
            labels_path.with_name(f"{stem}{GT_COLOR_SUFFIX}"): ("RGBA",),
            dataset / "disparity" / split / city / f"{stem}{DISPARITY_SUFFIX}": ("I;16", "I;16B"),
        }
        for path, modes in expected.items():
            with Image.open(path) as image:
                assert image.format == "PNG" and image.size == SIZE and image.mode in modes, path


# ------------------------------------------------------------------------------------ ground truth


def test_label_and_instance_ids_are_consistent(dataset: Path) -> None:
    has_instances = np.array([id2label[i].hasInstances for i in range(NUM_LABEL_IDS)])
    for _, labels_path in _frames(dataset):
        labels = _array(labels_path)
        instances = _array(labels_path.with_name(labels_path.name.replace(GT_LABEL_IDS_SUFFIX, GT_INSTANCE_IDS_SUFFIX)))
        assert labels.dtype == np.uint8 and instances.dtype == np.uint16
        assert labels.max() < NUM_LABEL_IDS
        from_instances = np.where(instances < 1000, instances, instances // 1000)
        np.testing.assert_array_equal(from_instances, labels)
        objects = np.unique(instances[instances >= 1000])
        assert has_instances[objects // 1000].all()  # only classes with instances have numbered ones
        for label in np.unique(objects // 1000):
            ks = np.sort(objects[objects // 1000 == label] % 1000)
            np.testing.assert_array_equal(ks, np.arange(len(ks)))  # k = 0, 1, 2, ... per class


def test_instance_ids_roundtrip_exactly(dataset: Path) -> None:
    frame = synthetic.split_spec("val", 1).frame(0)
    data = synthetic.render_frame("val", frame, SEED, SIZE)
    paths = synthetic.frame_paths(dataset, "val", frame)
    np.testing.assert_array_equal(_array(paths["instance_ids"]), data.instance_ids)
    np.testing.assert_array_equal(_array(paths["label_ids"]), data.label_ids)
    np.testing.assert_array_equal(_array(paths["disparity"]), data.disparity)
    np.testing.assert_array_equal(_array(paths["image"]), data.image)
    assert int(data.instance_ids.max()) >= 24000


def test_color_image_uses_the_label_colors(dataset: Path) -> None:
    for _, labels_path in _frames(dataset)[:2]:
        labels = _array(labels_path)
        color = _array(labels_path.with_name(labels_path.name.replace(GT_LABEL_IDS_SUFFIX, GT_COLOR_SUFFIX)))
        assert (color[..., 3] == 255).all()
        for label in np.unique(labels):
            assert (color[labels == label][:, :3] == color_of(int(label))).all()


def test_edge_cases_are_present() -> None:
    """Over a few frames: group regions, void classes, caravans/trailers, tiny, distant, poor stereo."""
    seen_labels: set[int] = set()
    groups: set[int] = set()
    tiny = distant = poor_stereo = 0
    for index in range(24):
        data = synthetic.render_frame("val", synthetic.split_spec("val", 24).frame(index), 0, (512, 256))
        labels, instances = data.label_ids, data.instance_ids
        seen_labels |= set(np.unique(labels).tolist())
        groups |= {int(v) for v in np.unique(instances) if 24 <= v < 1000}
        for value in np.unique(instances[instances >= 1000]):
            mask = instances == value
            tiny += int(mask.sum() < 10)
            distant += int(np.median(data.depth[mask]) > 100)
            poor_stereo += int((data.disparity[mask] > 0).mean() < 0.5)
        assert {1, 2, 3} <= set(np.unique(labels).tolist())  # ego vehicle, borders: every frame
    assert {24, 26} <= groups
    assert {0, 4, 5, 6, 9, 10, 14, 18, 29, 30} <= seen_labels
    assert tiny and distant and poor_stereo


# --------------------------------------------------------------------------------- depth, disparity


def test_disparity_holes_and_geometry() -> None:
    frame = synthetic.split_spec("val", 2).frame(1)
    data = synthetic.render_frame("val", frame, SEED, SIZE)
    raw, labels, depth = data.disparity, data.label_ids, data.depth
    assert raw.dtype == np.uint16 and (raw == 0).any() and (raw > 0).any()
    assert (raw[labels == 1] == 0).all()  # ego vehicle: no disparity
    camera = synthetic.camera_parameters(SIZE)
    fx_b = camera["intrinsic"]["fx"] * camera["extrinsic"]["baseline"]
    valid = raw > 0
    d = (raw[valid].astype(np.float64) - 1) / 256
    np.testing.assert_allclose(d, fx_b / depth[valid], atol=0.15)
    # road: depth grows towards the horizon (up the image)
    road_rows = [np.median(depth[r][labels[r] == 7]) for r in range(SIZE[1]) if (labels[r] == 7).sum() > 3]
    assert len(road_rows) > 10 and np.all(np.diff(road_rows) <= 0) and road_rows[0] > 5 * road_rows[-1]


def test_camera_files(dataset: Path) -> None:
    path = next((dataset / "camera").rglob(f"*{CAMERA_SUFFIX}"))
    camera = json.loads(path.read_text())
    assert set(camera) == {"extrinsic", "intrinsic"}
    assert set(camera["extrinsic"]) == {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}
    assert set(camera["intrinsic"]) == {"fx", "fy", "u0", "v0"}
    assert camera["extrinsic"]["baseline"] == 0.209313
    assert camera["intrinsic"]["fx"] == pytest.approx(2262.52 * SIZE[0] / 2048)
    assert synthetic.camera_parameters()["intrinsic"]["fx"] == 2262.52


# ------------------------------------------------------------------------------------ determinism


def test_generation_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthetic.generate_dataset(again, COUNTS["val"], COUNTS["train"], seed=SEED, size=SIZE, workers=2)
    assert _files(again) == _files(dataset)
    # one frame alone is the same as within its split
    alone = tmp_path / "alone"
    frame = synthetic.split_spec("val", 4).frame(3)
    synthetic.generate_frame(alone, "val", frame, SEED, SIZE)
    assert _files(alone) == {k: v for k, v in _files(dataset).items() if frame.stem in k}
    # another seed, another dataset
    other = tmp_path / "other"
    synthetic.generate_split(other, "val", 1, seed=SEED + 1, size=SIZE, workers=1)
    key = f"gtFine/val/frankfurt/frankfurt_000000_000019{GT_LABEL_IDS_SUFFIX}"
    assert (other / key).read_bytes() != (dataset / key).read_bytes()


def test_the_scene_does_not_depend_on_the_size() -> None:
    frame = synthetic.split_spec("train", 1).frame(0)
    small = synthetic.render_frame("train", frame, SEED, (256, 128)).label_ids
    large = synthetic.render_frame("train", frame, SEED, (512, 256)).label_ids[::2, ::2]
    assert (small == large).mean() > 0.9


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        synthetic_results.generate_results(tmp_path, tmp_path / "r", tasks=("pixels",))
    with pytest.raises(ValueError):
        synthetic_results.generate_results(tmp_path, tmp_path / "r", mask_mode="P")
    with pytest.raises(ValueError):
        synthetic.split_spec("val", -1)


def test_encode_png_roundtrips() -> None:
    rng = np.random.default_rng(0)
    arrays = [
        rng.random((5, 13)) < 0.5,
        rng.integers(0, 256, (6, 7), dtype=np.uint8),
        rng.integers(0, 65536, (4, 9), dtype=np.uint16),
        rng.integers(0, 256, (3, 5, 3), dtype=np.uint8),
        rng.integers(0, 256, (3, 5, 4), dtype=np.uint8),
    ]
    for array in arrays:
        for up in (True, False):
            with Image.open(io.BytesIO(encode_png(array, 6, up))) as image:
                np.testing.assert_array_equal(np.asarray(image), array)


@pytest.mark.parametrize(
    "size, top, left, crop_size",
    [((11, 25), 6, 0, (4, 5)), ((11, 25), 0, 1, (4, 12)), ((11, 25), 7, 7, (4, 9)), ((11, 25), 6, 8, (5, 16)),
     ((11, 25), 0, 0, (11, 25)), ((11, 25), 10, 20, (1, 5)), ((1024, 2048), 700, 13, (90, 300))],
)  # fmt: skip
def test_mask_png_of_a_crop_is_the_full_mask(size, top: int, left: int, crop_size) -> None:
    """Every bit offset of the crop within its first byte, crops touching each border, and a full-size
    mask (the Adler-32 of its empty rows wraps): the stream inflates, checksum included, to the full
    mask's rows, and Pillow and fast_png read the full mask."""
    crop = np.random.default_rng(left).random(crop_size) < 0.5
    full = np.zeros(size, bool)
    full[top : top + crop_size[0], left : left + crop_size[1]] = crop
    data = encode_mask_png(size, crop, top, left)
    assert zlib.decompress(fast_png._image_data(data)) == zlib.decompress(
        fast_png._image_data(encode_png(full, 3, up_filter=False))
    )
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(np.asarray(image), full)
    np.testing.assert_array_equal(fast_png.decode_grayscale(data), full)


# ---------------------------------------------------------------------------------------- results


def test_pixel_results(dataset: Path, results: Path) -> None:
    for split, labels_path in _frames(dataset):
        stem = labels_path.name[: -len(GT_LABEL_IDS_SUFFIX)]
        path = results / "pixel" / split / labels_path.parent.name / f"{stem}_leftImg8bit.png"
        with Image.open(path) as image:
            assert image.mode == "L" and image.size == SIZE
        prediction, labels = _array(path), _array(labels_path)
        assert prediction.max() < NUM_LABEL_IDS
        agreement = (prediction == labels).mean()
        assert 0.5 < agreement < 1.0  # imperfect, but a prediction of this image


def test_instance_results(dataset: Path, results: Path) -> None:
    texts = sorted((results / "instance").rglob("*.txt"))
    assert len(texts) == len(_frames(dataset))
    modes = set()
    lines = 0
    for text in texts:
        assert text.name[: -len(".txt")] == parse_frame_id(text.name).stem
        for line in text.read_text().splitlines():
            tokens = line.split(" ")
            assert len(tokens) == 3 and line == line.strip()
            mask_path, label, confidence = text.parent / tokens[0], int(tokens[1]), float(tokens[2])
            assert tokens[0].startswith("masks/") and 0 <= label < NUM_LABEL_IDS and 0 <= confidence <= 1
            with Image.open(mask_path) as mask:
                assert mask.size == SIZE
                modes.add((mask.mode, int(np.asarray(mask).max())))
            lines += 1
    assert lines > 3 * len(texts)
    assert {"1", "L"} <= {mode for mode, _ in modes}  # mask_mode="mixed"


def test_results_are_deterministic_and_empty_when_asked(dataset: Path, results: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthetic_results.generate_results(
        dataset / "gtFine", again, seed=3, instances_per_image=12, mask_mode="mixed", workers=2
    )
    assert _files(again) == _files(results)
    empty = tmp_path / "empty"
    synthetic_results.generate_results(dataset, empty, instances_per_image=0, tasks=("instance",), workers=1)
    texts = sorted((empty / "instance").rglob("*.txt"))
    assert len(texts) == len(_frames(dataset)) and all(t.read_text() == "" for t in texts)
    assert texts[0].parent.parent.name in COUNTS  # <split>/<city>: the "gtFine" folder is not mirrored
    assert not (empty / "pixel").exists()


def test_degrade_hits_the_target_iou() -> None:
    rng = np.random.default_rng(1)
    mask = np.zeros((60, 40), dtype=bool)
    mask[5:55, 8:35] = True
    for target in (0.3, 0.5, 0.75, 0.9, 0.99):
        top, left, moved = synthetic_results.degrade(mask, target, rng)
        canvas = np.zeros((200, 200), dtype=bool)
        canvas[50 : 50 + mask.shape[0], 50 : 50 + mask.shape[1]] = mask
        pred = np.zeros_like(canvas)
        pred[50 + top : 50 + top + moved.shape[0], 50 + left : 50 + left + moved.shape[1]] = moved
        iou = (canvas & pred).sum() / (canvas | pred).sum()
        assert iou == pytest.approx(target, abs=0.02)


def test_instance_results_mix_every_kind() -> None:
    """Predictions of one full frame: matches, groups, skipped classes, ties, empty masks."""
    data = synthetic.render_frame("val", synthetic.split_spec("val", 3).frame(2), 0, (512, 256))
    kinds: dict[str, int] = {"group": 0, "skipped": 0, "empty": 0, "zero_or_one": 0}
    shared = synthetic_results._shared_confidences(0)
    confidences = []
    for image in range(6):
        rng = np.random.default_rng(image)
        for p in synthetic_results.predict_instances(data.label_ids, data.instance_ids, rng, 40, shared):
            full = synthetic_results._full_mask(p, data.label_ids.shape)
            kinds["empty"] += int(not full.any())
            kinds["skipped"] += int(p.label not in (24, 25, 26, 27, 28, 31, 32, 33))
            values = data.instance_ids[full]
            kinds["group"] += int(full.any() and ((values >= 24) & (values < 1000)).all())
            kinds["zero_or_one"] += int(p.confidence in (0.0, 1.0))
            confidences.append(p.confidence)
    assert all(kinds.values()), kinds
    assert len(confidences) - len(set(confidences)) > 5  # ties
