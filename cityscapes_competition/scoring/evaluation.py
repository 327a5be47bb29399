"""The whole evaluation: plan the per-frame jobs, run them in worker processes, reduce, summarize.

Files -> per-frame records -> totals -> scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import SubmissionError, printable
from ..core.naming import FrameId
from ..core.processes import tensorflow_loaded, worker_pool
from ..core.untrusted_files import SentFolder, sent_folder
from .frame_evaluation import FrameJob, FrameRecords, frame_records
from .groundtruth import GroundTruthFrame, discover_ground_truth
from .metrics import instance as instance_metric
from .metrics import pixel as pixel_metric
from .reference_index import copy_paths, load_reference_index
from .results_format import (
    INSTANCE_DIR,
    PIXEL_DIR,
    InstanceLine,
    ResultsFolder,
    cap_instances,
    index_task_files,
    locate_results,
    match_predictions,
    parse_instance_txt,
    walk_files,
)
from .rle_results import parse_rle_json
from .scores import Scores

# With TensorFlow loaded, workers start from a fresh interpreter (~0.3 s, see worker_pool): below this many
# frames that costs more than it saves. Forked workers start in a few ms: worth it from two frames.
_MIN_FRAMES_FOR_FRESH_WORKERS = 8
# The largest share of frames a worker is sent at once: progress is reported a share at a time.
_MAX_CHUNK = 8


@dataclass
class EvaluationPlan:
    jobs: list[FrameJob]
    pixel_entered: bool
    instance_entered: bool
    with_distances: bool
    distance_note: str | None
    warnings: list[str] = field(default_factory=list)


def plan_evaluation(ref_root: Path, res_root: Path) -> EvaluationPlan:
    """Find the ground truth and the matching results; every file-level problem is raised here."""
    frames = discover_ground_truth(ref_root)
    folder = locate_results(res_root)
    if folder.pixel_dir is None and folder.instance_dir is None:
        raise SubmissionError(
            f"holds neither a '{PIXEL_DIR}' nor an '{INSTANCE_DIR}' folder",
            res_root,
            f"Put pixel-level results in {PIXEL_DIR}/ and instance-level results in {INSTANCE_DIR}/.",
        )
    warnings: list[str] = []
    frame_ids = [gt.frame for gt in frames]
    pixel = _pixel_predictions(folder, frame_ids, warnings)
    instances = _instance_predictions(folder, frame_ids, warnings)
    with_distances, distance_note = _distance_availability(frames)
    index = load_reference_index(ref_root)
    if index.note:
        warnings.append(index.note)
    jobs = [
        FrameJob(
            gt,
            pixel[gt.frame] if pixel is not None else None,
            tuple(instances.get(gt.frame, ())) if instances is not None else None,
            with_distances,
            index.entries.get(gt.frame),
            copy_paths(ref_root, gt.frame.stem),
            folder.sent,
        )
        for gt in frames
    ]
    return EvaluationPlan(jobs, pixel is not None, instances is not None, with_distances, distance_note, warnings)


def _pixel_predictions(folder: ResultsFolder, frames: list[FrameId], warnings: list[str]) -> dict | None:
    if folder.pixel_dir is None:
        warnings.append(f"No '{PIXEL_DIR}' folder in the results: the pixel-level task scores 0.")
        return None
    by_frame, unnamed = index_task_files(walk_files(folder.pixel_dir, folder.sent), ".png")
    _warn_unused(by_frame, unnamed, frames, PIXEL_DIR, warnings)
    return match_predictions(frames, by_frame, PIXEL_DIR, "pixel prediction PNG")


def _instance_predictions(
    folder: ResultsFolder, frames: list[FrameId], warnings: list[str]
) -> dict[FrameId, list[InstanceLine]] | None:
    if folder.instance_dir is None:
        warnings.append(f"No '{INSTANCE_DIR}' folder in the results: the instance-level task scores 0.")
        return None
    files = walk_files(folder.instance_dir, folder.sent)
    json_files = [Path(p) for p in files if p.endswith(".json")]
    by_frame, unnamed = index_task_files(files, ".txt")
    if json_files:
        return _rle_predictions(json_files, by_frame, frames, folder.sent, warnings)
    _warn_unused(by_frame, unnamed, frames, INSTANCE_DIR, warnings)
    matched = match_predictions(frames, by_frame, INSTANCE_DIR, "instance prediction txt")
    per_frame, sent_root = {}, sent_folder(folder.root)
    for frame, path in matched.items():
        per_frame[frame] = _capped(parse_instance_txt(path, folder.root, sent_root), frame, warnings)
    return per_frame


def _rle_predictions(
    json_files: list[Path], by_frame: dict, frames: list[FrameId], sent: SentFolder, warnings: list[str]
) -> dict[FrameId, list[InstanceLine]]:
    if len(json_files) > 1 or by_frame:
        raise SubmissionError(
            "holds " + ("several JSON files" if len(json_files) > 1 else "both txt files and a JSON file"),
            json_files[0].parent,
            "Give instance results either as one RLE JSON file or as one txt per image, not both.",
        )
    parsed = parse_rle_json(json_files[0], set(frames), sent)
    warnings.extend(parsed.warnings)
    return parsed.per_frame


def _capped(lines: list[InstanceLine], frame: FrameId, warnings: list[str]) -> list[InstanceLine]:
    kept, note = cap_instances(lines, frame)
    if note:
        warnings.append(note)
    return kept


def _warn_unused(by_frame, unnamed, frames: list[FrameId], task: str, warnings: list[str]) -> None:
    extra = sorted(set(by_frame) - set(frames))
    if extra:
        warnings.append(f"{task}: {len(extra)} files for images outside the test set were ignored (e.g. {extra[0]}).")
    if unnamed:
        warnings.append(
            f"{task}: {len(unnamed)} files not named after a test image were ignored (e.g. {unnamed[0].name})."
        )


def _distance_availability(frames: list[GroundTruthFrame]) -> tuple[bool, str | None]:
    lacking = sum(not gt.has_distances for gt in frames)
    if lacking == 0:
        return True, None
    return False, (
        f"AP100m and AP50m need disparity and camera files for every test image; "
        f"{lacking} of {len(frames)} images lack them, so these two metrics are not computed."
    )


def run_plan(
    plan: EvaluationPlan,
    workers: int | None = None,
    on_frame: Callable[[], None] | None = None,
) -> Scores:
    """The scores of the plan's frames, evaluated in ``workers`` processes."""
    pixel_totals = pixel_metric.combine([]) if plan.pixel_entered else None
    instance_records: list[instance_metric.InstanceFrameRecord] = []
    stale = 0
    for records in _records_of_frames(plan.jobs, workers):
        stale += records.index_stale
        if pixel_totals is not None and records.pixel is not None:
            pixel_metric.add_frame(pixel_totals, records.pixel)
        if records.instance is not None:
            instance_records.append(records.instance)
        if on_frame is not None:
            on_frame()
    pixel_scores = pixel_metric.summarize(pixel_totals) if pixel_totals is not None else None
    instance_scores = None
    if plan.instance_entered:
        totals = instance_metric.combine(instance_records, plan.with_distances)
        instance_scores = instance_metric.summarize(totals, plan.distance_note)
    warnings = [printable(warning) for warning in plan.warnings]  # names may hold undecodable bytes
    if stale:
        warnings.append(
            f"The reference index no longer matches {stale} ground-truth images (scored correctly, but slower); "
            f"organisers: rebuild it with 'python -m cityscapes_competition index <reference folder>'."
        )
    return Scores(pixel_scores, instance_scores, warnings, len(plan.jobs), plan.with_distances)


