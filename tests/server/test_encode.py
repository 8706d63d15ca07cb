"""Row encoding units: the wire bytes for values the client tests do not reach."""

from __future__ import annotations

import decimal
import struct

import pyarrow as pa
import pytest

from fsql.server import encode
from fsql.server.route import classify, split_statements
from fsql.server.session import _numeric_from_binary, decode_param


def _values(rows: bytes) -> list[list[bytes | None]]:
    out, pos = [], 0
    while pos < len(rows):
        assert rows[pos : pos + 1] == b"D"
        n = struct.unpack_from("!i", rows, pos + 1)[0]
        body = rows[pos + 5 : pos + 1 + n]
        ncols = struct.unpack_from("!h", body)[0]
        p, row = 2, []
        for _ in range(ncols):
            ln = struct.unpack_from("!i", body, p)[0]
            p += 4
            row.append(None if ln < 0 else body[p : p + ln])
            p += max(ln, 0)
        out.append(row)
        pos += 1 + n
    return out


def test_bytea_text_and_binary() -> None:
    t = pa.table({"b": pa.array([b"\x00\xffab", None], pa.binary())})
    assert _values(encode.data_rows(t, encode.fields_for(t.schema, [0]))) == [
        [b"\\x00ff6162"],
        [None],
    ]
    assert _values(encode.data_rows(t, encode.fields_for(t.schema, [1]))) == [
        [b"\x00\xffab"],
        [None],
    ]
    assert encode.fields_for(t.schema, [])[0].oid == 17


def test_bytea_every_arrow_binary_type_and_both_encoders() -> None:
    values = [b"\x00\x01\xff", None, b"", b"a\tb\\", bytes(range(256))]
    for typ in (pa.binary(), pa.large_binary()):
        t = pa.table({"b": pa.array(values, typ)}).slice(1)  # a non-zero offset too
        for fmt in (0, 1):
            fields = encode.fields_for(t.schema, [fmt])
            assert fields[0].oid == 17
            vectorized = encode.data_rows(t, fields)
            assert encode.small_data_rows(t, fields) == vectorized  # row by row: same bytes
            want = [
                None if v is None else (v if fmt else b"\\x" + v.hex().encode()) for v in values[1:]
            ]
            assert [row[0] for row in _values(vectorized)] == want
    fixed = pa.table({"b": pa.array([b"\x00\xff", None], pa.binary(2))})
    fields = encode.fields_for(fixed.schema, [])
    assert fields[0].oid == 17
    assert _values(encode.data_rows(fixed, fields)) == [[b"\\x00ff"], [None]]
    t = pa.table({"id": [1, 2], "b": pa.array([b"\x00\x01\xff", None], pa.binary())})
    assert encode.copy_text(t) == b"1\t\\\\x0001ff\n2\t\\N\n"
    assert encode.copy_csv(t, ["id", "b"]) == b"id,b\n1,\\x0001ff\n2,\n"


def _bad_utf8() -> pa.Table:
    offsets = pa.py_buffer(struct.pack("<iii", 0, 1, 3))
    arr = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"a\xff\xfe")])
    return pa.table({"s": arr})


@pytest.mark.parametrize(
    "how",
    [
        lambda t: encode.data_rows(t, encode.fields_for(t.schema, [0])),
        lambda t: encode.data_rows(t, encode.fields_for(t.schema, [1])),
        # the row-by-row encoder declines (None) and the vectorized one refuses
        lambda t: (
            encode.small_data_rows(t, encode.fields_for(t.schema, [0]))
            or encode.data_rows(t, encode.fields_for(t.schema, [0]))
        ),
        lambda t: encode.copy_text(t),
        lambda t: encode.copy_csv(t),
    ],
)
def test_text_that_is_not_utf8_is_22021(how: object) -> None:
    from fsql.errors import FsqlError

    assert callable(how)
    with pytest.raises(FsqlError) as e:
        how(_bad_utf8())
    assert e.value.sqlstate == "22021"


