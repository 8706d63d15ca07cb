"""The server engine: a ClickHouse server (or cluster) over clickhouse-connect.

It runs the same ClickHouse SQL as the embedded chDB engine; only the
transport differs. Arrow inputs that a query addresses as
``Python(fsql_input_N)`` (see :func:`fsql.connectors.engine.input_ref`) live
in the client process, so they are uploaded into temporary tables of this
client's session first and the query is rewritten (as a sqlglot tree) to read
those tables; the tables are dropped afterwards. ``INSERT INTO t (cols)
SELECT * FROM Python(fsql_input_0)`` skips the detour and is sent as one
Arrow insert.

URLs: ``clickhouse://user:password@host:8123/database`` (HTTP),
``clickhouses://...`` or ``https://...`` (TLS, port 8443 by default),
``http://host:8123``. The password may also come from the environment
variable named by ``?password_env=NAME``; other query parameters are passed
as ClickHouse settings.

Naive ``DateTime64`` values mean UTC, as in the embedded engine: every
request sets ``session_timezone`` to UTC (ClickHouse 23.6 or later) and
results come back as naive Arrow timestamps.

Not yet run against a real server (none could be installed where it was
written); see docs/STORE.md.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa
import sqlglot
from sqlglot import exp

from fsql.connectors.chdb_engine import NAIVE_TZ, _naive_schema, naive_timestamps
from fsql.connectors.engine import (
    CANCELED,
    BeforeRun,
    CancelScope,
    QueryCanceled,
    TranslateError,
    before_run,
    current_scope,
    engine_error,
)
from fsql.errors import ConnectionFailure, EngineError, InvalidParameter
from fsql.types import clickhouse_type, from_arrow

_INPUT = re.compile(r"^fsql_input_(\d+)$")
_UNSIGNED = {8: "UInt8", 16: "UInt16", 32: "UInt32", 64: "UInt64"}
PARSE_DIALECT = "clickhouse"


def parse_url(url: str) -> dict[str, Any]:
    """clickhouse-connect ``get_client`` arguments from an fsql offline URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("clickhouse", "clickhouses", "http", "https"):
        raise InvalidParameter(
            f"unsupported ClickHouse URL scheme {parts.scheme!r}",
            hint="Use clickhouse://user:password@host:8123/database (or clickhouses://, https://).",
        )
    secure = scheme in ("clickhouses", "https")
    query = dict(parse_qsl(parts.query))
    password = unquote(parts.password or "")
    env = query.pop("password_env", None)
    if env:
        if env not in os.environ:
            raise InvalidParameter(
                f"environment variable {env!r} (password_env) is not set", sqlstate="28P01"
            )
        password = os.environ[env]
    database = parts.path.strip("/") or "default"
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or (8443 if secure else 8123),
        "username": unquote(parts.username or "default"),
        "password": password,
        "database": database,
        "secure": secure,
        "settings": query,
    }


def arrow_to_clickhouse(dtype: pa.DataType) -> exp.DataType:
    """The column type of a temporary table holding an Arrow column."""
    if pa.types.is_unsigned_integer(dtype):
        return exp.DataType.build(f"Nullable({_UNSIGNED[dtype.bit_width]})", dialect="clickhouse")
    return clickhouse_type(from_arrow(dtype), nullable=True)


def _input_index(node: exp.Anonymous) -> int | None:
    if str(node.this).lower() != "python" or len(node.expressions) != 1:
        return None
    arg = node.expressions[0]
    if not isinstance(arg, exp.Column | exp.Identifier):
        return None
    m = _INPUT.match(arg.name)
    return int(m.group(1)) if m else None


def _parse(sql: str) -> exp.Expression:
    try:
        return cast(exp.Expression, sqlglot.parse_one(sql, read=PARSE_DIALECT))
    except sqlglot.errors.ParseError as e:
        raise EngineError(f"cannot rewrite Arrow inputs of the query: {e}", detail=sql[:2000])


def rewrite_inputs(sql: str, names: Sequence[str]) -> exp.Expression:
    """Parse ``sql`` and point every ``Python(fsql_input_N)`` at ``names[N]``."""
    tree = _parse(sql)
    for node in list(tree.find_all(exp.Anonymous)):
        index = _input_index(node)
        if index is None:
            continue
        if index >= len(names):
            raise EngineError(
                f"the query reads fsql_input_{index} but only {len(names)} inputs were given"
            )
        table = exp.Table(this=exp.to_identifier(names[index], quoted=True))
        parent = node.parent
        if isinstance(parent, exp.Table):
            parent.set("this", table.this)
        else:
            node.replace(table)
    return tree


