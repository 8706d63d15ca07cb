"""The ClickHouse SQL we generate: sqlglot's ClickHouse dialect, except that
PostgreSQL ``timestamp`` / ``timestamptz`` keep microseconds and ``date``
reaches before 1970.

sqlglot maps ``TIMESTAMP`` to ClickHouse ``DateTime`` (whole seconds), which
would truncate ``TIMESTAMP '2024-01-01 10:00:00.5'`` in a user's query and
shift point-in-time boundaries; fsql stores ``DateTime64(6)``.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.generators.clickhouse import ClickHouseGenerator

_TIMESTAMPS = (exp.DType.TIMESTAMP, exp.DType.TIMESTAMPNTZ, exp.DType.TIMESTAMPTZ)


class FsqlClickHouse(ClickHouse):
    class Generator(ClickHouseGenerator):
        TRANSFORMS = {
            **ClickHouseGenerator.TRANSFORMS,
            # now() is whole seconds in ClickHouse; PostgreSQL's has microseconds
            exp.CurrentTimestamp: lambda *_: "now64(6)",
        }

        def datatype_sql(self, expression: exp.DataType) -> str:
            if expression.this in _TIMESTAMPS and not expression.expressions:
                params: list[exp.Expression] = [exp.DataTypeParam(this=exp.Literal.number(6))]
                if expression.this == exp.DType.TIMESTAMPTZ:
                    params.append(exp.DataTypeParam(this=exp.Literal.string("UTC")))
                expression = exp.DataType(
                    this=exp.DType.DATETIME64,
                    expressions=params,
                    nullable=expression.args.get("nullable"),
                )
            if expression.this == exp.DType.DATE:
                # ClickHouse Date starts at 1970 (earlier dates become
                # 1970-01-01); Date32 spans 1900-2299, as fsql stores dates
                expression = exp.DataType(
                    this=exp.DType.DATE32, nullable=expression.args.get("nullable")
                )
            return super().datatype_sql(expression)


DIALECT = FsqlClickHouse
