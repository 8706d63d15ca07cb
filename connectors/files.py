"""Parquet and CSV files on disk or in S3-compatible object storage.

A table name in the query is a file under the connector's ``path`` (or
``url``): ``FROM customers`` reads ``<path>/customers.parquet`` (or ``.csv``
with ``format 'csv'``), and a quoted name with an extension or a glob reads
that file or those files (``FROM "2024-*.parquet"``). The engine reads them
with ClickHouse's ``file()`` / ``s3()`` table functions. Names may not leave
the folder.

Options: ``path`` (a local folder) or ``url`` (``s3://bucket/prefix``, with
``endpoint 'http://host:port'`` for S3-compatible servers,
``access_key_id`` and ``password_env`` / ``password_file`` for the secret
access key), ``format`` (``parquet``, ``csv`` or ``auto``: by extension, the
default).
"""

from __future__ import annotations

import glob
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.registry import SourceColumn, SourceConnector, source_objects
from fsql.errors import FsqlError, InvalidParameter
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
    optional_options = ("path", "format", "url", "endpoint", "access_key_id")
    defaults = {"format": "auto"}

    def __init__(self, name: str, options, *, connector_id: int = 0) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, options, connector_id=connector_id)
        fmt = self.options["format"].lower()
        if fmt not in (*FORMATS, "auto"):
            raise InvalidParameter(
                f'connector "{name}": format {fmt!r} is not supported',
                hint="Use 'parquet', 'csv' or 'auto'.",
            )
        self.options["format"] = fmt
        if bool(self.options.get("path")) == bool(self.options.get("url")):
            raise InvalidParameter(
                f'connector "{name}" (type files) needs either path or url',
                hint="path '/data/features' for local files, url 's3://bucket/prefix' "
                "for object storage.",
            )
        self.url = self.options.get("url")
        if self.url:
            u = urlsplit(self.url)
            if u.scheme not in ("s3", "http", "https") or not u.netloc:
                raise InvalidParameter(
                    f'connector "{name}": url {self.url!r} is not an s3:// or http(s):// URL'
                )
            self.root = Path("/")
        else:
            self.root = Path(self.options["path"]).expanduser().resolve()
            self.options["path"] = str(self.root)  # stored absolute: cwd may differ later

    @property
    def where(self) -> str:
        return f"files {self.url or self.root}"

    def object_url(self, name: str) -> tuple[str, str]:
        """The HTTP(S) URL the engine reads for ``name`` in object storage,
        and the bucket-relative path."""
        assert self.url
        u = urlsplit(self.url)
        prefix = u.path.strip("/")
        key = posixpath.normpath(posixpath.join(prefix, name))
        if key.startswith("..") or (prefix and not (key + "/").startswith(prefix + "/")):
            raise InvalidParameter(
                f"{self.label(name)}: the file is outside the connector's folder",
                sqlstate="42501",
            )
        if u.scheme == "s3":
            bucket = u.netloc
            endpoint = self.options.get("endpoint")
            if endpoint:
                return f"{endpoint.rstrip('/')}/{bucket}/{key}", f"{bucket}/{key}"
            return f"https://{bucket}.s3.amazonaws.com/{key}", f"{bucket}/{key}"
        return f"{u.scheme}://{u.netloc}/{key}", key

    def check(self, engine: Engine | None = None) -> None:
        if self.url:
            return  # object storage is reached when a query is described
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

    def _name_and_format(self, table: exp.Table) -> tuple[str, str]:
        name = ".".join(p.name for p in table.parts)
        suffix = Path(name).suffix.lower()
        fmt = self.options["format"]
        if suffix in EXTENSIONS:
            return name, EXTENSIONS[suffix] if fmt == "auto" else fmt
        fmt = "parquet" if fmt == "auto" else fmt
        return f"{name}.{fmt}", fmt

    def table_function(self, table: exp.Table, secret: exp.Expression) -> exp.Expression:
        lit = exp.Literal.string
        if self.url:
            name, fmt = self._name_and_format(table)
            url, _ = self.object_url(name)
            args: list[exp.Expression] = [lit(url)]
            if self.options.get("access_key_id"):
                args += [lit(self.options["access_key_id"]), secret]
            return exp.Anonymous(this="s3", expressions=[*args, lit(FORMATS[fmt])])
        path, fmt = self._existing(table)
        return exp.Anonymous(this="file", expressions=[lit(str(path)), lit(FORMATS[fmt])])

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        if engine is None:
            raise InvalidParameter("describing a files query needs the engine")
        bound = query.copy()
        secret = self.engine_secret(engine) if self.url else exp.Literal.string("")
        for t in list(bound.find_all(exp.Table)):
            if t.name:
                alias = t.alias or t.name
                fn = self.table_function(t, secret)
                t.replace(
                    exp.Table(
                        this=fn, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
                    )
                )
        probe = exp.Describe(this=bound.subquery())
        try:
            described = engine.query(probe.sql("clickhouse"))
        except FsqlError as e:  # the engine's message, named by connector and file
            raise self.translate(e, query) from None
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
            try:
                if self.url:
                    name, fmt = self._name_and_format(t)
                    if fmt != "parquet" or any(ch in name for ch in "*?{"):
                        continue
                    schema = pq.read_schema(self.object_url(name)[1], filesystem=self._s3fs())
                else:
                    path, fmt = self.resolve(t)
                    matches = sorted(glob.glob(str(path)))
                    if fmt != "parquet" or not matches:
                        continue
                    schema = pq.read_schema(matches[0])
            except Exception:
                continue
            for f in schema:
                if pa.types.is_timestamp(f.type) and f.type.tz is None:
                    names.add(f.name)
        return names

    def _s3fs(self):  # type: ignore[no-untyped-def]
        from pyarrow import fs

        endpoint = self.options.get("endpoint")
        kwargs = {}
        if endpoint:
            e = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
            kwargs = {"endpoint_override": e.netloc, "scheme": e.scheme or "http"}
        if self.options.get("access_key_id"):
            kwargs["access_key"] = self.options["access_key_id"]
            kwargs["secret_key"] = self.password()
        return fs.S3FileSystem(region="us-east-1", **kwargs)

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        raise InvalidParameter("files are read by the engine, not fetched")

    def translate(self, e: Exception, query: exp.Query | None) -> FsqlError:
        text = str(e)
        if "HTTP response code: 404" in text or "NoSuchKey" in text:
            objects = ", ".join(source_objects(query)) if query is not None else ""
            return UndefinedFile(
                f"{self.label(objects or None)}: the object does not exist",
                hint="Check the name and the connector's url.",
            )
        err = super().translate(e, query)
        if "CANNOT_EXTRACT_TABLE_STRUCTURE" in str(e) or "CANNOT_PARSE" in str(e):
            err.sqlstate = "22P02"
        return err


__all__ = ["FilesConnector", "UndefinedFile"]
