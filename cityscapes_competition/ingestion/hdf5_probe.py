"""Reading an untrusted HDF5 file once in a child process, so that a crash of the HDF5 library is a message.

The HDF5 C library trusts the structures it reads: a few flipped bytes in a model file's headers can
make it crash (a segmentation fault in h5py, found by this project's fuzz test), and a crash of the
ingestion program is no message at all. So before anything in the program's own process reads the
participant's model, a fresh interpreter (``python -I``: nothing of the submission on its path) reads
the whole file the way the later steps do: every group and link, every attribute, every dataset's
data, chunk by chunk. The library is deterministic: a file the child read to the end reads the same in
the parent. If the child dies by a signal, runs out of time or finds the file unreadable, the file is
refused with one message.
"""

from __future__ import annotations

import itertools
import math
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PROBE_SECONDS = 300  # reading a 2 GB model takes seconds; a file that makes the library loop is refused
MAX_DATA_BYTES = 8 * 1024**3  # what a model's datasets may hold in all, uncompressed
MAX_ATTRIBUTE_BYTES = 64 * 1024**2
MAX_OBJECTS = 200_000
READ_BYTES = 64 * 1024**2  # read at a time, and the largest chunk accepted
MAX_CHUNKS = 1_000_000  # reading a chunk costs microseconds: a million is seconds, two billion an hour
CHILD_ADDRESS_SPACE = 4 * 1024**3  # Python, numpy, h5py and one piece of 64 MB fit many times over
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class ProbeFailure(Exception):
    """Why the file cannot be read safely; the caller names the file."""


def probe_hdf5(path: Path) -> None:
    """ProbeFailure unless a child process reads all of ``path`` with h5py and exits cleanly."""
    command = [
        sys.executable,
        "-I",
        "-c",
        f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
        "from cityscapes_competition.ingestion.hdf5_probe import main; "
        "sys.exit(main(sys.argv[1]))",
        os.fspath(path),
    ]
    try:
        child = subprocess.run(command, capture_output=True, timeout=PROBE_SECONDS, env=_child_environment())
    except subprocess.TimeoutExpired:
        raise ProbeFailure(f"reading it with the HDF5 library did not end within {PROBE_SECONDS} s") from None
    reason = child.stdout.decode("utf-8", errors="replace").strip()[-500:]
    if child.returncode < 0:
        raise ProbeFailure(f"the HDF5 library crashed reading it (signal {-child.returncode})")
    if child.returncode != 0:
        raise ProbeFailure(reason or f"the HDF5 library could not read it (exit {child.returncode})")


def _child_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}


