"""ClickHouse error codes to SQLSTATE, for engine errors that reach a client."""

from __future__ import annotations

import re

_CH_CODES = {
    47: "42703",  # UNKNOWN_IDENTIFIER
    16: "42703",  # NO_SUCH_COLUMN_IN_TABLE
    60: "42P01",  # UNKNOWN_TABLE
    81: "3D000",  # UNKNOWN_DATABASE
    62: "42601",  # SYNTAX_ERROR
    46: "42883",  # UNKNOWN_FUNCTION
    42: "42883",  # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    43: "42804",  # ILLEGAL_TYPE_OF_ARGUMENT
    53: "42804",  # TYPE_MISMATCH
    386: "42804",  # NO_COMMON_TYPE
    6: "22P02",  # CANNOT_PARSE_TEXT
    27: "22P02",  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38: "22007",  # CANNOT_PARSE_DATE
    41: "22007",  # CANNOT_PARSE_DATETIME
    69: "22003",  # ARGUMENT_OUT_OF_BOUND
    153: "22012",  # ILLEGAL_DIVISION
    159: "57014",  # TIMEOUT_EXCEEDED
    394: "57014",  # QUERY_WAS_CANCELLED
    241: "53200",  # MEMORY_LIMIT_EXCEEDED
    215: "42803",  # NOT_AN_AGGREGATE
    184: "42803",  # ILLEGAL_AGGREGATION
}


def clickhouse_sqlstate(message: str) -> str | None:
    m = re.match(r"\s*Code:\s*(\d+)", message)
    return _CH_CODES.get(int(m.group(1))) if m else None
