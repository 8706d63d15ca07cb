"""Which local files and folders a store may read and write.

Embedded in Python, the process owner reads and writes its own files: no
limit (``None``). A server is a shared deployment: it reads files
(``read_parquet`` / ``read_csv`` spines, ``files`` connectors) only under
the folders it was started with (``fsql serve --allow-read DIR``, like
PostgreSQL's ``pg_read_server_files``; none by default) and writes training
datasets only under the store folder and ``--allow-write DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from fsql.errors import FsqlError


def _inside(path: str, roots: Sequence[str | Path]) -> bool:
    real = os.path.realpath(path)
    for root in roots:
        base = os.path.realpath(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return True
    return False


def check_readable(roots: Sequence[str | Path] | None, path: str) -> str:
    """The absolute ``path``, if a store limited to ``roots`` (None: no
    limit) may read it; else 42501 (before anything says whether it exists)."""
    full = os.path.abspath(os.path.expanduser(path))
    if roots is not None and not _inside(full, roots):
        raise FsqlError(
            f'permission denied to read file "{path}"',
            sqlstate="42501",
            hint="The server reads files only under the folders it was started with "
            "(fsql serve --allow-read DIR).",
        )
    return full


def check_writable(roots: Sequence[str | Path] | None, path: str) -> str:
    """The absolute ``path``, if a store limited to ``roots`` may write there."""
    full = os.path.abspath(os.path.expanduser(path))
    if roots is not None and not _inside(full, roots):
        raise FsqlError(
            f'permission denied to write "{path}"',
            sqlstate="42501",
            hint="The server writes training datasets only under the store folder and the "
            "folders it was started with (fsql serve --allow-write DIR).",
        )
    return full


def check_endpoint(endpoints: Sequence[str] | None, url: str, what: str) -> None:
    """A remote ``url`` (an object-store endpoint, a files connector's URL)
    is reached only when its host is one of ``endpoints`` (None: any)."""
    if endpoints is None:
        return
    parts = urlsplit(url if "://" in url else f"//{url}")
    host = parts.hostname or ""
    allowed = {e.lower() for e in endpoints}
    if host.lower() not in allowed and (parts.netloc or "").lower() not in allowed:
        raise FsqlError(
            f'permission denied to reach "{host}" ({what})',
            sqlstate="42501",
            hint="The server reaches only the endpoints it was started with "
            "(fsql serve --allow-endpoint HOST[:PORT]).",
        )
