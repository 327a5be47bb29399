"""Every mistake a participant can make in a results folder: one clear message, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, TinyCase, rle_predictions
from PIL import Image

from cityscapes_competition.scoring import results_format
from cityscapes_competition.scoring.program import score_main

STEM = "frankfurt_000000_000019"


def run_scoring(case: TinyCase, tmp_path: Path, capsys) -> tuple[int, str, Path]:
    input_dir = case.ref.parent
    output = tmp_path / "output"
    code = score_main([str(input_dir), str(output)])
    captured = capsys.readouterr()
    return code, captured.err, output


def assert_refused(case: TinyCase, tmp_path: Path, capsys, *fragments: str) -> str:
    code, err, output = run_scoring(case, tmp_path, capsys)
    assert code != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not (output / "scores.txt").exists()
    return err


def pixel_file(case: TinyCase, stem: str = STEM) -> Path:
    return next((case.res / "pixel").rglob(f"{stem}*.png"))


def txt_file(case: TinyCase, stem: str = STEM) -> Path:
    return next((case.res / "instance").rglob(f"{stem}*.txt"))


def test_valid_results_score(tiny_case, tmp_path, capsys) -> None:
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0, err
    scores = {}
    for line in (output / "scores.txt").read_text().splitlines():
        label, value = line.split(":")  # exactly as CodaLab parses it
        scores[label] = float(value)
    assert set(scores) == {"iou_class", "iiou_class", "iou_category", "iiou_category", "ap", "ap50", "ap100m", "ap50m"}
    assert scores["ap"] == pytest.approx(1.0)
    assert 0 < scores["iou_class"] < 1
    document = json.loads((output / "scores.json").read_text())
    assert document["classes"]["car"]["ap"] == pytest.approx(1.0)
    assert "traffic light" in document["classes"]
    assert (output / "detailed_results.html").stat().st_size > 1000


def test_missing_predictions_are_listed(tiny_case, tmp_path, capsys) -> None:
    pixel_file(tiny_case).unlink()
    pixel_file(tiny_case, "lindau_000000_000019").unlink()
    assert_refused(tiny_case, tmp_path, capsys, "2 of 3 test images", STEM, "lindau_000000_000019")


def test_two_predictions_for_one_image(tiny_case, tmp_path, capsys) -> None:
    original = pixel_file(tiny_case)
    (original.parent / f"{STEM}_copy.png").write_bytes(original.read_bytes())
    assert_refused(tiny_case, tmp_path, capsys, "2 files are predictions for test image", STEM)


def test_wrong_size(tiny_case, tmp_path, capsys) -> None:
    Image.fromarray(np.full((24, 48), 7, np.uint8)).save(pixel_file(tiny_case))
    assert_refused(tiny_case, tmp_path, capsys, "48x24 pixels but the ground truth is 96x48", STEM)


@pytest.mark.parametrize("value, hint", [(34, "outside the label ids 0..33"), (255, "trainId")])
def test_values_outside_label_ids(tiny_case, tmp_path, capsys, value, hint) -> None:
    path = pixel_file(tiny_case)
    prediction = np.array(Image.open(path))
    prediction[0, 0] = value
    Image.fromarray(prediction).save(path)
    assert_refused(tiny_case, tmp_path, capsys, hint, STEM)


def test_sixteen_bit_values_outside_label_ids(tiny_case, tmp_path, capsys) -> None:
    Image.fromarray(np.full((48, 96), 700, np.uint16)).save(pixel_file(tiny_case))
    assert_refused(tiny_case, tmp_path, capsys, "values 700..700", STEM)


def test_color_image_instead_of_label_ids(tiny_case, tmp_path, capsys) -> None:
    Image.new("RGB", (96, 48), (128, 64, 128)).save(pixel_file(tiny_case))
    assert_refused(tiny_case, tmp_path, capsys, "3 channels", "one channel")


@pytest.mark.parametrize(
    "content, fragment",
    [(b"not an image", "not a PNG"), (b"", "empty file"), (b"\xff\xd8\xff\xe0 jpeg", "JPEG")],
)
def test_unreadable_or_non_png(tiny_case, tmp_path, capsys, content, fragment) -> None:
    pixel_file(tiny_case).write_bytes(content)
    assert_refused(tiny_case, tmp_path, capsys, fragment, STEM)


def test_truncated_png(tiny_case, tmp_path, capsys) -> None:
    path = pixel_file(tiny_case)
    path.write_bytes(path.read_bytes()[:60])
    assert_refused(tiny_case, tmp_path, capsys, "corrupt or truncated", STEM)


def test_decompression_bomb_is_refused_from_its_header(tiny_case, tmp_path, capsys) -> None:
    """A small file that declares 20000x20000 pixels of zeros: refused before anything is inflated."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (20001 * 200), 9)  # the start of the 400 MB it would inflate to
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    pixel_file(tiny_case).write_bytes(bomb)
    assert_refused(tiny_case, tmp_path, capsys, "larger than any Cityscapes image")


