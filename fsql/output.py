"""Render Arrow results for people and files: aligned text, CSV, JSON, Parquet."""

from __future__ import annotations

import io
import json
import math
import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from fsql.errors import InvalidParameter

FORMATS = ("table", "csv", "json", "parquet")


def write_result(table: pa.Table, fmt: str, output: Path | None, *, max_rows: int = 0) -> None:
    """Write ``table`` in one of :data:`FORMATS` to ``output`` (None: stdout)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if output is None:
            if sys.stdout.isatty():
                raise InvalidParameter(
                    "Parquet is binary; it is not printed to a terminal",
                    hint="Add --output FILE, or pipe the output.",
                )
            sys.stdout.flush()
            pq.write_table(table, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            pq.write_table(table, output)
        return
    if fmt == "csv":
        data = to_csv(table)
    elif fmt == "json":
        data = to_json(table)
    elif fmt == "table":
        data = format_table(table, max_rows=max_rows)
    else:
        raise InvalidParameter(f"unknown format {fmt!r}", hint="Use one of " + ", ".join(FORMATS))
    if output is None:
        sys.stdout.write(data)
        sys.stdout.flush()
    else:
        output.write_text(data)


def to_csv(table: pa.Table) -> str:
    import pyarrow.csv as pcsv

    buf = io.BytesIO()
    pcsv.write_csv(table, buf)
    return buf.getvalue().decode()


def _json_default(v: object) -> object:
    if isinstance(v, datetime | date | time):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def to_json(table: pa.Table) -> str:
    """A JSON array of row objects; times in ISO 8601, decimals as strings."""
    return json.dumps(table.to_pylist(), default=_json_default, indent=1) + "\n"


def cell(v: object) -> str:
    """One value as text for the aligned table."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v == 0 or 1e-4 <= abs(v) < 1e15:
            return f"{v:.4f}".rstrip("0").rstrip(".")
        return f"{v:.6g}"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def format_table(table: pa.Table, *, max_rows: int = 0) -> str:
    """A psql-like aligned text table; numbers right-aligned, NULL spelled out."""
    n = table.num_rows
    shown = table if not max_rows or n <= max_rows else table.slice(0, max_rows)
    names = table.column_names
    numeric = [
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        for t in table.schema.types
    ]
    columns = [[cell(v) for v in shown.column(i).to_pylist()] for i in range(len(names))]
    widths = [
        max([len(name), *(len(c) for c in cells)])
        for name, cells in zip(names, columns, strict=True)
    ]
    lines = [
        " | ".join(name.center(w) for name, w in zip(names, widths, strict=True)).rstrip(),
        "-+-".join("-" * w for w in widths),
    ]
    for r in range(shown.num_rows):
        cells = [
            columns[i][r].rjust(widths[i]) if numeric[i] else columns[i][r].ljust(widths[i])
            for i in range(len(names))
        ]
        lines.append(" | ".join(cells).rstrip())
    footer = f"({n} row{'' if n == 1 else 's'})"
    if shown.num_rows < n:
        footer = f"({n} rows, first {shown.num_rows} shown)"
    lines.append(footer)
    return "\n".join(lines) + "\n"
