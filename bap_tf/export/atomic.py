"""Atomic output files: a reader sees the old file or the complete new one, never a part.

Writers get a temporary path in the destination's own directory (so ``os.replace`` is a rename
on one file system, atomic on POSIX and Windows) and the rename happens only once the writer
has finished and every check has passed. Any exception, or a killed child process that was
writing the temporary file, leaves the destination untouched and the temporary file removed.
"""

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_output(destination):
    """Yields a temporary ``Path`` beside ``destination``; renames it there on clean exit.

    The temporary file exists (empty) when the body starts, so a child process can be told to
    write to it. On an exception it is deleted and ``destination`` is left as it was.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        # mkstemp creates the file 0600; give the result the permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current
