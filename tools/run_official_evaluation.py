#!/usr/bin/env python
"""Run the OFFICIAL cityscapesScripts 2.3.0 evaluation on a ground-truth folder and a results folder.

This is a measuring instrument, not a scorer: it calls the official functions themselves
(``getPrediction``, ``evaluateImgLists``, ``instances2dict``, and through them ``evaluateMatches``,
``computeAverages``...) so that tests and benchmarks can compare the project's scorer with them and
time them.  The only thing computed here is what the official code has a path for but never fills:
the ground-truth regions' ``medDist`` / ``distConf`` for AP50m / AP100m (``--distances``).

Usage::

    python tools/run_official_evaluation.py --gt GT_ROOT --results RESULTS_ROOT --out OUT.json \
        [--tasks pixel,instance] [--distances]

Layout::

    GT_ROOT/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png      (pixel task)
    GT_ROOT/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png   (both tasks)
    GT_ROOT/disparity/<split>/<city>/<stem>_disparity.png         (--distances)
    GT_ROOT/camera/<split>/<city>/<stem>_camera.json              (--distances)
    RESULTS_ROOT/pixel/**/<stem>*.png                             (labelIds predictions)
    RESULTS_ROOT/instance/**/<stem>*.txt                          (official instance txt format)

Output JSON (NaN / Infinity allowed)::

    {"pixel": <official pixel evaluateImgLists dict>,
     "instance": <official instance evaluateImgLists dict>,
     "seconds": {"pixel": s, "instance": s, "distance_fill": s,
                 "pixel_get_prediction": s, "instance_get_prediction": s},
     "images": N, "warnings": [...]}

``seconds.pixel`` / ``seconds.instance`` time the official evaluation call (image reading included).
Without ``--distances`` the instance time is the one ``evaluateImgLists`` call (which itself runs
``instances2dict`` and writes its cache file).  With ``--distances`` it is ``instances2dict`` +
the official ``writeDict2JSON`` of the filled dict + ``evaluateImgLists`` (which then loads that
file instead of building it); the filling itself is ``seconds.distance_fill``.  Locating the
predictions with the official ``getPrediction`` is timed separately (``*_get_prediction``).

Exit codes: 0 ok, 2 bad input (missing folder, no ground truth...), 3 the official code aborted
through its ``printError`` (message relayed on stderr), 4 the official code crashed on the known
cityscapesScripts issue #89, 5 the official code raised another exception.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

# Never write byte-code (or anything else) into site-packages.
sys.dont_write_bytecode = True

EXIT_INPUT = 2
EXIT_OFFICIAL_ABORT = 3
EXIT_ISSUE_89 = 4
EXIT_OFFICIAL_EXCEPTION = 5

TASKS = ("pixel", "instance")

# The official modules read these at import time (a CITYSCAPES_EXPORT_DIR that is not a directory
# even makes the pixel module raise ValueError on import) or in getPrediction when no
# predictionPath is set.  Everything they feed is set explicitly below, so drop them.
_CITYSCAPES_ENV = ("CITYSCAPES_DATASET", "CITYSCAPES_RESULTS", "CITYSCAPES_EXPORT_DIR")


class InputError(Exception):
    """Bad command-line input: missing folder, no ground truth, inconsistent lists..."""


class OfficialAbort(Exception):
    """The official code called its printError (print + sys.exit(-1))."""


class OfficialIssue89(Exception):
    """The official evaluateMatches crashed with IndexError on yTrueSortedCumsum[-1]."""


class OfficialException(Exception):
    """The official code raised an unexpected exception."""


def _import_official():
    for name in _CITYSCAPES_ENV:
        os.environ.pop(name, None)
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as inst_mod
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as pix_mod
    from cityscapesscripts.evaluation.instances2dict import instances2dict
    from cityscapesscripts.helpers.csHelpers import writeDict2JSON

    return pix_mod, inst_mod, instances2dict, writeDict2JSON


@contextlib.contextmanager
def _official_call(what: str, captured_warnings: list[str]):
    """Run official code: capture its stdout (printError prints there, then sys.exit(-1)),
    record its warnings, and turn its failures into our exceptions."""
    out = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
            warnings.simplefilter("always")
            try:
                yield
            finally:
                for w in caught:
                    msg = f"{what}: {w.category.__name__}: {w.message}"
                    if msg not in captured_warnings:
                        captured_warnings.append(msg)
    except SystemExit as exc:
        text = " ".join(out.getvalue().split()) or f"sys.exit({exc.code})"
        raise OfficialAbort(f"official {what} aborted: {text}") from None
    except IndexError as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        last = frames[-1] if frames else None
        if (
            last is not None
            and last.name == "evaluateMatches"
            and last.filename.endswith("evalInstanceLevelSemanticLabeling.py")
            and "yTrueSortedCumsum[-1]" in (last.line or "")
        ):
            raise OfficialIssue89(
                "the official cityscapesScripts code crashed (known issue #89): in evaluateMatches a "
                "class has ground truth and predictions but every prediction is ignored and no ground "
                f"truth is matched, so yTrueSortedCumsum[-1] indexes an empty array (IndexError: {exc})"
            ) from None
        raise OfficialException(
            f"official {what} raised IndexError: {exc}\n{''.join(traceback.format_exception(exc))}"
        ) from None
    except (InputError, OfficialAbort, OfficialIssue89, OfficialException):
        raise
    except Exception as exc:
        raise OfficialException(
            f"official {what} raised {type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc))}"
        ) from None


def to_jsonable(obj):
    """Numpy scalars/arrays -> Python floats/ints/lists, recursively; NaN/inf kept."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj)
    return obj