@pytest.mark.parametrize(
    "relative, fragment",
    [("../../../../../etc/passwd", "leaves the results folder"), ("/etc/passwd", "is absolute")],
)
def test_mask_path_leaving_the_results(tiny_case, tmp_path, capsys, relative, fragment) -> None:
    txt_file(tiny_case).write_text(f"{relative} 26 0.5\n")
    assert_refused(tiny_case, tmp_path, capsys, fragment, STEM)


def test_symbolic_link_out_of_the_results(tiny_case, tmp_path, capsys) -> None:
    secret = tmp_path / "secret.png"
    Image.fromarray(np.ones((48, 96), np.uint8)).save(secret)
    link = txt_file(tiny_case).parent / "masks" / "link.png"
    os.symlink(secret, link)
    txt_file(tiny_case).write_text("masks/link.png 26 0.5\n")
    assert_refused(tiny_case, tmp_path, capsys, "points outside the results folder")


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("masks/a.png 26", "has 2 fields, not 3"),
        ("masks/a.png car 0.5", "labelId 'car' is not a number"),
        ("masks/a.png 40 0.5", "not a label id 0..33"),
        ("masks/a.png 26.5 0.5", "not a label id 0..33"),
        ("masks/a.png 26 high", "confidence 'high' is not a number"),
        ("masks/a.png 26 nan", "not a finite number"),
    ],
)
def test_malformed_instance_lines(tiny_case, tmp_path, capsys, line, fragment) -> None:
    path = txt_file(tiny_case)
    path.write_text(path.read_text() + line + "\n")
    assert_refused(tiny_case, tmp_path, capsys, fragment, "line")


def test_missing_mask_file(tiny_case, tmp_path, capsys) -> None:
    txt_file(tiny_case).write_text("masks/nowhere.png 26 0.5\n")
    assert_refused(tiny_case, tmp_path, capsys, "the mask nowhere.png does not exist", "line 1")


def test_mask_of_wrong_size(tiny_case, tmp_path, capsys) -> None:
    mask = txt_file(tiny_case).parent / "masks" / "small.png"
    Image.fromarray(np.ones((10, 10), np.uint8)).save(mask)
    txt_file(tiny_case).write_text("masks/small.png 26 0.5\n")
    assert_refused(tiny_case, tmp_path, capsys, "10x10 pixels", "small.png")


def test_binary_txt_file(tiny_case, tmp_path, capsys) -> None:
    txt_file(tiny_case).write_bytes(b"\xff\xfe\x00garbage")
    assert_refused(tiny_case, tmp_path, capsys, "UTF-16 or UTF-32 text; it must be UTF-8")
    txt_file(tiny_case).write_bytes(b"masks/a.png 26 0.5\n\xff\xfe garbage")
    assert_refused(tiny_case, tmp_path, capsys, "is not UTF-8 text (byte 19)")


