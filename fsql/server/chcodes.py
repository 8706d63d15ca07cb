"""ClickHouse error codes to SQLSTATE, for engine errors that reach a client
(the table lives with the errors: :func:`fsql.errors.clickhouse_sqlstate`)."""

from __future__ import annotations

from fsql.errors import clickhouse_sqlstate

__all__ = ["clickhouse_sqlstate"]