def find_gt(gt_root: Path, kind: str) -> list[str]:
    """Sorted absolute paths of GT_ROOT/gtFine/**/*_gtFine_<kind>.png."""
    pattern = os.path.join(glob.escape(str(gt_root / "gtFine")), "**", f"*_gtFine_{kind}.png")
    return sorted(os.path.abspath(p) for p in glob.glob(pattern, recursive=True))


def _gt_stem(path: str, kind: str) -> str:
    return os.path.basename(path)[: -len(f"_gtFine_{kind}.png")]


def distance_files(gt_root: Path, instance_gt: str) -> tuple[str, str]:
    """Disparity and camera files of a GT_ROOT/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png."""
    rel_dir = os.path.relpath(os.path.dirname(instance_gt), os.path.abspath(gt_root / "gtFine"))
    stem = _gt_stem(instance_gt, "instanceIds")
    disparity = os.path.join(os.path.abspath(gt_root / "disparity"), rel_dir, f"{stem}_disparity.png")
    camera = os.path.join(os.path.abspath(gt_root / "camera"), rel_dir, f"{stem}_camera.json")
    return disparity, camera


def fill_distances(gt_instances: dict, gt_root: Path) -> None:
    """Reference definition of medDist / distConf, filled into the official gtInstances dict.

    For every region (every distinct value of the instanceIds image, groups included): its pixels are
    instanceIds == instID; a pixel has a valid disparity when its raw value p > 0; its depth is
    baseline * fx / ((p - 1) / 256) in float64 (p == 1 -> +inf); medDist = median depth of the valid
    pixels (+inf if none); distConf = valid pixels / region pixels.
    """
    import numpy as np
    from PIL import Image

    for img_key, per_label in gt_instances.items():
        disparity_file, camera_file = distance_files(gt_root, img_key)
        for f in (disparity_file, camera_file):
            if not os.path.isfile(f):
                raise InputError(f"--distances: missing {f} (for {img_key})")
        with open(camera_file) as fh:
            camera = json.load(fh)
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
        with Image.open(img_key) as im:
            instance_ids = np.array(im)
        with Image.open(disparity_file) as im:
            disparity = np.array(im)
        if disparity.shape != instance_ids.shape:
            raise InputError(
                f"--distances: {disparity_file} has shape {disparity.shape}, {img_key} has shape {instance_ids.shape}"
            )
        for regions in per_label.values():
            for region in regions:
                mask = instance_ids == region["instID"]
                n_region = int(np.count_nonzero(mask))
                if n_region != region["pixelCount"]:
                    raise AssertionError(f"pixel count mismatch for region {region['instID']} of {img_key}")
                p = disparity[mask].astype(np.float64)
                valid = p[p > 0]
                with np.errstate(divide="ignore"):
                    depths = baseline * fx / ((valid - 1.0) / 256.0)
                region["medDist"] = float(np.median(depths)) if depths.size else math.inf
                region["distConf"] = valid.size / n_region


