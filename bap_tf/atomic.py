"""Files written whole or not at all: a reader sees the old file or the complete new one.

Writers get a temporary path in the destination's own directory (so ``os.replace`` is a rename
on one file system, atomic on POSIX and Windows); the rename happens only once the writer has
finished and every check has passed. An exception, or a killed child process that was writing
the temporary file, leaves the destination untouched and the temporary file removed. A process
killed outright can leave a ``.*.tmp*`` file behind, but never a destination file that is
half-written; its name holds the writer's process id, so that ``remove_stale_temporaries``
(run when a command starts on a workdir) can tell it from the temporary of a live writer.
"""

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

# .<stem>.<writer's pid>-<mkstemp's random letters>.tmp<suffix>
_TEMPORARY = re.compile(r"\..*\.(\d+)-[^.]+\.tmp")


@contextlib.contextmanager
def atomic_path(destination):
    """Yields a temporary ``Path`` beside ``destination``; renames it there on clean exit.

    The temporary file exists (empty) when the body starts, so a child process can be told to
    write to it, and keeps the destination's suffix, because Keras picks the format from it
    (``.keras``, ``.weights.h5``). On an exception it is deleted and ``destination`` is left as
    it was. The result gets the permissions a plain ``open()`` would give it.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(destination.suffixes)
    stem = destination.name[: len(destination.name) - len(suffix)]
    handle, temporary = tempfile.mkstemp(prefix=f".{stem}.{os.getpid()}-", suffix=f".tmp{suffix}",
                                         dir=destination.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes the file private to its owner
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(root):
    """Removes the temporaries under ``root`` whose writer is gone (killed outright: an
    exception or a killed child cleans up after itself); a live process's stay."""
    for path in Path(root).rglob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _alive(int(match[1])):
            path.unlink(missing_ok=True)


def _alive(pid):
    if os.name != "posix":
        return True  # os.kill(pid, 0) would signal the process on Windows: keep its files
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def write_text(path, text):
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_json(path, data):
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path):
    """What ``write_json`` wrote at ``path``."""
    with open(path) as f:
        return json.load(f)


def _json_default(value):
    # numpy scalars and arrays, Paths and tuples end up in results; store them as plain JSON.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current