def main(path: str) -> int:
    """In the child: read everything; print the reason and exit 1 on a readable failure."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)  # an inherited hard limit below ours stays (it cannot rise)
    cap = CHILD_ADDRESS_SPACE if hard == resource.RLIM_INFINITY else min(CHILD_ADDRESS_SPACE, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))  # a MemoryError, not the machine
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            _read_all(h5)
    except ProbeFailure as failure:
        print(failure)
        return 1
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError... for damaged files
        text = str(exc).strip().splitlines()
        print(text[0][:300] if text else type(exc).__name__)
        return 1
    return 0


def _read_all(h5) -> None:
    import h5py

    budget = [MAX_DATA_BYTES, MAX_OBJECTS]
    _read_attributes(h5)
    stack = [h5]
    while stack:
        group = stack.pop()
        for name in list(group.keys()):
            budget[1] -= 1
            if budget[1] < 0:
                raise ProbeFailure(f"it holds more than {MAX_OBJECTS} HDF5 objects; a model holds a few thousand")
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                continue  # soft and external links: model_safety refuses the external ones, soft ones point inside
            item = group[name]
            _read_attributes(item)
            if isinstance(item, h5py.Group):
                stack.append(item)
            elif isinstance(item, h5py.Dataset) and not _reads_other_files(item):
                _read_data(item, budget)


def _read_attributes(item) -> None:
    import h5py

    for name in list(item.attrs.keys()):
        if _storage_size(h5py.h5a.open(item.id, name.encode("utf-8", errors="surrogateescape"))) > MAX_ATTRIBUTE_BYTES:
            raise ProbeFailure(f"its attribute '{name[:80]}' is larger than {MAX_ATTRIBUTE_BYTES // 1024**2} MB")
        if _value_bytes(item.attrs[name]) > MAX_ATTRIBUTE_BYTES:  # reading is the test; its size, the cap
            raise ProbeFailure(f"its attribute '{name[:80]}' is larger than {MAX_ATTRIBUTE_BYTES // 1024**2} MB")


def _value_bytes(value) -> int:
    """An attribute's size as read: a variable-length string's storage size is its 16-byte reference only (a
    600 MB 'keras_version' passed the storage check, then took 3.3 GB in the loader)."""
    import numpy as np

    if isinstance(value, (bytes, str)):
        return len(value)
    array = np.asarray(value)
    if array.dtype == object:
        return sum(len(element) if isinstance(element, (bytes, str)) else 8 for element in array.flat)
    return int(array.nbytes)


def _storage_size(attribute) -> int:
    try:
        return attribute.get_storage_size()
    except RuntimeError:  # HDF5 reports an empty attribute's size 0 as an error
        return 0


def _reads_other_files(dataset) -> bool:
    """External storage or a virtual dataset: its data lives in other files (a FIFO would block the read, the
    hidden ground truth must not be read at all); model_safety refuses such a file, so it is not read here."""
    import h5py

    plist = dataset.id.get_create_plist()
    return plist.get_external_count() > 0 or plist.get_layout() == h5py.h5d.VIRTUAL


def _read_data(dataset, budget: list[int]) -> None:
    """Every value of the dataset, read in pieces of at most READ_BYTES (a 1.4 KB file can declare a 3 GB
    contiguous row), chunk by chunk where it is chunked (never more than MAX_CHUNKS of them)."""
    size = dataset.size * dataset.dtype.itemsize if dataset.dtype.itemsize else 0
    budget[0] -= size
    if budget[0] < 0:
        raise ProbeFailure(f"its datasets hold more than {MAX_DATA_BYTES // 1024**3} GB of data")
    if dataset.shape is None or dataset.size == 0:
        return
    if dataset.chunks is not None:
        _check_chunks(dataset)
    for selection in _pieces(dataset.shape, dataset.chunks, max(1, READ_BYTES // max(1, dataset.dtype.itemsize))):
        _ = dataset[selection]


def _check_chunks(dataset) -> None:
    chunk_bytes = math.prod(dataset.chunks) * dataset.dtype.itemsize
    if chunk_bytes > READ_BYTES:
        raise ProbeFailure(f"its dataset '{dataset.name[:80]}' has chunks of {chunk_bytes} bytes; Keras writes none")
    chunks = math.prod(-(-side // chunk) for side, chunk in zip(dataset.shape, dataset.chunks, strict=True))
    if chunks > MAX_CHUNKS:
        raise ProbeFailure(f"its dataset '{dataset.name[:80]}' is cut into {chunks} chunks; Keras writes none")


def _pieces(shape: tuple[int, ...], chunks: tuple[int, ...] | None, limit: int) -> Iterator[tuple]:
    """Selections covering ``shape`` in row-major order, each of at most ``limit`` values: whole chunks where
    chunked; else whole trailing axes, the first axis that does not fit cut into steps."""
    if not shape:
        yield ()
        return
    if chunks is not None:
        ranges = [range(0, side, chunk) for side, chunk in zip(shape, chunks, strict=True)]
        for starts in itertools.product(*ranges):
            yield tuple(slice(start, start + chunk) for start, chunk in zip(starts, chunks, strict=True))
        return
    inner = 1
    axis = len(shape)
    while axis > 0 and inner * shape[axis - 1] <= limit:
        axis -= 1
        inner *= shape[axis]
    if axis == 0:
        yield tuple(slice(None) for _ in shape)
        return
    step = max(1, limit // inner)
    for outer in itertools.product(*(range(side) for side in shape[: axis - 1])):
        for start in range(0, shape[axis - 1], step):
            yield (*outer, slice(start, start + step))
