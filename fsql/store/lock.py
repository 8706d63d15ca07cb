"""The embedded store folder belongs to one process at a time.

``fsql.store.lock`` in the folder is held with ``flock`` while a store is
open. A lock file deleted while its store is open no longer keeps anyone
out (a second open creates a new file and locks that), so an open also
checks the embedded engine's own lock: chDB keeps ``offline/status``
locked, with its process id inside, while it has the folder open. Either
way the second open is refused with 55006 and says what happened.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from fsql.errors import StoreInUse

LOCK_FILE = "fsql.store.lock"
# the embedded engine's data folder inside the store folder
ENGINE_FOLDER = "offline"

# lock files this process holds, with the pid that took them (a forked child
# inherits the table but not the ownership)
_HELD: dict[Path, int] = {}


class StoreLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        folder = self.path.parent
        if _HELD.get(self._key()) == os.getpid():
            # this process has it open (even if the lock file was deleted since)
            if not self.path.exists():
                raise _lock_file_deleted(folder, str(os.getpid()))
            raise self._in_use(str(os.getpid()))
        for _attempt in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise self._in_use(holder) from None
            if _same_file(fd, self.path):
                break
            # deleted (or replaced) between open and flock: lock the file now there
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:
            raise StoreInUse(
                f"could not lock the store at {folder}: its lock file {LOCK_FILE} keeps "
                "being removed or replaced",
                hint="Something else is deleting files in the store folder; stop it and "
                "connect again.",
            )
        engine_holder = _engine_holder(folder / ENGINE_FOLDER)
        if engine_holder is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise _lock_file_deleted(folder, engine_holder)
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


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not deleted or replaced)."""
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _engine_holder(path: Path) -> str | None:
    """The process id (text) that has chDB open on its data folder ``path``,
    or None: chDB keeps ``<path>/status`` locked while open, with ``PID:
    <pid>`` inside, and removes it on close. (The same probe as
    ``fsql.connectors.chdb_engine.folder_holder``; this module stays free
    of engine imports, it is imported before anything else opens.)"""
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            found = re.search(r"PID:\s*(\d+)", os.read(fd, 256).decode(errors="replace"))
            return found.group(1) if found else "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _lock_file_deleted(folder: Path, holder: str) -> StoreInUse:
    if holder == str(os.getpid()):
        return StoreInUse(
            f"the store at {folder} is already open in this process, but its lock file "
            f"{LOCK_FILE} was deleted while it was open",
            hint="Use the Store that is open, or close it (store.close()) before connecting "
            f"again; the lock file is created again on the next open. Do not delete "
            f"{LOCK_FILE} while a store is open: it is what keeps a second process out.",
        )
    return StoreInUse(
        f"the store at {folder} is in use by process {holder}, but its lock file "
        f"{LOCK_FILE} was deleted while that process had the store open",
        hint=f"Stop process {holder} (or close its store) and connect again; the lock file "
        f"is created again on the next open. Do not delete {LOCK_FILE} while a store is "
        "open: it is what keeps a second process out.",
    )
