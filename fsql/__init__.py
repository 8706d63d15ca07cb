"""fsql: a SQL-first feature store.

>>> import fsql
>>> store = fsql.connect("path/to/store")          # doctest: +SKIP
>>> store.sql("SELECT FEATURES amount_sum_7d, age")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsql.errors import FsqlError

if TYPE_CHECKING:
    from fsql.api import Store

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The store pulls in SQLAlchemy, sqlglot and pyarrow; load it on first use
    # so that `import fsql.cli` (and `fsql --help`) stays fast.
    if name == "Store":
        from fsql.api import Store

        return Store
    raise AttributeError(f"module 'fsql' has no attribute {name!r}")


def connect(
    path: str | Path,
    *,
    offline: str | None = None,
    catalog: str | None = None,
    online: str | None = None,
) -> Store:
    """Open (or create) a store.

    ``path`` is the store folder. By default the offline store is embedded
    chDB and the catalog SQLite, both inside the folder. ``offline`` takes a
    ``clickhouse://host:port/database`` URL and ``catalog`` a SQLAlchemy URL
    (``postgresql+psycopg://...``) for server mode; the choice is remembered
    in the folder's ``fsql.json``. ``online`` picks the online store:
    ``embedded`` (default, in the folder), or a ``postgresql://``,
    ``mysql://`` (MariaDB) or ``redis://`` URL (``?prefix=`` sets the
    table/key prefix).
    """
    from fsql.api import Store

    return Store(path, offline=offline, catalog=catalog, online=online)


__all__ = ["FsqlError", "Store", "__version__", "connect"]
