"""Where a statement runs: the fsql engine, the catalog mirror, or the server
itself (constants, cursors, COPY, empty statements).

Classification reads the statement's words outside quotes and comments; it
never rewrites the text. Decisions are cached per statement text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import pyarrow as pa

from fsql.sql.lexer import spans

ENGINE = "engine"
MIRROR = "mirror"
CONST = "const"
EMPTY = "empty"
DECLARE = "declare"
FETCH = "fetch"
CLOSE = "close"
COPY = "copy"
UNSUPPORTED = "unsupported"
REFUSED = "refused"  # a statement fsql refuses with 0A000; Route.error says why

# statements that belong to the session: they run on the mirror
_SESSION_WORDS = {
    "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
    "set", "reset", "discard", "listen", "unlisten", "notify", "deallocate", "lock",
}  # fmt: skip
_FSQL_SHOW = {"feature", "features", "training", "connectors", "connector", "projects"}
_ROW_WORDS = {"select", "with", "values", "table", "show", "describe", "search", "explain", "fetch"}
_CATALOG_NAMES = {"pg_catalog", "information_schema"}
_CATALOG_TYPES = {
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regnamespace",
    "regrole",
    "oid",
}


@lru_cache(maxsize=4096)
def split_statements(text: str) -> list[str]:
    """Split at top-level semicolons; blank statements are dropped."""
    parts, start = [], 0
    for kind, s, e in spans(text):
        if kind != "code":
            continue
        k = text.find(";", s, e)
        while k >= 0:
            parts.append(text[start:k])
            start = k + 1
            k = text.find(";", k + 1, e)
    parts.append(text[start:])
    return [p for p in parts if p.strip() and not _only_comments(p)]


def _only_comments(text: str) -> bool:
    return all(kind == "comment" or not text[s:e].strip() for kind, s, e in spans(text))


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|\$\d+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|::|\S")


def words(text: str) -> list[str]:
    """Lower-cased words and symbols outside strings and comments; quoted
    identifiers as their (unquoted, case-kept) names prefixed with '"'."""
    out: list[str] = []
    for kind, s, e in spans(text):
        if kind == "code":
            out.extend(w.lower() for w in _WORD.findall(text, s, e))
        elif kind == "ident":
            out.append('"' + text[s + 1 : e - 1].replace('""', '"'))
        elif kind in ("string", "dollar"):
            out.append("'")
    return out


def param_count(text: str) -> int:
    n = 0
    for w in words(text):
        if w.startswith("$") and w[1:].isdigit():
            n = max(n, int(w[1:]))
    return n


# --- routing -----------------------------------------------------------------


@dataclass
class Route:
    kind: str
    first: str = ""
    returns_rows: bool = False
    ddl: bool = False
    const: pa.Table | None = None
    name: str = ""  # cursor name for DECLARE/FETCH/CLOSE
    inner: str = ""  # DECLARE's / COPY's query text
    inner_at: int = -1  # where ``inner`` starts in the statement text (-1: generated)
    count: int | None = None  # FETCH count, None for ALL
    copy_options: dict[str, str] = field(default_factory=dict)
    error: str = ""  # REFUSED: the message
    hint: str = ""
    cache: dict[str, bytes] = field(default_factory=dict)  # encoded constant results
    # the FSQL parser's verdict on the engine text, found at Parse:
    # None (not yet parsed), False (it parses) or its error
    syntax_error: BaseException | bool | None = None


@lru_cache(maxsize=4096)
def classify(text: str) -> Route:
    w = words(text)
    if not w:
        return Route(EMPTY)
    first = w[0]
    if first == "(":
        first = next((x for x in w if x != "("), "select")
    second = w[1] if len(w) > 1 else ""
    if first in _SESSION_WORDS:
        return Route(MIRROR, first)
    if first == "show":
        if second in _FSQL_SHOW:
            return Route(ENGINE, first, returns_rows=True)
        return Route(MIRROR, first)
    if first == "declare":
        return _declare(text, w)
    if first in ("fetch", "move"):
        r = _fetch(w)
        if r.kind == ENGINE:
            return Route(UNSUPPORTED, first, inner=r.inner)
        return r
    if first == "close":
        return Route(CLOSE, first, name=_name(w[1]) if len(w) > 1 else "")
    if first == "copy":
        return _copy(text, w)
    if first in ("select", "with", "values", "table") and second != "features":
        if _is_catalog(w):
            return Route(MIRROR, first)
        if "from" not in w and first == "select":
            const = constant_result(text)
            if const is not None:
                return Route(CONST, first, returns_rows=True, const=const)
            return Route(MIRROR, first)
    return Route(
        ENGINE,
        first,
        returns_rows=first in _ROW_WORDS,
        ddl=first in ("create", "drop", "alter", "comment"),
    )


def _is_catalog(w: list[str]) -> bool:
    for x in w:
        if x in _CATALOG_NAMES or x in _CATALOG_TYPES or x.startswith("pg_"):
            return True
        if x.startswith('"') and x[1:] in _CATALOG_NAMES:
            return True
    return False


def _name(word: str) -> str:
    return word[1:] if word.startswith('"') else word


def _declare(text: str, w: list[str]) -> Route:
    # DECLARE name [BINARY] [ASENSITIVE|INSENSITIVE] [[NO] SCROLL] CURSOR [WITH[OUT] HOLD] FOR query
    if len(w) < 2:
        return Route(ENGINE, "declare")
    name = _name(w[1])
    for kind, s, e in spans(text):
        if kind != "code":
            continue
        m = re.search(r"\bfor\b", text[s:e], re.IGNORECASE)
        if m:
            inner = text[s + m.end() :]
            sub = classify(inner)
            return (
                Route(
                    DECLARE,
                    "declare",
                    name=name,
                    inner=inner,
                    inner_at=s + m.end(),
                    returns_rows=False,
                    ddl=False,
                )
                if sub.kind != MIRROR
                else Route(MIRROR, "declare")
            )
    return Route(ENGINE, "declare")


def _fetch(w: list[str]) -> Route:
    # FETCH [NEXT|FORWARD [n|ALL]|n|ALL] [FROM|IN] name
    rest = w[1:]
    count: int | None = 1
    if rest and rest[0] in ("prior", "first", "last", "absolute", "relative", "backward"):
        return Route(ENGINE, w[0], name="", returns_rows=False, inner=rest[0])  # refused below
    if rest and rest[0] in ("next", "forward"):
        rest = rest[1:]
    if rest and rest[0] == "all":
        count, rest = None, rest[1:]
    elif rest and rest[0].isdigit():
        count, rest = int(rest[0]), rest[1:]
    if rest and rest[0] in ("from", "in"):
        rest = rest[1:]
    name = _name(rest[0]) if rest else ""
    return Route(FETCH, w[0], name=name, count=count, returns_rows=w[0] == "fetch")


_COPY_HINT = "Use COPY (query) TO STDOUT [WITH (FORMAT csv, HEADER)]; load data with INSERT."


def _copy_direction(w: list[str]) -> tuple[str, str]:
    """("to" | "from" | "", the word after it) of a COPY, outside its query."""
    depth = 0
    for i, x in enumerate(w[1:], 1):
        if x == "(":
            depth += 1
        elif x == ")":
            depth -= 1
        elif depth == 0 and x in ("to", "from"):
            return x, w[i + 1] if i + 1 < len(w) else ""
    return "", ""


def _copy(text: str, w: list[str]) -> Route:
    # COPY (query) TO STDOUT [WITH] [(FORMAT csv, HEADER ...)] | COPY table [(cols)] TO STDOUT
    direction, target = _copy_direction(w)
    if direction == "from":
        what = "FROM STDIN" if target == "stdin" else "FROM a file or program"
        return Route(REFUSED, "copy", error=f"COPY ... {what} is not supported", hint=_COPY_HINT)
    if direction == "to" and target != "stdout":
        return Route(
            REFUSED,
            "copy",
            error="COPY to a file is not supported: use COPY (...) TO STDOUT",
            hint=_COPY_HINT,
        )
    if "stdout" not in w:
        return Route(ENGINE, "copy")
    options: dict[str, str] = {}
    tail = w[w.index("stdout") + 1 :]
    if "csv" in tail:
        options["format"] = "csv"
    if "binary" in tail:
        options["format"] = "binary"
    if "header" in tail:
        idx = tail.index("header")
        options["header"] = (
            "false" if idx + 1 < len(tail) and tail[idx + 1] in ("false", "off", "0") else "true"
        )
    if len(w) > 1 and w[1] == "(":
        # the query between the first "(" and its matching ")"
        depth, start = 0, None
        for kind, s, e in spans(text):
            if kind != "code":
                continue
            for k in range(s, e):
                ch = text[k]
                if ch == "(":
                    depth += 1
                    if start is None:
                        start = k + 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0 and start is not None:
                        inner = text[start:k]
                        sub = classify(inner)
                        if sub.kind == MIRROR:
                            return Route(MIRROR, "copy")
                        return Route(
                            COPY, "copy", inner=inner, inner_at=start, copy_options=options
                        )
        return Route(ENGINE, "copy")
    query = _copy_table_query(w)
    if query is None:
        return Route(ENGINE, "copy")  # the engine reports the syntax error
    if _is_catalog(w):
        return Route(MIRROR, "copy")
    return Route(COPY, "copy", inner=query, copy_options=options)


def _copy_table_query(w: list[str]) -> str | None:
    """``COPY [schema.]table [(col, ...)] TO ...`` as ``SELECT cols FROM
    table``, built as a sqlglot tree from the words (never spliced text)."""
    from sqlglot import exp

    from fsql.sql.dialect import FSQL

    names, i = [], 1
    while i < len(w) and _is_name(w[i]):
        names.append(_name(w[i]))
        if i + 1 < len(w) and w[i + 1] == ".":
            i += 2
            continue
        i += 1
        break
    if not 1 <= len(names) <= 2:
        return None
    columns: list[exp.Expr] = []
    if i < len(w) and w[i] == "(":
        i += 1
        while i < len(w) and _is_name(w[i]):
            columns.append(exp.column(exp.to_identifier(_name(w[i]), quoted=True)))
            i += 1
            if i < len(w) and w[i] == ",":
                i += 1
        if i >= len(w) or w[i] != ")" or not columns:
            return None
        i += 1
    if i >= len(w) or w[i] != "to":
        return None
    table = exp.table_(
        exp.to_identifier(names[-1], quoted=True),
        db=exp.to_identifier(names[0], quoted=True) if len(names) == 2 else None,
    )
    return exp.select(*(columns or [exp.Star()])).from_(table).sql(dialect=FSQL)


def _is_name(word: str) -> bool:
    return word.startswith('"') or bool(re.fullmatch(r"[a-z_][a-z0-9_$]*", word))


# --- constant SELECTs answered without the engine ------------------------------

_CONST_ITEM = re.compile(
    r"""\s*(?:(?P<num>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|'(?P<str>(?:[^']|'')*)'|(?P<kw>null|true|false))
        (?:\s+(?:as\s+)?(?P<alias>[A-Za-z_][A-Za-z0-9_]*|"(?:[^"]|"")+"))?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def constant_result(text: str) -> pa.Table | None:
    """``SELECT 1``, ``SELECT 'a' AS x, 2.5``: the result, else None."""
    body = text.strip().rstrip(";").strip()
    if body[:6].lower() != "select" or not body[6:7].isspace():
        return None
    items = _split_commas(body[7:])
    if items is None or not items:
        return None
    names, arrays = [], []
    for item in items:
        m = _CONST_ITEM.match(item)
        if not m:
            return None
        alias = m.group("alias")
        if alias and alias.lower() in ("from", "where", "limit", "union", "order", "group"):
            return None
        if m.group("num") is not None:
            num = m.group("num")
            if re.fullmatch(r"[-+]?\d+", num):
                v = int(num)
                typ = pa.int32() if -(2**31) <= v < 2**31 else pa.int64()
                if not -(2**63) <= v < 2**63:
                    return None
                arr = pa.array([v], typ)
            else:
                import decimal

                d = decimal.Decimal(num)
                _, digits, exp = d.as_tuple()
                assert isinstance(exp, int)
                scale = max(-exp, 0)
                precision = max(len(digits), scale + 1)
                if precision > 38:
                    return None
                arr = pa.array([d], pa.decimal128(precision, scale))
            default = "?column?"
        elif m.group("str") is not None:
            arr = pa.array([m.group("str").replace("''", "'")], pa.string())
            default = "?column?"
        else:
            kw = m.group("kw").lower()
            arr = pa.array([None], pa.string()) if kw == "null" else pa.array([kw == "true"])
            default = "bool" if kw != "null" else "?column?"
        if alias:
            name = alias[1:-1].replace('""', '"') if alias.startswith('"') else alias.lower()
        else:
            name = default
        names.append(name)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=names)


def _split_commas(text: str) -> list[str] | None:
    items, start = [], 0
    for kind, s, e in spans(text):
        if kind == "comment":
            return None
        if kind != "code":
            continue
        for k in range(s, e):
            if text[k] in "();:[]":
                return None
            if text[k] == ",":
                items.append(text[start:k])
                start = k + 1
    items.append(text[start:])
    return items
