"""The embedded store folder belongs to one process at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from fsql.errors import StoreInUse

LOCK_FILE = "fsql.store.lock"

# lock files this process holds, with the pid that took them (a forked child
# inherits the table but not the ownership)
_HELD: dict[Path, int] = {}


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
            raise self._in_use(holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        _HELD[self._key()] = os.getpid()

    def _key(self) -> Path:
        return self.path.resolve()

    def _in_use(self, holder: str) -> StoreInUse:
        folder = self.path.parent
        if _HELD.get(self._key()) == os.getpid() or holder == str(os.getpid()):
            return StoreInUse(
                f"the store at {folder} is already open in this process",
                hint="Use the Store that fsql.connect() returned for this folder, "
                "or close it (store.close(), or a `with fsql.connect(...)` block) "
                "before connecting again.",
            )
        return StoreInUse(
            f"the store at {folder} is in use by process {holder}",
            hint="One process owns an embedded store. Connect to the process that has "
            "it open instead: run `fsql --store PATH serve` there and connect with psql "
            "or fsql.connect('postgresql://...'), or stop that process first.",
        )

    def release(self) -> None:
        if self._fd is not None:
            if _HELD.get(self._key()) == os.getpid():
                del _HELD[self._key()]
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