def test_too_many_instances_are_capped_with_a_warning(tiny_case, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(results_format, "MAX_INSTANCES_PER_IMAGE", 2)
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0
    assert "only the 2 highest-scoring were evaluated" in err
    assert "only the 2 highest-scoring" in " ".join(json.loads((output / "scores.json").read_text())["warnings"])


@pytest.mark.parametrize("task, zero_keys", [("pixel", ("iou_class", "iiou_category")), ("instance", ("ap", "ap50m"))])
def test_absent_task_scores_zero_with_a_warning(tiny_case, tmp_path, capsys, task, zero_keys) -> None:
    import shutil

    shutil.rmtree(tiny_case.res / task)
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0
    assert f"No '{task}' folder" in err
    scores = dict(line.split(": ") for line in (output / "scores.txt").read_text().splitlines())
    for key in zero_keys:
        assert float(scores[key]) == 0.0
    assert "not submitted" in (output / "detailed_results.html").read_text()


def test_empty_results_are_refused(tiny_case, tmp_path, capsys) -> None:
    import shutil

    shutil.rmtree(tiny_case.res)
    tiny_case.res.mkdir()
    assert_refused(tiny_case, tmp_path, capsys, "neither a 'pixel' nor an 'instance' folder")


def test_results_wrapped_in_one_folder(tiny_case, tmp_path, capsys) -> None:
    wrapper = tiny_case.res / "my_results"
    wrapper.mkdir()
    for task in ("pixel", "instance"):
        (tiny_case.res / task).rename(wrapper / task)
    code, err, _ = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0, err


def _rle_document(case: TinyCase) -> list[dict]:
    return rle_predictions(case.res)


def _scores(output: Path) -> dict:
    return json.loads((output / "scores.json").read_text())


def test_rle_json_scores_like_the_txt_format(tiny_case, tmp_path, capsys) -> None:
    code, _, output_txt = run_scoring(tiny_case, tmp_path / "txt", capsys)
    document = _rle_document(tiny_case)
    import shutil

    shutil.rmtree(tiny_case.res / "instance")
    (tiny_case.res / "instance").mkdir()
    (tiny_case.res / "instance" / "predictions.json").write_text(json.dumps(document))
    code_json, err, output_json = run_scoring(tiny_case, tmp_path / "json", capsys)
    assert code == 0 and code_json == 0, err
    assert _scores(output_json)["ap"] == _scores(output_txt)["ap"]
    assert _scores(output_json)["ap50m"] == _scores(output_txt)["ap50m"]


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda p: p.update(segmentation={"size": [48, 96], "counts": [0, 10**9]}), "RLE counts are not runs covering"),
        (lambda p: p.update(segmentation={"size": [48, 96], "counts": "zzzz"}), "RLE counts are not runs covering"),
        (lambda p: p.update(segmentation={"size": [10, 10], "counts": [100]}), "is not [48, 96]"),
        (lambda p: p.update(category_id=99), "not a label id"),
        (lambda p: p.update(score="high"), "not a finite number"),
        (lambda p: p.update(image_id="not-a-stem"), "not a Cityscapes stem"),
        (lambda p: p.pop("score"), "lacks score"),
    ],
)
def test_malformed_rle_predictions(tiny_case, tmp_path, capsys, change, fragment) -> None:
    document = _rle_document(tiny_case)
    change(document[0])
    import shutil

    shutil.rmtree(tiny_case.res / "instance")
    (tiny_case.res / "instance").mkdir()
    (tiny_case.res / "instance" / "predictions.json").write_text(json.dumps(document))
    assert_refused(tiny_case, tmp_path, capsys, fragment, "predictions.json")


def test_internal_error_is_one_line_with_a_log(tiny_case, tmp_path, capsys, monkeypatch) -> None:
    import cityscapes_competition.scoring.evaluation as evaluation

    def broken(*_args, **_kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(evaluation, "evaluate", broken)
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code != 0 and "Traceback" not in err and "simulated bug" in err
    assert "Traceback" in (output / "score.py_internal_error.log").read_text()


def test_entry_point_as_the_platform_runs_it(tiny_case, tmp_path) -> None:
    """A subprocess, as CodaLab starts it: errors reach stderr as one line, never a traceback."""
    pixel_file(tiny_case).write_bytes(b"garbage")
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "scoring_program" / "score.py"), str(tiny_case.ref.parent), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert STEM in result.stderr and "not a PNG" in result.stderr