def test_json_feature_described_as_json_by_field_metadata() -> None:
    plain = pa.field("j", pa.string())
    tagged = plain.with_metadata({encode.TYPE_KEY: b"json"})
    other = plain.with_metadata({encode.TYPE_KEY: b"text"})
    schema = pa.schema([plain, tagged, other])
    assert [f.oid for f in encode.fields_for(schema, [])] == [25, 114, 25]
    t = pa.table({"j": ['{"a": 1}']}, schema=pa.schema([tagged]))
    for fmt in (0, 1):  # json's binary form is its text
        fields = encode.fields_for(t.schema, [fmt])
        assert _values(encode.data_rows(t, fields)) == [[b'{"a": 1}']]
        assert encode.small_data_rows(t, fields) == encode.data_rows(t, fields)


@pytest.mark.parametrize(
    "text", ["0", "1.5", "-12345.678", "0.0001", "100000000", "123456789.000000001", "-0.5"]
)
def test_numeric_binary_round_trip(text: str) -> None:
    d = decimal.Decimal(text)
    assert _numeric_from_binary(encode.numeric_binary(d)) == d


def test_numeric_binary_matches_postgres() -> None:
    # 1.5 as PostgreSQL sends it: 2 digits, weight 0, positive, dscale 1, [1, 5000]
    assert encode.numeric_binary(decimal.Decimal("1.5")) == struct.pack(
        "!hhHhHH", 2, 0, 0, 1, 1, 5000
    )


def test_floats_and_text_escapes() -> None:
    t = pa.table({"f": [float("nan"), float("inf"), -1e20, 0.1]})
    got = [r[0] for r in _values(encode.data_rows(t, encode.fields_for(t.schema, [])))]
    assert got == [b"NaN", b"Infinity", b"-1e+20", b"0.1"]
    t = pa.table({"s": ["a\tb\\c", None], "n": [1, 2]})
    assert encode.copy_text(t) == b"a\\tb\\\\c\t1\n\\N\t2\n"
    assert encode.copy_csv(t, ["s", "n"]) == b"s,n\na\tb\\c,1\n,2\n"


def test_routes_and_splitting() -> None:
    assert split_statements("SELECT 1; SELECT ';'; -- x;\n") == ["SELECT 1", " SELECT ';'"]
    assert classify("SELECT * FROM pg_catalog.pg_class").kind == "mirror"
    assert classify("SELECT FEATURES a").kind == "engine"
    assert classify("SHOW FEATURE GROUPS").kind == "engine"
    assert classify("SHOW search_path").kind == "mirror"
    assert classify("select 1 as x").kind == "const"
    assert classify("SELECT * FROM t WHERE s = 'pg_class'").kind == "engine"
    assert classify('FETCH FORWARD 5 FROM "c"').count == 5
    assert classify("FETCH ALL IN c").count is None
    assert classify("FETCH BACKWARD 1 FROM c").kind == "unsupported"


def test_copy_routes() -> None:
    for text in ("COPY t FROM STDIN", "copy t (a, b) from stdin with (format csv)"):
        r = classify(text)
        assert (r.kind, r.error) == ("refused", "COPY ... FROM STDIN is not supported")
    assert classify("COPY t FROM '/etc/passwd'").error.startswith("COPY ... FROM a file")
    for text in ("COPY (SELECT a FROM t) TO '/tmp/x'", "COPY t TO PROGRAM 'cat'"):
        r = classify(text)
        assert r.kind == "refused" and r.error.startswith("COPY to a file is not supported")
    r = classify("COPY (SELECT a FROM t WHERE b = 'from') TO STDOUT (FORMAT csv, HEADER)")
    assert (r.kind, r.inner, r.copy_options) == (
        "copy",
        "SELECT a FROM t WHERE b = 'from'",
        {"format": "csv", "header": "true"},
    )
    # a table by name: a query built as a tree, names quoted, never spliced
    r = classify('COPY public."My fg" (k, "x y") TO STDOUT')
    assert (r.kind, r.inner) == ("copy", 'SELECT "k", "x y" FROM "public"."My fg"')
    assert classify("COPY pg_class TO STDOUT").kind == "mirror"


