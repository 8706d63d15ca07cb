"""Cleaning up after killed training-dataset builds.

A local build writes its files into a hidden temporary folder,
``<location>/<name>/.v<N>.tmp-<id>``, and renames it into place at the end
(:func:`fsql.training.dataset._publish`); a build killed before the rename
leaves that folder behind. So every local build first writes a *claim* in
the store folder, ``training_datasets/.builds/<id>.claim``, naming its
temporary folder, and holds an ``flock`` on the claim until it is done (the
kernel drops the lock of a process that dies, whatever kills it).

When a store opens (the store's ``on_open`` hook), :func:`recover` removes
the temporary folder of every claim whose lock it can take (that build is
no longer running) and the claim itself, then every temporary folder under
the store's default location that no running build claims (folders left
before claims existed). A claim still locked belongs to a running build,
in this process or another one sharing the folder: its folder is left
alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fsql.store import hooks

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

DEFAULT_FOLDER = "training_datasets"  # fsql.training.dataset.DEFAULT_FOLDER
CLAIMS = ".builds"
TEMP_FOLDER = re.compile(r"^\.v\d+\.tmp-[0-9a-f]+$")


def temp_folder_name(version: int) -> str:
    """The name of a build's temporary folder (beside ``v<version>``)."""
    return f".v{version}.tmp-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def claim(store_path: Path, folder: str) -> Iterator[None]:
    """Claim the temporary ``folder`` (an absolute local path) for a build
    while the block runs. Best effort: a store folder that cannot take the
    claim does not stop the build (the folder is then only cleaned up when
    it lies under the store's default location)."""
    claims = store_path / DEFAULT_FOLDER / CLAIMS
    path = claims / f"{uuid.uuid4().hex}.claim"
    fd: int | None = None
    try:
        claims.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"folder": folder, "pid": os.getpid()}).encode())
    except OSError:
        if fd is not None:
            os.close(fd)
            _unlink(path)
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            _unlink(path)  # first, so no one takes the lock of a finished build
            os.close(fd)


def recover(store_path: Path) -> list[str]:
    """Remove the temporary folders of builds that are no longer running;
    returns the folders removed."""
    base = store_path / DEFAULT_FOLDER
    if not base.is_dir():
        return []
    # folders first, claims second: a folder that exists now was claimed
    # before it was created, so its claim is seen below
    candidates = [
        p
        for named in _dirs(base)
        if named.name != CLAIMS
        for p in _dirs(named)
        if TEMP_FOLDER.match(p.name)
    ]
    running: set[str] = set()
    removed: list[str] = []
    claims = base / CLAIMS
    for path in sorted(claims.glob("*.claim")) if claims.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue  # finished meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                folder = _claimed_folder(fd)
                if folder is not None:
                    running.add(os.path.normpath(folder))
                continue
            folder = _claimed_folder(fd)
            if folder is not None and _is_temp_folder(folder) and _remove(folder):
                removed.append(folder)
            _unlink(path)
        finally:
            os.close(fd)
    for left in candidates:
        if os.path.normpath(left) not in running and _remove(left):
            removed.append(str(left))
    return removed


@hooks.on_open.subscribe
def _on_open(store: StoreCore) -> None:
    recover(store.path)


def _dirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def _claimed_folder(fd: int) -> str | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        folder = json.loads(os.read(fd, 65536).decode()).get("folder")
    except (OSError, ValueError, AttributeError):
        return None
    return folder if isinstance(folder, str) else None


def _is_temp_folder(folder: str) -> bool:
    """Only ever remove what a build creates: ``.v<N>.tmp-<id>`` folders."""
    return bool(TEMP_FOLDER.match(os.path.basename(os.path.normpath(folder))))


def _remove(folder: str | Path) -> bool:
    """Remove a temporary folder, then its dataset folder if that is left
    empty; False when it was not there (or could not be removed)."""
    path = Path(folder)
    if not path.is_dir() or path.is_symlink():
        return False
    try:
        shutil.rmtree(path)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when empty
    return True


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
