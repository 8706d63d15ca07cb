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

        def div_sql(self, expression: exp.Div) -> str:
            # integers divide as integers, as in PostgreSQL (the planner marks
            # those divisions; see fsql.bind.names.mark_integer_division)
            if expression.meta.get("fsql_integer_division"):
                return self.func("intDiv", expression.this, expression.expression)
            return super().div_sql(expression)

        def generateseries_sql(self, expression: exp.GenerateSeries) -> str:
            # ClickHouse's table function is lower case (names are case-sensitive)
            args = [expression.args.get(k) for k in ("start", "end", "step")]
            return self.func("generate_series", *[a for a in args if a is not None])

        def unnest_sql(self, expression: exp.Unnest) -> str:
            # generate_series(a, b) in a select list (PostgreSQL's set-returning
            # use) is one row per value: arrayJoin over range(a, b + 1)
            (inner,) = expression.expressions if len(expression.expressions) == 1 else (None,)
            if isinstance(inner, exp.GenerateSeries) and not isinstance(
                expression.parent, (exp.From, exp.Join, exp.Table)
            ):
                end = exp.Add(this=inner.args["end"].copy(), expression=exp.Literal.number(1))
                args = [inner.args["start"], end]
                if inner.args.get("step") is not None:
                    args.append(inner.args["step"])
                return self.func("arrayJoin", exp.func("range", *args))
            return super().unnest_sql(expression)

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
