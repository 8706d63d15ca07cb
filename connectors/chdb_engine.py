"""The embedded engine: chDB, in-process ClickHouse over the store folder."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.engine import BeforeRun, TranslateError, before_run, engine_error, input_ref
from fsql.errors import StoreInUse
from fsql.sql.engine_dialect import DIALECT

_OPEN_PATH: str | None = None
_OPEN_LOCK = threading.Lock()


class ChdbEngine:
    """chDB holds one data folder per process; a second store in the same
    process must wait until the first is closed."""

    name = "chdb"
    # hooks (see fsql.connectors.engine): set by fsql.on_demand
    before_run: BeforeRun | None = None
    translate_error: TranslateError | None = None

    def __init__(self, path: str) -> None:
        global _OPEN_PATH
        from chdb import session

        with _OPEN_LOCK:
            if _OPEN_PATH is not None and path != _OPEN_PATH:
                raise StoreInUse(
                    f"this process already has the embedded store at {_OPEN_PATH!r} open",
                    hint="Close that store first (store.close()); chDB serves one folder "
                    "per process.",
                )
            self._session = session.Session(path)
            _OPEN_PATH = path
        # ClickHouse reads and prints naive DateTime64 in the session time zone;
        # pin it so naive timestamps mean UTC whatever the machine's zone is.
        self._session.query(f"SET session_timezone = '{NAIVE_TZ}'")
        self.path = path
        # chDB resolves Python(name) by scanning interpreter frames; two threads
        # doing that at once read each other's inputs, so queries with Arrow
        # inputs are serialized.
        self._input_lock = threading.Lock()
        self._closed = False

    def _run(
        self,
        sql: str,
        fmt: str,
        fsql_input_0: pa.Table | None = None,
        fsql_input_1: pa.Table | None = None,
        fsql_input_2: pa.Table | None = None,
        fsql_input_3: pa.Table | None = None,
    ) -> object:
        # The parameters above are the names Python(fsql_input_N) resolves to.
        try:
            return self._session.query(sql, fmt)
        except Exception as e:  # chDB raises bare RuntimeError/ChdbError
            raise engine_error(self, _clean(str(e)), sql) from None

    def query(self, sql: str, inputs: Sequence[pa.Table] = ()) -> pa.Table:
        before_run(self, sql)
        if inputs:
            with self._input_lock:
                result = self._run(sql, "ArrowTable", *inputs)
        else:
            result = self._run(sql, "ArrowTable")
        assert isinstance(result, pa.Table)
        return naive_timestamps(result)

    def stream(self, sql: str, batch_rows: int = 65536) -> pa.RecordBatchReader:
        before_run(self, sql)
        try:
            res = self._session.send_query(sql, "Arrow")
            reader: pa.RecordBatchReader = res.record_batch(rows_per_batch=batch_rows)
        except Exception as e:
            raise engine_error(self, _clean(str(e)), sql) from None
        schema = _naive_schema(reader.schema)
        if schema.equals(reader.schema):
            return reader
        return pa.RecordBatchReader.from_batches(
            schema, (pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in reader)
        )

    def execute(self, sql: str, inputs: Sequence[pa.Table] = ()) -> None:
        before_run(self, sql)
        if inputs:
            with self._input_lock:
                self._run(sql, "Null", *inputs)
        else:
            self._run(sql, "Null")

    def insert(self, target: exp.Table, data: pa.Table) -> None:
        """Append ``data`` (columns in table order) to ``target``."""
        sql = exp.insert(exp.select(exp.Star()).from_(input_ref(0)), target).sql(DIALECT)
        self.execute(sql, [data])

    def close(self) -> None:
        global _OPEN_PATH
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            try:
                self._session.close()
            finally:
                _OPEN_PATH = None


NAIVE_TZ = "Etc/UTC"


def _naive_schema(schema: pa.Schema) -> pa.Schema:
    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type) and f.type.tz == NAIVE_TZ:
            f = f.with_type(pa.timestamp(f.type.unit))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def naive_timestamps(table: pa.Table) -> pa.Table:
    """ClickHouse ``DateTime64(6)`` (no zone) arrives tagged with the session
    zone; give it back as a naive Arrow timestamp. ``DateTime64(6, 'UTC')``
    (timestamptz) keeps its zone."""
    schema = _naive_schema(table.schema)
    return table if schema.equals(table.schema) else table.cast(schema)


def _clean(message: str) -> str:
    """ClickHouse messages end with a stack-trace hint; keep the sentence."""
    text = message.strip()
    for marker in (". (", " (version "):
        cut = text.find(marker)
        if cut > 0 and text.rstrip().endswith(")"):
            text = text[: cut + 1]
            break
    return text
