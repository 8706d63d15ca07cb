"""The embedded store folder belongs to one process at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from fsql.errors import StoreInUse

LOCK_FILE = "fsql.lock"


class StoreLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreInUse(
                f"the store at {self.path.parent} is in use by process {holder}",
                hint="One process owns an embedded store. Connect to the process that has "
                "it open instead: run `fsql --store PATH serve` there and connect with psql "
                "or fsql.connect('postgresql://...'), or stop that process first.",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