def _records_of_frames(jobs: list[FrameJob], workers: int | None) -> Iterator[FrameRecords]:
    count = _worker_count(len(jobs), workers or os.cpu_count() or 1)
    if count == 0:
        yield from map(frame_records, jobs)
        return
    with worker_pool(count) as pool:
        for records in pool.map(_chunk_records, _chunks(jobs, count)):  # forks every worker (on its first submit)
            yield from records


def _worker_count(frames: int, cores: int) -> int:
    """Worker processes for ``frames`` frames on ``cores`` cores; 0: evaluate them in this process (one frame:
    a worker would only add its start). Forked workers cost a few ms, workers started afresh much more."""
    if cores <= 1 or frames <= 1:
        return 0
    if tensorflow_loaded() and frames < _MIN_FRAMES_FOR_FRESH_WORKERS:
        return 0
    return min(cores, frames)


def _chunks(jobs: list[FrameJob], workers: int) -> list[list[FrameJob]]:
    """The frames in shares that shrink as they run out (guided scheduling), in order: the workers stay busy to
    the end, the last shares being single frames, and there are few shares to send (each costs ~0.3 ms)."""
    chunks, start = [], 0
    while start < len(jobs):
        size = min(_MAX_CHUNK, max(1, (len(jobs) - start) // (2 * workers)))
        chunks.append(jobs[start : start + size])
        start += size
    return chunks


def _chunk_records(jobs: list[FrameJob]) -> list[FrameRecords]:
    """A share of the frames, evaluated in a worker."""
    return [frame_records(job) for job in jobs]


def evaluate(ref_root: Path, res_root: Path, workers: int | None = None) -> Scores:
    return run_plan(plan_evaluation(ref_root, res_root), workers)