def test_without_distance_data_the_distance_metrics_are_left_out_and_explained(tiny_case, tmp_path, capsys) -> None:
    import shutil

    shutil.rmtree(tiny_case.ref / "disparity")
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0, err
    keys = [line.split(":")[0] for line in (output / "scores.txt").read_text().splitlines()]
    assert keys == ["iou_class", "iiou_class", "iou_category", "iiou_category", "ap", "ap50"]
    page = (output / "detailed_results.html").read_text()
    assert "need disparity and camera files for every test image; 3 of 3 images lack them" in page


# ---- hostile results: every file read is contained in the results folder, a regular file, bounded ----------


def assert_refused_with_2(case: TinyCase, tmp_path: Path, capsys, *fragments: str) -> str:
    code, err, output = run_scoring(case, tmp_path, capsys)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not (output / "scores.txt").exists()
    return err


def test_a_junk_name_linked_to_the_ground_truth_is_not_read(tiny_case, tmp_path, capsys) -> None:
    """'.DS_Store' is skipped by the walk, but a txt can still name it as a mask: its link is checked when read."""
    masks = txt_file(tiny_case).parent / "masks"
    ground_truth = next(tiny_case.ref.rglob(f"{STEM}_gtFine_labelIds.png"))
    os.symlink(ground_truth, masks / ".DS_Store")
    txt_file(tiny_case).write_text("masks/.DS_Store 26 0.5\n")
    assert_refused_with_2(tiny_case, tmp_path, capsys, "points outside the results folder", ".DS_Store")


def test_messages_do_not_reveal_what_exists_outside_the_results(tiny_case, tmp_path, capsys) -> None:
    """Through a '__MACOSX' link to '/', a real file, a PNG and a missing file give the same message."""
    os.symlink("/", tiny_case.res / "__MACOSX")
    outside_png = next(tiny_case.ref.rglob(f"{STEM}_gtFine_labelIds.png"))
    messages = []
    for target in ("etc/passwd", str(outside_png).lstrip("/"), "no/such/file.png"):
        txt_file(tiny_case).write_text(f"../../__MACOSX/{target} 26 0.5\n")
        err = assert_refused_with_2(tiny_case, tmp_path / target.replace("/", "_"), capsys)
        messages.append(err.replace(target, "TARGET"))
    assert "points outside the results folder" in messages[0]
    assert messages[0] == messages[1] == messages[2]


def test_mask_paths_may_name_any_file_of_the_results_folder(tiny_case, tmp_path, capsys) -> None:
    """'../masks/x.png' from instance/<city>/ stays in the results folder: the official scripts accept it."""
    code, err, expected = run_scoring(tiny_case, tmp_path / "before", capsys)
    assert code == 0, err
    txt = txt_file(tiny_case)
    (tiny_case.res / "masks").mkdir()
    lines = []
    for line in txt.read_text().splitlines():
        mask, label, confidence = line.split()
        (txt.parent / mask).rename(tiny_case.res / "masks" / os.path.basename(mask))
        lines.append(f"../../masks/{os.path.basename(mask)} {label} {confidence}")
    txt.write_text("\n".join(lines) + "\n")
    code, err, output = run_scoring(tiny_case, tmp_path / "after", capsys)
    assert code == 0, err
    assert (output / "scores.txt").read_text() == (expected / "scores.txt").read_text()


@pytest.mark.parametrize("name", ["PIXEL", "Instance", "instances", "pixels"])
def test_misspelt_task_folder_is_named_not_scored_zero(tiny_case, tmp_path, capsys, name) -> None:
    task = "pixel" if name.lower().startswith("pixel") else "instance"
    (tiny_case.res / task).rename(tiny_case.res / name)
    assert_refused_with_2(tiny_case, tmp_path, capsys, f"is named '{name}'", f"Rename it to '{task}'")


