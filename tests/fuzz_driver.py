"""Random mutations of valid results and submissions, run through the programs for a bounded time.

Run by ``test_fuzz.py`` in a child process (a crash, a hang or memory growth then fails the test instead
of taking pytest down)::

    python tests/fuzz_driver.py scoring   TEMPLATE_INPUT WORK SECONDS SEED
    python tests/fuzz_driver.py ingestion INPUT_DATA WORK SECONDS SEED TEMPLATE_SUBMISSION...

Each case copies the template (for the ingestion, one of the templates, picked at random: the baseline as
``.keras`` and as ``.h5``, so that damage to an HDF5 file's own header stays covered), applies one or a few
mutations (bytes flipped, files cut, text fields replaced by hostile values, names, links, FIFOs, folders),
runs the program's CLI entry in this process under an alarm, and records a failure when the exit code is not
0 or 2, when standard error holds a traceback or an internal error, or when a refusal is not one line. The
last line printed is a JSON summary: cases run, failures (with the mutations that caused them), and the peak
memory (VmHWM).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

CASE_SECONDS = 30  # a case taking longer is a hang
HOSTILE_TEXTS = [
    "",
    "\x00",
    "\ufeff",
    "nan",
    "inf",
    "-1",
    "1e400",
    "9" * 5000,
    "0x1A",
    "２６",
    "../" * 40 + "etc/passwd",
    "/etc/passwd",
    "masks/\udcff.png",
    "a" * 10_000,
    "\t",
    "\u00a0",
    "\r",
    "\u2028",
    "[" * 5000,
    "&a [*a]",
    "!!python/object/apply:os.system [echo]",
    "{}",
    "[]",
    "null",
    "true",
    "-0",
    "1" * 400,
]


class CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CaseTimeout()


def peak_mib() -> int:
    match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) // 1024 if match else -1


# ---- mutations ---------------------------------------------------------------------------------------


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def flip_bytes(rng: random.Random, path: Path) -> str:
    data = bytearray(path.read_bytes())
    if not data:
        return f"{path.name}: empty, left"
    for _ in range(rng.choice([1, 3, 10, 50])):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return f"{path.name}: bytes flipped"


def cut(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(len(data) + 1)])
    return f"{path.name}: cut"


def insert_bytes(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    at = rng.randrange(len(data) + 1)
    hostile = rng.choice(HOSTILE_TEXTS).encode("utf-8", errors="surrogateescape")
    junk = rng.choice([rng.randbytes(rng.randrange(1, 64)), b"\x00" * 1000, hostile])
    path.write_bytes(data[:at] + junk + data[at:])
    return f"{path.name}: bytes inserted"


def replace_token(rng: random.Random, path: Path) -> str:
    """Replace one whitespace-separated token (a txt field, a YAML value, a JSON number) by a hostile text."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    tokens = re.split(r"(\s+)", text)
    words = [i for i, token in enumerate(tokens) if token.strip()]
    if not words:
        return f"{path.name}: no token"
    index = rng.choice(words)
    tokens[index] = rng.choice(HOSTILE_TEXTS)
    path.write_bytes("".join(tokens).encode("utf-8", errors="surrogateescape"))
    return f"{path.name}: token {index} replaced"


