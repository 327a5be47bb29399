"""Keeping a submission's files out of the programs' imports, whatever the environment says.

CodaLab v1.5 starts the ingestion with the submission folder on ``PYTHONPATH``
(competitions-v1-compute-worker ``worker.py``: ``-e PYTHONPATH=$PYTHONPATH:<run>/program``), and
``PYTHONPATH`` entries come before the standard library: a ``yaml.py`` or ``numpy.py`` in a submission
would be imported by the ingestion itself, with the reference data mounted. The platform commands start
Python with ``-I`` (isolated: no ``PYTHONPATH``, no user site, no script folder). The entry points call
``isolate_imports`` first as well, for runs started without it: it drops every ``PYTHONPATH`` entry and
the working folder ('' for ``-c``) from ``sys.path``, clears ``PYTHONPATH`` for child processes, and stops (exit 2) if
Python already imported something from there at start-up (a ``sitecustomize.py``), since that code has
run and only ``-I`` prevents it.

Only ``os`` and ``sys`` are used here: they are loaded before any script starts.
"""

import os
import sys

_CHILD_ENVIRONMENT = ("PYTHONPATH", "PYTHONSTARTUP")


def isolate_imports(own_root: str, program: str) -> None:
    """Restrict imports to the interpreter's own paths and ``own_root`` (the bundle's package folder)."""
    trusted = [_resolved(own_root), *{_resolved(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}]
    untrusted = {path for path in map(_resolved, _pythonpath()) if not any(_within(path, t) for t in trusted)}
    sys.path[:] = [entry for entry in sys.path if entry not in ("", os.curdir) and _resolved(entry) not in untrusted]
    for name in _CHILD_ENVIRONMENT:
        os.environ.pop(name, None)
    imported = _imported_from(untrusted)
    if imported:
        name, where = imported
        sys.stderr.write(
            f"{program}: error: Python imported '{name}' from {where} (on PYTHONPATH) before this "
            f"program started, so files of the submission may have run. Start it as the bundle's metadata does: "
            f"python3 -I {program} ...\n"
        )
        sys.stderr.flush()
        os._exit(2)


def _pythonpath() -> list[str]:
    return [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _resolved(entry: str) -> str:
    try:
        return os.path.realpath(os.path.join(os.getcwd(), entry))
    except OSError:  # the working folder was removed
        return entry


def _imported_from(folders: set[str]) -> tuple[str, str] | None:
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        resolved = _resolved(path)
        for folder in folders:
            if _within(resolved, folder):
                return name, folder
    return None
