"""Parquet and CSV files on disk.

A table name in the query is a file under the connector's ``path``:
``FROM customers`` reads ``<path>/customers.parquet`` (or ``.csv`` with
``format 'csv'``), and a quoted name with an extension or a glob reads that
file or those files (``FROM "2024-*.parquet"``). The engine reads them with
ClickHouse's ``file()`` table function. Names may not leave ``path``.

Options: ``path`` (a folder, required), ``format`` (``parquet``, ``csv`` or
``auto``: by extension, the default).
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.registry import SourceColumn, SourceConnector
from fsql.errors import FsqlError, InvalidParameter, UndefinedObject
from fsql.types import from_clickhouse, from_name

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine

FORMATS = {"parquet": "Parquet", "csv": "CSVWithNames"}
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class UndefinedFile(FsqlError):
    sqlstate = "58P01"


class FilesConnector(SourceConnector):
    type_name = "files"
    dialect = "clickhouse"
    pushdown = True
    required_options = ("path",)
    optional_options = ("format",)
    defaults = {"format": "auto"}
    secret_options = ()

    def __init__(self, name: str, options, *, connector_id: int = 0) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, options, connector_id=connector_id)
        fmt = self.options["format"].lower()
        if fmt not in (*FORMATS, "auto"):
            raise InvalidParameter(
                f'connector "{name}": format {fmt!r} is not supported',
                hint="Use 'parquet', 'csv' or 'auto'.",
            )
        self.options["format"] = fmt
        self.root = Path(self.options["path"]).expanduser().resolve()
        self.options["path"] = str(self.root)  # stored absolute: cwd may differ later

    @property
    def where(self) -> str:
        return f"files {self.root}"

    def check(self, engine: Engine | None = None) -> None:
        if not self.root.is_dir():
            raise UndefinedFile(
                f"{self.label()}: folder {str(self.root)!r} does not exist",
                hint="Create it, or point the path option at an existing folder.",
            )

    def resolve(self, table: exp.Table) -> tuple[Path, str]:
        """The file (or glob) a table name means, and its format."""
        name = ".".join(p.name for p in table.parts)
        suffix = Path(name).suffix.lower()
        fmt = self.options["format"]
        if suffix in EXTENSIONS:
            fmt = EXTENSIONS[suffix] if fmt == "auto" else fmt
        else:
            if fmt == "auto":
                fmt = "parquet"
            name = f"{name}.{fmt}"
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidParameter(
                f"{self.label(name)}: the file is outside the connector's folder",
                sqlstate="42501",
            )
        return path, fmt

    def _existing(self, table: exp.Table) -> tuple[Path, str]:
        path, fmt = self.resolve(table)
        if not glob.glob(str(path)):
            raise UndefinedFile(
                f"{self.label(path.name)}: file {str(path)!r} does not exist",
                hint="Check the name; a table name without an extension means "
                f"<name>.{fmt if self.options['format'] != 'auto' else 'parquet'}.",
            )
        return path, fmt

    def table_function(self, table: exp.Table, secret: exp.Expression) -> exp.Expression:
        path, fmt = self._existing(table)
        return exp.Anonymous(
            this="file",
            expressions=[exp.Literal.string(str(path)), exp.Literal.string(FORMATS[fmt])],
        )

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        if engine is None:
            raise InvalidParameter("describing a files query needs the engine")
        bound = query.copy()
        for t in list(bound.find_all(exp.Table)):
            if t.name:
                alias = t.alias or t.name
                fn = self.table_function(t, exp.Literal.string(""))
                t.replace(
                    exp.Table(
                        this=fn, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
                    )
                )
        probe = exp.Describe(this=bound.subquery())
        with self.errors(query):
            described = engine.query(probe.sql("clickhouse"))
        naive = self._naive_parquet_timestamps(query)
        out = []
        for name, ch in zip(
            described.column("name").to_pylist(), described.column("type").to_pylist(), strict=True
        ):
            ftype = from_clickhouse(ch)
            if ftype.name == "timestamptz" and name in naive:
                # ClickHouse reads every Parquet timestamp as UTC; the file says naive
                ftype = from_name("timestamp")
            out.append(SourceColumn(name, ftype, ch))
        return out

    def _naive_parquet_timestamps(self, query: exp.Query) -> set[str]:
        """Columns of the query's Parquet files that are naive timestamps."""
        import pyarrow.parquet as pq

        names: set[str] = set()
        for t in query.find_all(exp.Table):
            if not t.name:
                continue
            path, fmt = self.resolve(t)
            matches = sorted(glob.glob(str(path)))
            if fmt != "parquet" or not matches:
                continue
            try:
                schema = pq.read_schema(matches[0])
            except Exception:
                continue
            for f in schema:
                if pa.types.is_timestamp(f.type) and f.type.tz is None:
                    names.add(f.name)
        return names

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        raise InvalidParameter("files are read by the engine, not fetched")

    def translate(self, e: Exception, query: exp.Query | None) -> FsqlError:
        err = super().translate(e, query)
        if "CANNOT_EXTRACT_TABLE_STRUCTURE" in str(e) or "CANNOT_PARSE" in str(e):
            err.sqlstate = "22P02"
        return err


__all__ = ["FilesConnector", "UndefinedObject"]