def duplicate_lines(rng: random.Random, path: Path) -> str:
    lines = path.read_bytes().splitlines(keepends=True)
    if not lines:
        return f"{path.name}: no lines"
    line = rng.choice(lines)
    copies = min(rng.choice([2, 300, 20_000]), max(1, _MAX_DUPLICATED_BYTES // len(line)))
    path.write_bytes(b"".join(lines) + line * copies)
    return f"{path.name}: lines duplicated"


# A line a hostile text made a megabyte long, copied 20,000 times, took the driver itself past its memory (seed 777):
# the copies stop at 64 MB, past every size limit of the programs under test.
_MAX_DUPLICATED_BYTES = 64 << 20


def rename_odd(rng: random.Random, path: Path) -> str:
    name = os.fsencode(path.name)
    odd = rng.choice([b"\xff" + name, name.upper(), name + b"\n", b" " + name, name.replace(b".", b"\xfe.")])
    os.rename(path, os.path.join(os.fsencode(path.parent), odd))
    return f"{path.name}: renamed {odd[:40]!r}"


def become_link(rng: random.Random, path: Path, root: Path) -> str:
    target = rng.choice(
        [
            "/etc/passwd",
            "/dev/zero",
            "/",
            str(path),  # a loop
            os.path.relpath(rng.choice(all_files(root) or [path]), path.parent),
            "../" * 30,
            "nowhere",
        ]
    )
    path.unlink()
    os.symlink(target, path)
    return f"{path.name}: link to {target[:60]}"


def become_special(rng: random.Random, path: Path) -> str:
    path.unlink()
    kind = rng.choice(["fifo", "folder", "empty"])
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
        (path / "inner.png").write_bytes(b"x")
    else:
        path.write_bytes(b"")
    return f"{path.name}: became {kind}"


def add_junk(rng: random.Random, root: Path) -> str:
    folder = root
    for depth in range(rng.choice([1, 5, 60])):
        folder = folder / f"d{depth}"
    folder.mkdir(parents=True, exist_ok=True)
    name = rng.choice([".DS_Store", "__MACOSX", "x.txt", "frankfurt_000000_000019_x.png", "notes.json", "metadata"])
    target = folder / name
    if os.path.lexists(target):
        return f"junk {target.relative_to(root)} already there"
    if rng.random() < 0.5:
        os.symlink(rng.choice(["/", "/etc/passwd", str(root)]), target)
    else:
        target.write_bytes(rng.choice([b"", rng.randbytes(100), b"[]", b"x 26 0.5\n"]))
    return f"junk {target.relative_to(root)}"


def mutate(rng: random.Random, root: Path) -> list[str]:
    """One to three mutations of the files under ``root``."""
    done = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        files = all_files(root)
        if not files or rng.random() < 0.1:
            done.append(add_junk(rng, root))
            continue
        path = rng.choice(files)
        kind = rng.random()
        if path.suffix in (".txt", ".json", "") and kind < 0.5:
            done.append(rng.choice([replace_token, replace_token, duplicate_lines])(rng, path))
        elif kind < 0.75:
            done.append(rng.choice([flip_bytes, cut, insert_bytes])(rng, path))
        elif kind < 0.85:
            done.append(rename_odd(rng, path))
        elif kind < 0.93:
            done.append(become_link(rng, path, root))
        else:
            done.append(become_special(rng, path))
    return done


# ---- running -----------------------------------------------------------------------------------------


def run_case(run: Callable[[], int]) -> tuple[int | str, str]:
    stderr = io.StringIO()
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code: int | str = run()
    except CaseTimeout:
        code = "hang"
    except BaseException as error:  # what escapes the CLI's guard is the finding
        code = f"escaped {type(error).__name__}: {error}"[:300]
    finally:
        signal.alarm(0)
    return code, stderr.getvalue()


def judge(code: int | str, err: str) -> str | None:
    if code not in (0, 2):
        return f"exit {code}"
    if "Traceback" in err or "internal error" in err:
        return "traceback or internal error"
    refusals = [line for line in err.splitlines() if ": error: " in line]
    if code == 2 and len(refusals) != 1:
        return f"{len(refusals)} error lines"
    try:
        err.encode("utf-8")
    except UnicodeEncodeError:
        return "unprintable message"
    return None


def fuzz(seconds: float, seed: int, make_case: Callable[[random.Random, Path], tuple[list[str], Callable]], work: Path):
    signal.signal(signal.SIGALRM, _on_alarm)
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    cases, failures, codes = 0, [], {}
    while time.monotonic() < deadline:
        case_dir = work / f"case{cases}"
        mutations, run = make_case(rng, case_dir)
        code, err = run_case(run)
        codes[str(code)] = codes.get(str(code), 0) + 1
        problem = judge(code, err)
        if problem:
            failures.append({"case": cases, "problem": problem, "mutations": mutations, "stderr": err[-800:]})
        shutil.rmtree(case_dir, ignore_errors=True)
        cases += 1
    return {"cases": cases, "codes": codes, "failures": failures, "peak_mib": peak_mib()}


def scoring_cases(template: Path) -> Callable:
    from cityscapes_competition.scoring.program import score_main

    def make_case(rng: random.Random, case_dir: Path):
        shutil.copytree(template, case_dir / "input", symlinks=True)
        res = case_dir / "input" / "res"
        if rng.random() < 0.25:
            _as_rle_json(res)
        mutations = mutate(rng, res)
        return mutations, lambda: score_main([str(case_dir / "input"), str(case_dir / "output"), "--workers", "1"])

    return make_case


def _as_rle_json(res: Path) -> None:
    """The instance results as one RLE JSON (the txt files' masks encoded with pycocotools)."""
    from helpers import rle_predictions

    predictions = rle_predictions(res)
    shutil.rmtree(res / "instance")
    (res / "instance").mkdir()
    (res / "instance" / "predictions.json").write_text(json.dumps(predictions))


def ingestion_cases(templates: list[Path], input_data: Path) -> Callable:
    from cityscapes_competition.ingestion.program import ingest_main

    def make_case(rng: random.Random, case_dir: Path):
        submission = case_dir / "submission"
        shutil.copytree(rng.choice(templates), submission, symlinks=True)
        mutations = mutate(rng, submission)
        output = case_dir / "output"
        return mutations, lambda: ingest_main([str(input_data), str(output), str(case_dir), str(submission)])

    return make_case


def main(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "scoring":
        template, work, seconds, seed = Path(argv[1]), Path(argv[2]), float(argv[3]), int(argv[4])
        summary = fuzz(seconds, seed, scoring_cases(template), work)
    else:
        input_data, work, seconds, seed = Path(argv[1]), Path(argv[2]), float(argv[3]), int(argv[4])
        templates = [Path(arg) for arg in argv[5:]]
        summary = fuzz(seconds, seed, ingestion_cases(templates, input_data), work)
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