def run_pixel(pix_mod, gt_list, pred_root, seconds, captured):
    args = pix_mod.args
    args.quiet = True
    args.JSONOutput = False
    args.evalPixelAccuracy = False
    args.colorized = False
    args.bold = ""
    args.nocol = ""
    args.predictionPath = os.path.abspath(pred_root)
    args.predictionWalk = None

    with _official_call("pixel getPrediction", captured):
        t0 = time.perf_counter()
        preds = [pix_mod.getPrediction(args, gt) for gt in gt_list]
        seconds["pixel_get_prediction"] = time.perf_counter() - t0

    with _official_call("pixel evaluateImgLists", captured):
        t0 = time.perf_counter()
        result = pix_mod.evaluateImgLists(preds, gt_list, args)
        seconds["pixel"] = time.perf_counter() - t0
    return result


def run_instance(inst_mod, instances2dict, write_dict2json, gt_list, pred_root, gt_root, distances, seconds, captured):
    args = inst_mod.args
    args.quiet = True
    args.JSONOutput = False
    args.colorized = False
    args.csv = False
    args.predictionPath = os.path.abspath(pred_root)
    args.predictionWalk = None

    with _official_call("instance getPrediction", captured):
        t0 = time.perf_counter()
        preds = [inst_mod.getPrediction(gt, args) for gt in gt_list]
        seconds["instance_get_prediction"] = time.perf_counter() - t0

    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="cs_official_eval_") as tmp:
        # evaluateImgLists writes "matches.json" into the current directory.
        os.chdir(tmp)
        try:
            # Fresh cache location: the default one lives in site-packages and may hold a stale file.
            args.gtInstancesFile = os.path.join(tmp, "gtInstances.json")
            args.exportFile = os.path.join(tmp, "resultInstanceLevelSemanticLabeling.json")
            args.distanceAvailable = bool(distances)
            official_seconds = 0.0
            if distances:
                with _official_call("instances2dict", captured):
                    t0 = time.perf_counter()
                    gt_instances = instances2dict(list(gt_list), False)
                    official_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                fill_distances(gt_instances, gt_root)
                seconds["distance_fill"] = time.perf_counter() - t0
                with _official_call("writeDict2JSON", captured):
                    t0 = time.perf_counter()
                    write_dict2json(gt_instances, args.gtInstancesFile)
                    official_seconds += time.perf_counter() - t0
            with _official_call("instance evaluateImgLists", captured):
                t0 = time.perf_counter()
                result = inst_mod.evaluateImgLists(preds, list(gt_list), args)
                official_seconds += time.perf_counter() - t0
            seconds["instance"] = official_seconds
        finally:
            os.chdir(old_cwd)
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Run the official cityscapesScripts 2.3.0 evaluation and write its results as JSON."
    )
    parser.add_argument("--gt", required=True, type=Path, help="GT_ROOT (holding gtFine/, disparity/, camera/)")
    parser.add_argument("--results", required=True, type=Path, help="RESULTS_ROOT (holding pixel/, instance/)")
    parser.add_argument("--out", required=True, type=Path, help="output JSON file")
    parser.add_argument("--tasks", default="pixel,instance", help="comma-separated subset of pixel,instance")
    parser.add_argument("--distances", action="store_true", help="fill medDist/distConf and evaluate AP100m / AP50m")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    opts = parse_args(argv)
    try:
        tasks = [t.strip() for t in opts.tasks.split(",") if t.strip()]
        unknown = [t for t in tasks if t not in TASKS]
        if unknown or not tasks:
            raise InputError(f"--tasks must be a comma-separated subset of {','.join(TASKS)}, got {opts.tasks!r}")
        if opts.distances and "instance" not in tasks:
            raise InputError("--distances needs the instance task")
        gt_root = opts.gt.resolve()
        results_root = opts.results.resolve()
        out_path = opts.out.resolve()
        if not (gt_root / "gtFine").is_dir():
            raise InputError(f"ground-truth folder {gt_root / 'gtFine'} does not exist")
        if not out_path.parent.is_dir():
            raise InputError(f"output folder {out_path.parent} does not exist")
        for forbidden in (gt_root, results_root):
            if out_path.is_relative_to(forbidden):
                raise InputError(f"--out {out_path} must not be inside {forbidden}")

        gt_lists: dict[str, list[str]] = {}
        for task in tasks:
            kind = "labelIds" if task == "pixel" else "instanceIds"
            if not (results_root / task).is_dir():
                raise InputError(f"results folder {results_root / task} does not exist")
            gt_lists[task] = find_gt(gt_root, kind)
            if not gt_lists[task]:
                raise InputError(f"no *_gtFine_{kind}.png under {gt_root / 'gtFine'}")
        if len(gt_lists) == 2:
            pix_stems = [_gt_stem(p, "labelIds") for p in gt_lists["pixel"]]
            inst_stems = [_gt_stem(p, "instanceIds") for p in gt_lists["instance"]]
            if pix_stems != inst_stems:
                raise InputError(f"labelIds ({len(pix_stems)}) and instanceIds ({len(inst_stems)}) ground truth differ")
        if opts.distances:
            for gt in gt_lists["instance"]:
                for f in distance_files(gt_root, gt):
                    if not os.path.isfile(f):
                        raise InputError(f"--distances: missing {f}")

        pix_mod, inst_mod, instances2dict, write_dict2json = _import_official()
        seconds: dict[str, float] = {}
        captured: list[str] = []
        output: dict = {}
        if "pixel" in gt_lists:
            output["pixel"] = run_pixel(pix_mod, gt_lists["pixel"], results_root / "pixel", seconds, captured)
        if "instance" in gt_lists:
            output["instance"] = run_instance(
                inst_mod,
                instances2dict,
                write_dict2json,
                gt_lists["instance"],
                pred_root=results_root / "instance",
                gt_root=gt_root,
                distances=opts.distances,
                seconds=seconds,
                captured=captured,
            )
        output["seconds"] = seconds
        output["images"] = len(next(iter(gt_lists.values())))
        output["warnings"] = captured
    except InputError as exc:
        print(f"run_official_evaluation: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except OfficialAbort as exc:
        print(f"run_official_evaluation: {exc}", file=sys.stderr)
        return EXIT_OFFICIAL_ABORT
    except OfficialIssue89 as exc:
        print(f"run_official_evaluation: {exc}", file=sys.stderr)
        return EXIT_ISSUE_89
    except OfficialException as exc:
        print(f"run_official_evaluation: {exc}", file=sys.stderr)
        return EXIT_OFFICIAL_EXCEPTION

    text = json.dumps(to_jsonable(output), allow_nan=True, indent=1, sort_keys=True)
    tmp_out = out_path.with_name(out_path.name + ".partial")
    tmp_out.write_text(text + "\n")
    os.replace(tmp_out, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