def test_a_fifo_is_refused_not_waited_on(tiny_case, tmp_path) -> None:
    path = pixel_file(tiny_case)
    path.unlink()
    os.mkfifo(path)
    result = subprocess.run(
        [sys.executable, str(REPO / "scoring_program" / "score.py"), str(tiny_case.ref.parent), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "is not a regular file but a named pipe (FIFO)" in result.stderr


def test_a_link_to_a_device_is_refused_unread(tiny_case, tmp_path, capsys) -> None:
    path = pixel_file(tiny_case)
    path.unlink()
    os.symlink("/dev/zero", path)
    assert_refused_with_2(tiny_case, tmp_path, capsys, "points outside the results folder")


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_a_device_inside_the_results_is_refused_unread(tiny_case, tmp_path, capsys) -> None:
    import stat

    path = pixel_file(tiny_case)
    path.unlink()
    os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    assert_refused_with_2(tiny_case, tmp_path, capsys, "is not a regular file but a device")


def test_a_nul_in_a_mask_path(tiny_case, tmp_path, capsys) -> None:
    txt_file(tiny_case).write_text("masks/a\x00.png 26 0.5\n")
    assert_refused_with_2(tiny_case, tmp_path, capsys, "holds a NUL character", "line 1")


def test_an_unreadable_folder(tiny_case, tmp_path, capsys, monkeypatch) -> None:
    """As root chmod cannot deny reading, so the refusal is what os.scandir raises for a user without rights."""
    real_scandir = os.scandir
    denied = os.fspath(txt_file(tiny_case).parent / "masks")

    def scandir(path):
        if os.fspath(path) == denied:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert_refused_with_2(tiny_case, tmp_path, capsys, "masks: cannot be read (Permission denied)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_for_real(tiny_case, tmp_path, capsys) -> None:
    masks = txt_file(tiny_case).parent / "masks"
    masks.chmod(0)
    try:
        assert_refused_with_2(tiny_case, tmp_path, capsys, "cannot be read")
    finally:
        masks.chmod(0o755)


def test_a_stray_file_whose_name_is_not_utf8_does_not_stop_scoring(tiny_case, tmp_path, capsys) -> None:
    for folder in (pixel_file(tiny_case).parent, txt_file(tiny_case).parent):
        with open(os.path.join(os.fsencode(folder), b"notes-\xff\xfe.png"), "wb") as stray:
            stray.write(b"x")
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0, err
    assert "notes-\\xff\\xfe.png" in err
    page = (output / "detailed_results.html").read_text(encoding="utf-8")
    assert "notes-\\xff\\xfe.png" in page
    assert "notes-\\xff\\xfe.png" in " ".join(json.loads((output / "scores.json").read_text())["warnings"])


def test_a_failing_file_whose_name_is_not_utf8_gets_one_message(tiny_case, tmp_path, capsys) -> None:
    path = pixel_file(tiny_case)
    bad = os.path.join(os.fsencode(path.parent), os.fsencode(path.name).replace(b".png", b"\xff.png"))
    path.unlink()
    with open(bad, "wb") as file:
        file.write(b"not a png")
    err = assert_refused_with_2(tiny_case, tmp_path, capsys, "\\xff.png", "not a PNG")
    err.encode("utf-8")  # printable everywhere


def test_a_txt_with_a_byte_order_mark_scores_as_without(tiny_case, tmp_path, capsys) -> None:
    code, err, expected = run_scoring(tiny_case, tmp_path / "plain", capsys)
    for txt in (tiny_case.res / "instance").rglob("*.txt"):
        txt.write_bytes(b"\xef\xbb\xbf" + txt.read_bytes())
    code, err, output = run_scoring(tiny_case, tmp_path / "bom", capsys)
    assert code == 0, err
    assert (output / "scores.txt").read_text() == (expected / "scores.txt").read_text()


def _json_results(case: TinyCase, content: bytes | str) -> None:
    import shutil

    shutil.rmtree(case.res / "instance")
    (case.res / "instance").mkdir()
    path = case.res / "instance" / "predictions.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)


def test_a_utf16_json_gets_the_json_hint(tiny_case, tmp_path, capsys) -> None:
    _json_results(tiny_case, json.dumps(_rle_document(tiny_case)).encode("utf-16"))
    assert_refused_with_2(tiny_case, tmp_path, capsys, "UTF-16 or UTF-32", "Save it as UTF-8", "JSON list of")


def test_a_json_with_a_byte_order_mark_scores(tiny_case, tmp_path, capsys) -> None:
    _json_results(tiny_case, b"\xef\xbb\xbf" + json.dumps(_rle_document(tiny_case)).encode())
    code, err, _ = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("[" * 100_000 + "]" * 100_000, "prediction 0 is not an object"),
        (
            '[{"category_id": 26, "score": 1, "segmentation": {}, "image_id": ' + "[" * 100_000 + "]" * 100_000 + "}]",
            "image_id <a JSON array> is not a Cityscapes stem",
        ),
        ("[" + "1" * 5000 + "]", "is not valid JSON (parse error: integer overflow)"),
        ('[{"score": 1e400}]', "is not valid JSON (parse error: numeric (floating point) overflow)"),
        ('[{"score": NaN}]', "is not valid JSON"),
        ("[] trailing", "is not valid JSON (parse error: trailing garbage)"),
        ("", "is not valid JSON"),
        ('{"predictions": []}', "holds a JSON object, not a list"),
    ],
)
def test_hostile_json(tiny_case, tmp_path, capsys, content, fragment) -> None:
    _json_results(tiny_case, content)
    assert_refused_with_2(tiny_case, tmp_path, capsys, fragment, "predictions.json")


def test_unknown_json_keys_are_skipped_unread_however_deep(tiny_case, tmp_path, capsys) -> None:
    document = _rle_document(tiny_case)
    text = json.dumps(document)
    deep = "[" * 50_000 + "]" * 50_000
    text = text.replace('"score"', f'"bbox": {deep}, "area": {{"a": [{{}}, {{}}]}}, "score"')
    _json_results(tiny_case, text)
    code, err, _ = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0, err


def test_a_json_of_empty_objects_is_parsed_in_bounded_memory(tiny_case, tmp_path) -> None:
    """json.loads would take ~25 times the file ([{},{},...]: ~1.6 GB for this 60 MB file); the stream does not."""
    one = json.dumps(_rle_document(tiny_case)[0]) + ","
    filler = '{"image_id": "x_000000_000000", "category_id": 26, "score": 0.5, "segmentation": ' + (
        '{"size": [48, 96], "counts": "0"}, "pad": [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}]},'
    )
    _json_results(tiny_case, "[" + one + filler * 400_000 + one[:-1] + "]")
    assert (tiny_case.res / "instance" / "predictions.json").stat().st_size > 60e6
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so it would count pytest's own size.
    script = (
        "import re, sys; from cityscapes_competition.scoring.program import score_main; "
        f"code = score_main([{str(tiny_case.ref.parent)!r}, {str(tmp_path / 'out')!r}, '--workers', '1']); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    peak_mib = int(result.stdout.strip().splitlines()[-1])
    assert peak_mib < 400, f"peak {peak_mib} MiB"


def test_an_output_that_is_a_file_is_one_message(tiny_case, tmp_path, capsys) -> None:
    output = tmp_path / "output"
    output.write_text("not a folder")
    code = score_main([str(tiny_case.ref.parent), str(output)])
    err = capsys.readouterr().err
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err


def test_a_failed_rerun_into_a_reused_output_leaves_no_stale_scores(tiny_case, tmp_path, capsys) -> None:
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 0 and (output / "scores.txt").exists(), err
    pixel_file(tiny_case).write_bytes(b"garbage")
    code, err, output = run_scoring(tiny_case, tmp_path, capsys)
    assert code == 2
    assert not (output / "scores.txt").exists() and not (output / "scores.json").exists()
    page = (output / "detailed_results.html").read_text()
    assert "could not be scored" in page and "not a PNG" in page


def _png(
    width: int, height: int, depth: int, color_type: int, rows: bytes, before: bytes = b"", after: bytes = b""
) -> bytes:
    """A PNG written chunk by chunk, so that a test can put odd chunks where encoders never do."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(rows))
    return b"\x89PNG\r\n\x1a\n" + header + before + idat + after + chunk(b"IEND", b"")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize(
    "color_type, before, after, fragment",
    [
        (2, b"", _chunk(b"iCCP", b"icc\x00"), "corrupt or truncated"),  # Pillow: IndexError
        (3, _chunk(b"tRNS", b"\xff\x00"), b"", "corrupt or truncated"),  # Pillow: AssertionError (no PLTE)
    ],
)
def test_masks_that_break_pillow_are_one_message(tiny_case, tmp_path, capsys, color_type, before, after, fragment):
    channels = 3 if color_type == 2 else 1
    rows = b"".join(b"\x00" + bytes(96 * channels) for _ in range(48))
    mask = txt_file(tiny_case).parent / "masks" / "odd.png"
    mask.write_bytes(_png(96, 48, 8, color_type, rows, before, after))
    txt_file(tiny_case).write_text("masks/odd.png 26 0.5\n")
    assert_refused_with_2(tiny_case, tmp_path, capsys, fragment, "odd.png")


def test_a_png_padded_with_empty_chunks_is_refused_unwalked(tiny_case, tmp_path, capsys) -> None:
    """Millions of 12-byte chunks cost seconds and hundreds of MB per read: refused from the file's size."""
    rows = b"".join(b"\x00" + bytes(96) for _ in range(48))
    padding = _chunk(b"tEXt", b"") * 200_000
    pixel_file(tiny_case).write_bytes(_png(96, 48, 8, 0, rows, after=padding))
    assert_refused_with_2(tiny_case, tmp_path, capsys, "far more than its 96x48 pixels need")
    many = _chunk(b"tEXt", b"") * 2_000  # small enough in bytes, too many chunks
    pixel_file(tiny_case).write_bytes(_png(96, 48, 8, 0, rows, after=many))
    assert_refused_with_2(tiny_case, tmp_path, capsys, "more than 1011 chunks")


def test_a_huge_rle_string_is_refused_in_bounded_memory(tiny_case, tmp_path) -> None:
    """'0' * 50 million: one run per character, far more runs than the image has pixels; no array per character."""
    document = _rle_document(tiny_case)
    document[0]["segmentation"]["counts"] = "0" * 50_000_000
    _json_results(tiny_case, json.dumps(document))
    script = (
        "import re, sys; from cityscapes_competition.scoring.program import score_main; "
        f"code = score_main([{str(tiny_case.ref.parent)!r}, {str(tmp_path / 'out')!r}, '--workers', '1']); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024); sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and "RLE counts are not runs" in result.stderr, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) < 600  # the 50 MB string itself is held twice at most


@pytest.mark.parametrize("where", ["pixel", "instance"])
def test_links_out_of_the_results_give_one_answer_wherever_they_lead(tiny_case, tmp_path, capsys, where) -> None:
    """A link's target outside is never looked at: a folder, a file and nothing give the same message."""
    path = pixel_file(tiny_case) if where == "pixel" else txt_file(tiny_case)
    path.unlink()
    messages = []
    for target in ("/root", "/etc/passwd", "/nonexistent_dir"):
        os.symlink(target, path)
        messages.append(assert_refused_with_2(tiny_case, tmp_path / target.strip("/"), capsys).replace(target, "T"))
        path.unlink()
    assert "points outside the results folder" in messages[0]
    assert messages[0] == messages[1] == messages[2]


def test_a_task_folder_linked_out_gives_one_answer_wherever_it_leads(tiny_case, tmp_path, capsys) -> None:
    import shutil

    shutil.rmtree(tiny_case.res / "pixel")
    messages = []
    for target in ("/root", "/nonexistent_dir"):
        os.symlink(target, tiny_case.res / "pixel")
        messages.append(assert_refused_with_2(tiny_case, tmp_path / target.strip("/"), capsys))
        (tiny_case.res / "pixel").unlink()
    assert "is a symbolic link" in messages[0] and messages[0] == messages[1]


def test_a_link_loop_does_not_open_a_way_out(tiny_case, tmp_path, capsys) -> None:
    """'loop/../sub/FILE' with loop -> loop and sub -> the ground truth: realpath gives up at the loop and
    returns a path that looks inside, while the kernel follows 'sub' out (found by an attacker: every score
    1.0 from the hidden ground truth). The resolution inside the folder refuses it, whatever lies outside."""
    path = pixel_file(tiny_case)
    os.symlink("loop", path.parent / "loop")
    os.symlink(os.path.relpath(tiny_case.ref, path.parent), path.parent / "sub")
    messages = []
    for target in (f"gtFine/val/frankfurt/{STEM}_gtFine_labelIds.png", "gtFine/val/frankfurt/nothing.png"):
        path.unlink(missing_ok=True)
        os.symlink(f"loop/../sub/{target}", path)
        err = assert_refused_with_2(tiny_case, tmp_path / target.replace("/", "_"), capsys)
        messages.append(err.replace(target, "TARGET"))
    assert "link loop" in messages[0] or "points outside" in messages[0], messages[0]
    assert messages[0] == messages[1]


def test_absolute_links_inside_the_results_are_followed(tiny_case, tmp_path, capsys) -> None:
    code, err, expected = run_scoring(tiny_case, tmp_path / "before", capsys)
    mask_folder = txt_file(tiny_case).parent / "masks"
    first = sorted(mask_folder.iterdir())[0]
    moved = tiny_case.res / "elsewhere.png"
    first.rename(moved)
    os.symlink(moved.absolute(), first)  # absolute, but inside the results folder
    code, err, output = run_scoring(tiny_case, tmp_path / "after", capsys)
    assert code == 0, err
    assert (output / "scores.txt").read_text() == (expected / "scores.txt").read_text()


@pytest.mark.parametrize("token", ["number", "string"])
def test_a_json_token_of_many_megabytes_is_quick_and_one_message(tiny_case, tmp_path, capsys, token) -> None:
    """yajl copies a token spanning its buffer on every read: quadratic with ijson's default 64 KB buffer
    (an attacker's 250 MB number would take an hour and a half); a 32 MB number also made ijson raise SystemError."""
    import time

    long = "9" * (32 << 20) if token == "number" else '"' + "0" * (32 << 20) + '"'
    _json_results(tiny_case, '[{"image_id": "frankfurt_000000_000019", "score": ' + long + "}]")
    started = time.monotonic()
    err = assert_refused_with_2(tiny_case, tmp_path, capsys, "predictions.json")
    assert time.monotonic() - started < 20
    assert ("is not valid JSON" in err) if token == "number" else ("lacks category_id" in err)


def test_mask_paths_are_joined_as_normpath_joins_them(tmp_path) -> None:
    """Plain names skip normpath (a third of parsing a txt): every name, plain or not, gives normpath's path,
    or is refused when that path leaves the results folder."""
    import random

    rng = random.Random(0)
    root = tmp_path / "res"
    folder = root / "instance" / "city"
    folder.mkdir(parents=True)
    txt = folder / "a.txt"
    names = ["m.png", "m/x.png", "-m.png", "m..png", "m./x.png", "../city/m.png", "./m.png", "m//x.png", "m/"]
    names += ["".join(rng.choice("ab_-./") for _ in range(rng.randint(1, 9))) for _ in range(3000)]
    for name in names:
        expected = os.path.normpath(os.path.join(folder, name))
        try:
            joined = results_format._mask_path(txt, str(folder), name, 1, str(root))
        except results_format.SubmissionError:
            assert not expected.startswith(f"{root}{os.sep}"), name
            continue
        assert joined == expected, name


@pytest.mark.parametrize("checked_size", [0, 10, 99, 100, 101, 5000])
def test_a_file_read_whole_whatever_its_size_did_since_it_was_checked(tmp_path, checked_size: int) -> None:
    """A file is read in one call at the size checked; one that grew since is read on to its end or refused past
    the limit, one that shrank is read to its end."""
    from cityscapes_competition.core.untrusted_files import UntrustedFileError, _read_at_most

    path = tmp_path / "file.bin"
    content = bytes(range(100))
    path.write_bytes(content)
    for limit, refused in ((1000, False), (100, False), (99, True)):
        handle = os.open(path, os.O_RDONLY)
        try:
            if refused:
                with pytest.raises(UntrustedFileError, match="more than the 99 bytes allowed"):
                    _read_at_most(handle, limit, min(checked_size, limit))
            else:
                assert _read_at_most(handle, limit, min(checked_size, limit)) == content
        finally:
            os.close(handle)
    path.write_bytes(b"")
    handle = os.open(path, os.O_RDONLY)
    try:
        assert _read_at_most(handle, 1000, checked_size) == b""
    finally:
        os.close(handle)