def test_decode_params() -> None:
    assert decode_param(b"42", 20, 0) == 42
    assert decode_param(struct.pack("!q", -7), 20, 1) == -7
    assert decode_param(b"x'y", 0, 0) == "x'y"
    assert decode_param(None, 23, 0) is None
    with pytest.raises(Exception) as e:
        decode_param(b"\xff", 25, 0)
    assert getattr(e.value, "sqlstate", None) == "22021"


ARRAY_TEXTS = [
    "a", "b c", "", None, "null", 'x"y', "NuLl", "nulls", "a,b", "{x}", "back\\slash",
    "tab\tx", "nl\nx", "cr\rx", "vt\vx", "ff\fx", "ünï", "1", "nb\u00a0sp", "NULL ",
]  # fmt: skip


def _postgresql_text(sql: str, *params: object) -> str:
    """The real PostgreSQL's text output of one value."""
    psycopg = pytest.importorskip("psycopg")
    from service_checks import require_service

    require_service("postgres")
    dsn = "host=127.0.0.1 port=5432 dbname=test user=postgres options='-c TimeZone=UTC'"
    with psycopg.connect(dsn) as c:
        row = c.execute(sql, params).fetchone()
        assert row is not None and isinstance(row[0], str)
        return row[0]


def test_text_arrays_quote_like_postgresql() -> None:
    import datetime as dt

    expected = [
        _postgresql_text("SELECT %s::text[]::text", ARRAY_TEXTS).encode(),
        _postgresql_text("SELECT ARRAY['a','b c','',NULL,'null','x\"y']::text[]::text").encode(),
        _postgresql_text("SELECT '{}'::text[]::text").encode(),
    ]
    assert expected[1] == b'{a,"b c","",NULL,"null","x\\"y"}'
    values = [ARRAY_TEXTS, ["a", "b c", "", None, "null", 'x"y'], []]
    for n in (1, 700):  # small and batch-sized results: the same bytes
        t = pa.table({"a": pa.array(values * n, pa.list_(pa.string()))})
        fields = encode.fields_for(t.schema, [0])
        assert _values(encode.data_rows(t, fields)) == [[v] for v in expected * n]
        small = encode.small_data_rows(t, fields)
        assert small is None or small == encode.data_rows(t, fields)
    # other element types: no quotes unless PostgreSQL's output has them
    others = [
        (pa.array([[1, None, -3]], pa.list_(pa.int64())), "SELECT ARRAY[1,NULL,-3]::text"),
        (pa.array([[True, False]]), "SELECT ARRAY[true,false]::text"),
        (pa.array([[dt.date(2024, 2, 29)]]), "SELECT ARRAY[DATE '2024-02-29']::text"),
        (
            pa.array([[dt.datetime(2024, 1, 1, 12, 0, 0, 500000), dt.datetime(2024, 1, 2)]]),
            "SELECT ARRAY[TIMESTAMP '2024-01-01 12:00:00.5', '2024-01-02']::text",
        ),
        (
            pa.array(
                [[dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)]], pa.list_(pa.timestamp("us", "UTC"))
            ),
            "SELECT ARRAY[TIMESTAMPTZ '2024-01-01 12:00:00+00']::text",
        ),
        (pa.array([[b"\x00\xff"]]), "SELECT ARRAY['\\x00ff'::bytea]::text"),
        (
            pa.array([[1.5, float("nan"), float("inf")]]),
            "SELECT ARRAY[1.5,'NaN','Infinity']::float8[]::text",
        ),
    ]
    for arr, sql in others:
        t = pa.table({"a": arr})
        got = _values(encode.data_rows(t, encode.fields_for(t.schema, [0])))
        assert got == [[_postgresql_text(sql).encode()]], sql
