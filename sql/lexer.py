"""A small lexer of PostgreSQL statement text: spans of code, strings,
quoted identifiers, comments and dollar-quoted bodies, so that text can be
split or searched without touching what is inside quotes (the server's
statement router and the DB-API's parameter markers use it)."""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def spans(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) covering ``text``; kind is code, string, ident,
    comment or dollar."""
    out: list[tuple[str, int, int]] = []
    i, n, start = 0, len(text), 0
    while i < n:
        c = text[i]
        if c == "'" or (
            c in "eE" and i + 1 < n and text[i + 1] == "'" and not _ident_before(text, i)
        ):
            if i > start:
                out.append(("code", start, i))
            backslash = c in "eE"
            j = i + (2 if backslash else 1)
            while j < n:
                if backslash and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            out.append(("string", i, min(j + 1, n)))
            i = start = min(j + 1, n)
            continue
        if c == '"':
            if i > start:
                out.append(("code", start, i))
            j = i + 1
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        j += 2
                        continue
                    break
                j += 1
            out.append(("ident", i, min(j + 1, n)))
            i = start = min(j + 1, n)
            continue
        if c == "-" and text.startswith("--", i):
            if i > start:
                out.append(("code", start, i))
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(("comment", i, j))
            i = start = j
            continue
        if c == "/" and text.startswith("/*", i):
            if i > start:
                out.append(("code", start, i))
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth += 1
                    j += 2
                elif text.startswith("*/", j):
                    depth -= 1
                    j += 2
                else:
                    j += 1
            out.append(("comment", i, j))
            i = start = j
            continue
        if c == "$" and not _ident_before(text, i):
            m = _DOLLAR_TAG.match(text, i)
            if m:
                if i > start:
                    out.append(("code", start, i))
                close = text.find(m.group(0), m.end())
                j = n if close < 0 else close + len(m.group(0))
                out.append(("dollar", i, j))
                i = start = j
                continue
        i += 1
    if start < n:
        out.append(("code", start, n))
    return out


def _ident_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$")