def _direct_insert(tree: exp.Expression, n_inputs: int) -> tuple[exp.Table, list[str]] | None:
    """``(target, columns)`` when ``tree`` is ``INSERT INTO t [(cols)] SELECT *
    FROM Python(fsql_input_0)`` and nothing else."""
    if n_inputs != 1 or not isinstance(tree, exp.Insert):
        return None
    select = tree.expression
    if not isinstance(select, exp.Select) or len(select.expressions) != 1:
        return None
    if not isinstance(select.expressions[0], exp.Star):
        return None
    if any(select.args.get(k) for k in ("joins", "where", "group", "having", "order", "limit")):
        return None
    source = select.args.get("from_") or select.args.get("from")
    if source is None:
        return None
    node = source.this
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous):
        node = node.this
    if not isinstance(node, exp.Anonymous) or _input_index(node) != 0:
        return None
    target = tree.this
    columns: list[str] = []
    if isinstance(target, exp.Schema):
        columns = [c.name for c in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table):
        return None
    return target, columns


class ClickHouseEngine:
    """A ClickHouse server, reached over HTTP(S) with clickhouse-connect.

    One client session per engine; temporary tables live in it, so requests
    are serialized with a lock (a ClickHouse session runs one query at a time).

    A query or command run inside a :class:`fsql.connectors.engine.CancelScope`
    is sent with its own ``query_id``; the scope's cancel runs ``KILL QUERY``
    for it from a second, sessionless client (not yet run against a real
    server, like the rest of this engine).
    """

    name = "clickhouse"
    # hooks (see fsql.connectors.engine): set by fsql.bind.on_demand
    before_run: BeforeRun | None = None
    translate_error: TranslateError | None = None

    def __init__(self, url: str) -> None:
        import clickhouse_connect

        self._client: Any = None
        self.url = url
        args = parse_url(url)
        settings = {"session_timezone": NAIVE_TZ, **args.pop("settings")}
        self._settings = settings
        self._args = args
        self._lock = threading.RLock()
        self._killer: Any = None  # the sessionless client KILL QUERY goes through
        self._killer_lock = threading.Lock()
        try:
            self._client = clickhouse_connect.get_client(
                **args, autogenerate_session_id=True, settings=settings
            )
        except Exception as e:
            raise ConnectionFailure(
                f"cannot reach ClickHouse at {args['host']}:{args['port']}: {_clean(e)}",
                hint="Check that the server runs and the URL, user and password are right.",
            ) from None

    # queries ------------------------------------------------------------

    def query(self, sql: str, inputs: Sequence[pa.Table] = ()) -> pa.Table:
        before_run(self, sql)
        scope = current_scope()
        with self._lock, self._inputs(sql, inputs) as text:
            qid = self._enter(scope)
            try:
                result = self._client.query_arrow(
                    text, use_strings=True, settings=self._query_settings(qid)
                )
            except Exception as e:
                if scope is not None and scope.canceled:
                    raise QueryCanceled(CANCELED) from None
                raise engine_error(self, _clean(e), text) from None
            finally:
                self._leave(scope, qid)
        return naive_timestamps(result)

    # cancel ---------------------------------------------------------------

    def _enter(self, scope: CancelScope | None) -> str | None:
        if scope is None:
            return None
        qid = f"fsql-{uuid.uuid4().hex}"
        scope.enter(qid, self._kill)
        return qid

    @staticmethod
    def _leave(scope: CancelScope | None, qid: str | None) -> None:
        if scope is not None and qid is not None:
            scope.leave(qid)

    @staticmethod
    def _query_settings(qid: str | None) -> dict[str, Any] | None:
        return {"query_id": qid} if qid is not None else None

    def _kill(self, qid: str) -> None:
        import clickhouse_connect

        with self._killer_lock:
            if self._killer is None:
                self._killer = clickhouse_connect.get_client(
                    **self._args, autogenerate_session_id=False
                )
            self._killer.command(f"KILL QUERY WHERE query_id = '{qid}' ASYNC")

    def stream(self, sql: str, batch_rows: int = 65536) -> pa.RecordBatchReader:
        """Stream a query's result (``query_arrow_stream``, blocks of
        ``batch_rows``). Like a query, it runs with its own ``query_id``
        inside a :class:`CancelScope`, so a cancel stops it while it streams."""
        before_run(self, sql)
        scope = current_scope()
        settings: dict[str, Any] = {"max_block_size": batch_rows}
        with self._lock:
            qid = self._enter(scope)
            if qid is not None:
                settings["query_id"] = qid
            try:
                context = self._client.query_arrow_stream(sql, settings=settings, use_strings=True)
                stream = context.__enter__()
                batches: Iterator[Any] = iter(stream)
                first = next(batches, None)
            except Exception as e:
                self._leave(scope, qid)
                if scope is not None and scope.canceled:
                    raise QueryCanceled(CANCELED) from None
                raise engine_error(self, _clean(e), sql) from None
        if first is None:
            context.__exit__(None, None, None)
            self._leave(scope, qid)
            return pa.RecordBatchReader.from_batches(self.query(sql).schema, iter(()))
        first_batch = _as_batch(first)
        schema = _naive_schema(first_batch.schema)

        def gen() -> Iterator[pa.RecordBatch]:
            try:
                yield _cast_batch(first_batch, schema)
                for item in batches:
                    yield _cast_batch(_as_batch(item), schema)
            except GeneratorExit:
                raise
            except Exception as e:
                if scope is not None and scope.canceled:
                    raise QueryCanceled(CANCELED) from None
                raise engine_error(self, _clean(e), sql) from None
            finally:
                context.__exit__(None, None, None)
                self._leave(scope, qid)

        return pa.RecordBatchReader.from_batches(schema, gen())

    def execute(self, sql: str, inputs: Sequence[pa.Table] = ()) -> None:
        before_run(self, sql)
        with self._lock:
            if inputs:
                direct = _direct_insert(_parse(sql), len(inputs))
                if direct is not None:
                    target, columns = direct
                    data = inputs[0]
                    if columns:
                        if len(columns) != data.num_columns:
                            raise EngineError(
                                f"INSERT names {len(columns)} columns, the input has "
                                f"{data.num_columns}"
                            )
                        data = data.rename_columns(columns)
                    self.insert(target, data)
                    return
            scope = current_scope()
            with self._inputs(sql, inputs) as text:
                qid = self._enter(scope)
                try:
                    self._client.command(text, settings=self._query_settings(qid))
                except Exception as e:
                    if scope is not None and scope.canceled:
                        raise QueryCanceled(CANCELED) from None
                    raise engine_error(self, _clean(e), text) from None
                finally:
                    self._leave(scope, qid)

    def insert(self, target: exp.Table, data: pa.Table) -> None:
        with self._lock:
            try:
                self._client.insert_arrow(target.name, data, database=target.db or None)
            except Exception as e:
                raise EngineError(
                    _clean(e), detail=f"INSERT INTO {target.sql('clickhouse')}"
                ) from None

    def close(self) -> None:
        killer = getattr(self, "_killer", None)
        if killer is not None:
            self._killer = None
            try:
                killer.close()
            except Exception:
                pass
        client = getattr(self, "_client", None)
        if client is not None:
            try:
                client.close()
            finally:
                self._client = None

    # Arrow inputs -------------------------------------------------------

    class _Uploaded:
        def __init__(self, engine: ClickHouseEngine, sql: str, inputs: Sequence[pa.Table]):
            self.engine = engine
            self.sql = sql
            self.inputs = inputs
            self.names: list[str] = []

        def __enter__(self) -> str:
            if not self.inputs:
                return self.sql
            tag = uuid.uuid4().hex[:12]
            for i, data in enumerate(self.inputs):
                name = f"_fsql_input_{tag}_{i}"
                self.engine._upload(name, data)
                self.names.append(name)
            return rewrite_inputs(self.sql, self.names).sql(PARSE_DIALECT)

        def __exit__(self, *exc: object) -> None:
            for name in self.names:
                drop = exp.Drop(
                    tables=[exp.Table(this=exp.to_identifier(name, quoted=True))],
                    kind="TABLE",
                    exists=True,
                    temporary=True,
                )
                try:
                    self.engine._client.command(drop.sql(PARSE_DIALECT))
                except Exception:
                    pass

    def _inputs(self, sql: str, inputs: Sequence[pa.Table]) -> ClickHouseEngine._Uploaded:
        return ClickHouseEngine._Uploaded(self, sql, inputs)

    def _upload(self, name: str, data: pa.Table) -> None:
        columns = [
            exp.ColumnDef(
                this=exp.to_identifier(f.name, quoted=True), kind=arrow_to_clickhouse(f.type)
            )
            for f in data.schema
        ]
        create = exp.Create(
            this=exp.Schema(
                this=exp.Table(this=exp.to_identifier(name, quoted=True)), expressions=columns
            ),
            kind="TABLE",
            properties=exp.Properties(
                expressions=[exp.TemporaryProperty(), exp.EngineProperty(this=exp.var("Memory"))]
            ),
        )
        try:
            self._client.command(create.sql(PARSE_DIALECT))
            self._client.insert_arrow(name, data)
        except Exception as e:
            raise EngineError(f"uploading an Arrow input failed: {_clean(e)}") from None


def _as_batch(item: Any) -> pa.RecordBatch:
    if isinstance(item, pa.RecordBatch):
        return item
    if isinstance(item, pa.Table):
        return (
            item.combine_chunks().to_batches()[0]
            if item.num_rows
            else pa.RecordBatch.from_pylist([], schema=item.schema)
        )
    raise EngineError(f"unexpected stream item {type(item).__name__}")


def _cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    return pa.RecordBatch.from_arrays(
        [c.cast(f.type) for c, f in zip(batch.columns, schema, strict=True)], schema=schema
    )


def _clean(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:1000]
