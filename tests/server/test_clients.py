"""Real PostgreSQL clients against ``fsql serve``: each runs plain SQL and
FSQL statements."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PASSWORD, TYPES_ROW, USER, Server

AS_OF = "SELECT FEATURES amount AS OF TIMESTAMP '2024-01-15 00:00:00'"
AS_OF_ROWS = [(1, 10.5), (2, 20.0), (3, None)]  # customer 1's February value is in the future


def psql(
    server: Server, *commands: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    args = ["psql", "-X", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose", "-A", "-F", "|"]
    for c in commands:
        args += ["-c", c]
    args.append(f"host=127.0.0.1 port={server.port} dbname=default user={USER}")
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"},
    )


# --- psql -----------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("psql") is None, reason="psql is not installed (.ci/services.sh installs it)"
)
def test_psql_plain_fsql_and_describe(pg_server: Server) -> None:
    r = psql(
        pg_server,
        "SELECT customer_id, amount FROM transactions ORDER BY customer_id, event_ts",
        AS_OF,
        r"\d transactions",
        r"\dt",
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "1|10.5\n1|30.25\n2|20\n3|\n(4 rows)" in out
    assert "customer_id|amount\n1|10.5\n2|20\n3|\n(3 rows)" in out
    # \d answered by the mirror: types, not-null key, primary key index
    assert "amount|double precision|||\n" in out
    assert "customer_id|bigint||not null|" in out
    assert "event_ts|timestamp without time zone||not null|" in out  # the event time too
    assert '"transactions_pkey" PRIMARY KEY, btree (customer_id)' in out
    assert "public|transactions|table" in out and "public|transactions_v1|table" in out


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_lists_databases_and_schemas(pg_server: Server) -> None:
    # psql 15/16 ask for pg_database.daticulocale, renamed datlocale in 17
    r = psql(pg_server, r"\l", r"\dn")
    assert r.returncode == 0 and "ERROR" not in r.stderr, r.stderr
    assert "default|" in r.stdout and "ICU Locale" in r.stdout
    assert "public|" in r.stdout


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_copy_refusals_and_copy_of_a_table(pg_server: Server, tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_text("9,x\n")
    target = tmp_path / "out.csv"
    r = psql(
        pg_server,
        "COPY transactions FROM STDIN",
        f"\\copy transactions (customer_id, name) FROM '{src}' WITH (FORMAT csv)",
        "COPY (SELECT customer_id FROM transactions) TO '/tmp/fsql-copy-refused'",
        "COPY transactions TO PROGRAM 'cat'",
        "COPY transactions (customer_id, name) TO STDOUT WITH (FORMAT csv, HEADER)",
        f"\\copy (SELECT name FROM transactions ORDER BY name) TO '{target}'",
        "SELECT count(*) AS n FROM transactions",
    )
    errors = [line for line in r.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        "ERROR:  0A000: COPY ... FROM STDIN is not supported",
        "ERROR:  0A000: COPY ... FROM STDIN is not supported",  # what \\copy FROM sends
        "ERROR:  0A000: COPY to a file is not supported: use COPY (...) TO STDOUT",
        "ERROR:  0A000: COPY to a file is not supported: use COPY (...) TO STDOUT",
    ], r.stderr
    assert "permission denied" not in r.stderr and "ClickHouse" not in r.stderr
    assert "HINT:  Use COPY (query) TO STDOUT" in r.stderr
    # COPY of a feature group by name reads the store (not the mirror's empty table)
    lines = r.stdout.splitlines()
    start = lines.index("customer_id,name")
    assert sorted(lines[start + 1 : start + 5]) == ["1,a", "1,d", "2,b", "3,c"]
    assert target.read_text() == "a\nb\nc\nd\n"  # \\copy TO a client file is TO STDOUT
    assert "n\n4\n(1 row)" in r.stdout  # nothing was loaded, the session went on
    assert not Path("/tmp/fsql-copy-refused").exists()


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_errors_and_multi_statement(pg_server: Server) -> None:
    r = psql(
        pg_server, "SELECT 1 AS a; SELECT nope FROM transactions; SELECT 2 AS b", "SELECT 3 AS c"
    )
    assert "ERROR:  42703:" in r.stderr
    assert "a\n1" not in r.stdout or "(1 row)" in r.stdout
    assert "c\n3\n(1 row)" in r.stdout  # the next query still runs
    assert "b\n2" not in r.stdout  # statements after an error in one message do not run
    r = psql(pg_server, "SELECT FEATURES no_such_feature")
    assert "ERROR:" in r.stderr
    r = psql(pg_server, "SELECT 1", password="wrong")
    assert r.returncode != 0
    assert "password authentication failed" in r.stderr


# --- psycopg 3 ------------------------------------------------------------------


def test_psycopg_simple_prepared_binary(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        rows = c.execute("SELECT customer_id, amount FROM transactions ORDER BY 1, 2").fetchall()
        assert rows == [(1, 10.5), (1, 30.25), (2, 20.0), (3, None)]
        assert c.execute(AS_OF).fetchall() == AS_OF_ROWS
        q = "SELECT name FROM transactions WHERE customer_id = %s AND name <> %s ORDER BY name"
        for _ in range(3):  # prepared server-side from the first call with prepare=True
            assert c.execute(q, (1, "a"), prepare=True).fetchall() == [("d",)]
        assert c.execute(q, (1, "d"), prepare=True).fetchall() == [("a",)]
        cur = c.cursor(binary=True)
        got = cur.execute(
            "SELECT customer_id, event_ts, amount, name FROM transactions WHERE customer_id = %s "
            "ORDER BY event_ts",
            (1,),
        ).fetchall()
        assert got == [
            (1, dt.datetime(2024, 1, 1), 10.5, "a"),
            (1, dt.datetime(2024, 2, 1), 30.25, "d"),
        ]
        assert cur.execute(AS_OF, binary=True).fetchall() == AS_OF_ROWS


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_types_text_and_binary(pg_server: Server, binary: bool) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        cur = c.cursor(binary=binary)
        rows = cur.execute("SELECT * FROM types_fg ORDER BY k").fetchall()
        assert rows[0] == TYPES_ROW
        assert rows[1] == (2,) + (None,) * (len(TYPES_ROW) - 3) + ([], [])
        oids = [d.type_code for d in cur.description or []]
        assert oids == [20, 16, 21, 23, 700, 701, 1700, 25, 1082, 1114, 1184, 1016, 1009]


def test_asyncpg_types_binary(pg_server: Server) -> None:
    import asyncpg

    async def go() -> tuple:
        c = await asyncpg.connect(
            host="127.0.0.1", port=pg_server.port, user=USER, password=PASSWORD, database="default"
        )
        try:
            return tuple(await c.fetchrow("SELECT * FROM types_fg WHERE k = $1", 1))
        finally:
            await c.close()

    assert asyncio.run(go()) == TYPES_ROW


BYTES_ROWS = [(1, b"\x00\x01\xff"), (2, None), (3, b"a\tb\\")]


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_bytea_text_and_binary(pg_server: Server, binary: bool) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        cur = c.cursor(binary=binary)
        rows = cur.execute("SELECT id, by FROM bytes_fg ORDER BY id").fetchall()
        assert rows == BYTES_ROWS
        assert [d.type_code for d in cur.description or []] == [20, 17]
        # prepared (described before it runs), one row (the row-by-row encoder)
        for _ in range(2):
            got = cur.execute("SELECT by FROM bytes_fg WHERE id = %s", (1,), prepare=True)
            assert got.fetchall() == [(b"\x00\x01\xff",)]
            assert [d.type_code for d in cur.description or []] == [17]
        # a large result takes the vectorized encoder: the same bytes come back
        big = cur.execute(
            "SELECT b.by FROM bytes_fg b, big WHERE b.id = 1 AND big.id < 1000"
        ).fetchall()
        assert big == [(b"\x00\x01\xff",)] * 1000


def test_psycopg_copy_bytea(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        q = "COPY (SELECT id, by FROM bytes_fg ORDER BY id) TO STDOUT"
        with c.cursor().copy(q) as cp:
            data = b"".join(bytes(b) for b in cp)
        # text format: bytea as \x hex with the backslash escaped, as PostgreSQL writes it
        assert data == b"1\t\\\\x0001ff\n2\t\\N\n3\t\\\\x6109625c\n"
        with c.cursor().copy(q + " WITH (FORMAT csv, HEADER)") as cp:
            data = b"".join(bytes(b) for b in cp)
        assert data == b"id,by\n1,\\x0001ff\n2,\n3,\\x6109625c\n"
        # the same bytes load back into a real PostgreSQL as bytea
        pg_dsn = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
        with psycopg.connect(pg_dsn) as pg, pg.cursor() as cur:
            cur.execute("CREATE TEMP TABLE bytes_copy (id bigint, by bytea)")
            with cur.copy("COPY bytes_copy FROM STDIN WITH (FORMAT csv, HEADER)") as cp:
                cp.write(data)
            cur.execute("SELECT id, by FROM bytes_copy ORDER BY id")
            assert cur.fetchall() == BYTES_ROWS
        # the session goes on
        assert c.execute("SELECT count(*) FROM bytes_fg").fetchone() == (3,)


def test_text_that_is_not_utf8_is_an_error_and_the_session_goes_on(pg_server: Server) -> None:
    import psycopg

    bad = [
        "SELECT char(255) AS x FROM transactions",  # ClickHouse builds a String of raw bytes
        "SELECT [char(255)] AS x FROM transactions",  # inside an array too
    ]
    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        for binary in (False, True):
            for q in bad:
                with pytest.raises(psycopg.Error) as e:
                    c.cursor(binary=binary).execute(q)
                assert e.value.sqlstate == "22021", q
        for q in (
            "COPY (" + bad[0] + ") TO STDOUT",
            "COPY (" + bad[0] + ") TO STDOUT (FORMAT csv)",
        ):
            with pytest.raises(psycopg.Error) as e, c.cursor().copy(q) as cp:
                b"".join(bytes(b) for b in cp)
            assert e.value.sqlstate == "22021"
        assert c.execute("SELECT count(*) FROM bytes_fg").fetchone() == (3,)


def test_psycopg_named_cursor(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn) as c:
        with c.cursor(name="big_cur") as cur:
            cur.itersize = 1000
            cur.execute("SELECT id, s FROM big WHERE id >= %s ORDER BY id", (10,))
            first = cur.fetchmany(5)
            assert first == [(i, f"name_{i}") for i in range(10, 15)]
            rest = cur.fetchall()
            assert len(rest) == 200_000 - 15
            assert rest[-1] == (199_999, "name_199999")
        with c.cursor(name="fsql_cur") as cur:
            cur.execute(AS_OF)
            assert cur.fetchall() == AS_OF_ROWS
        c.commit()


def test_psycopg_errors_carry_sqlstate(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT * FROM transactionz")
        assert e.value.sqlstate == "42P01"
        assert e.value.diag.message_hint and "transactions" in e.value.diag.message_hint
        with pytest.raises(psycopg.Error) as e:
            c.execute("SELECT FROM WHERE")
        assert e.value.sqlstate == "42601"
        assert e.value.diag.statement_position is not None
        # the connection is usable after errors
        assert c.execute("SELECT count(*) FROM transactions").fetchone() == (4,)
    with pytest.raises(psycopg.OperationalError) as e2:
        psycopg.connect(pg_server.dsn.replace(PASSWORD, "nope"))
    assert "password authentication failed" in str(e2.value)


def test_psycopg_copy_to_stdout(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        with c.cursor().copy(
            "COPY (SELECT customer_id, name, amount FROM transactions ORDER BY 1, 2) TO STDOUT"
        ) as cp:
            data = b"".join(bytes(b) for b in cp)
        assert data == b"1\ta\t10.5\n1\td\t30.25\n2\tb\t20\n3\tc\t\\N\n"
        with c.cursor().copy(
            "COPY (SELECT id, s FROM big ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"
        ) as cp:
            lines = b"".join(bytes(b) for b in cp).decode().splitlines()
        assert lines[0] == "id,s"
        assert lines[1:3] == ["0,name_0", "1,name_1"]
        assert len(lines) == 200_001


def test_psycopg_transactions_and_session_statements(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn) as c:  # psycopg sends BEGIN first
        assert c.execute("SELECT count(*) FROM big").fetchone() == (200_000,)
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.execute("SET application_name = 'fsql-test'")
        assert c.execute("SHOW application_name").fetchone() == ("fsql-test",)
        c.rollback()
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ver = c.execute("SELECT version()").fetchone()
        assert ver is not None and "PostgreSQL" in ver[0]
        assert c.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        c.commit()
    # clients only read the mirror
    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        for query in (
            "SELECT pg_catalog.pg_read_file('/etc/passwd')",
            "SELECT pg_catalog.pg_reload_conf()",
        ):
            with pytest.raises(psycopg.Error) as e:
                c.execute(query)
            assert e.value.sqlstate == "42501"


def test_ddl_updates_the_mirror(pg_server: Server) -> None:
    import psycopg
    import sqlalchemy as sa

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        c.execute(
            "CREATE FEATURE GROUP wire_fg (k BIGINT, ts TIMESTAMP, x DOUBLE PRECISION) "
            "PRIMARY KEY (k) EVENT TIME ts DESCRIPTION 'made over the wire'"
        )
        cur = c.execute("INSERT INTO wire_fg VALUES (1, TIMESTAMP '2024-01-01', 1.5)")
        assert cur.rowcount == 1
        assert c.execute("SELECT k, x FROM wire_fg").fetchall() == [(1, 1.5)]
        assert c.execute("SELECT obj_description('wire_fg'::regclass, 'pg_class')").fetchone() == (
            "made over the wire",
        )
    engine = sa.create_engine(pg_server.url)
    try:
        assert "wire_fg" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


# --- asyncpg, pg8000 -------------------------------------------------------------


def test_asyncpg(pg_server: Server) -> None:
    import asyncpg

    async def go() -> None:
        c = await asyncpg.connect(
            host="127.0.0.1", port=pg_server.port, user=USER, password=PASSWORD, database="default"
        )
        try:
            rows = await c.fetch(
                "SELECT customer_id, amount, event_ts FROM transactions WHERE customer_id = $1 "
                "ORDER BY event_ts",
                1,
            )
            assert [tuple(r) for r in rows] == [
                (1, 10.5, dt.datetime(2024, 1, 1)),
                (1, 30.25, dt.datetime(2024, 2, 1)),
            ]
            assert await c.fetchval("SELECT count(*) FROM transactions WHERE name = $1", "b") == 1
            assert [tuple(r) for r in await c.fetch(AS_OF)] == AS_OF_ROWS
            # an FSQL statement with an untyped parameter: typed from the feature it meets
            got = await c.fetch("SELECT FEATURES amount, name WHERE customer_id = $1", 1)
            assert [tuple(r) for r in got] == [(1, 30.25, "d")]
            # AS OF $1: typed as the event time (timestamp), described without running
            # the statement with a NULL time
            got = await c.fetch("SELECT FEATURES amount AS OF $1", dt.datetime(2024, 1, 15))
            assert [tuple(r) for r in got] == AS_OF_ROWS
            stmt = await c.prepare("SELECT FEATURES amount AS OF $1 WHERE customer_id = $2")
            assert [t.name for t in stmt.get_parameters()] == ["timestamp", "int8"]
            assert [a.name for a in stmt.get_attributes()] == ["customer_id", "amount"]
            assert [tuple(r) for r in await stmt.fetch(dt.datetime(2024, 1, 15), 1)] == [(1, 10.5)]
            # FOR SYSTEM_TIME AS OF $1: timestamptz (a commit time is an instant)
            now = dt.datetime.now(dt.UTC)
            got = await c.fetch("SELECT FEATURES amount FOR SYSTEM_TIME AS OF $1", now)
            assert sorted(tuple(r) for r in got) == [(1, 30.25), (2, 20.0), (3, None)]
            got = await c.fetch("SELECT count(*) FROM transactions FOR SYSTEM_TIME AS OF $1", now)
            assert [tuple(r) for r in got] == [(4,)]
            async with c.transaction():  # portals with a row limit
                got = [
                    r["id"] async for r in c.cursor("SELECT id FROM big ORDER BY id", prefetch=500)
                ]
            assert got == list(range(200_000))
            with pytest.raises(asyncpg.PostgresError) as e:
                await c.fetch("SELECT nope FROM transactions")
            assert e.value.sqlstate == "42703"
        finally:
            await c.close()

    asyncio.run(go())


def test_pg8000(pg_server: Server) -> None:
    import pg8000.native

    c = pg8000.native.Connection(
        USER, host="127.0.0.1", port=pg_server.port, database="default", password=PASSWORD
    )
    try:
        rows = c.run(
            "SELECT name, amount FROM transactions WHERE customer_id = :id ORDER BY name", id=1
        )
        assert rows == [["a", 10.5], ["d", 30.25]]
        assert [tuple(r) for r in c.run(AS_OF)] == AS_OF_ROWS
        assert c.run("SELECT count(*) FROM big WHERE id < :n", n=1000) == [[1000]]
        got = c.run("SELECT FEATURES amount, name WHERE customer_id = :id", id=2)
        assert [tuple(r) for r in got] == [(2, 20.0, "b")]
        got = c.run("SELECT FEATURES amount AS OF :t", t=dt.datetime(2024, 1, 15))
        assert [tuple(r) for r in got] == AS_OF_ROWS
        got = c.run("SELECT FEATURES amount FOR SYSTEM_TIME AS OF :t", t=dt.datetime.now(dt.UTC))
        assert sorted(tuple(r) for r in got) == [(1, 30.25), (2, 20.0), (3, None)]
    finally:
        c.close()


# --- SQLAlchemy and pandas over postgresql+psycopg --------------------------------


def test_sqlalchemy_inspect_and_pandas(pg_server: Server) -> None:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(pg_server.url)
    try:
        insp = sa.inspect(engine)
        assert {"transactions", "transactions_v1", "big", "big_v1"} <= set(insp.get_table_names())
        cols = {c["name"]: c for c in insp.get_columns("transactions")}
        assert isinstance(cols["amount"]["type"], sa.Float)
        assert cols["amount"]["comment"] == "money spent"
        assert cols["customer_id"]["nullable"] is False
        assert insp.get_pk_constraint("transactions")["constrained_columns"] == ["customer_id"]
        assert insp.get_table_comment("transactions")["text"] == "rolling transaction aggregates"
        with engine.connect() as c:
            t = sa.Table("transactions", sa.MetaData(), autoload_with=c)
            got = c.execute(
                sa.select(t.c.name).where(t.c.amount > 15).order_by(t.c.name)
            ).fetchall()
            assert got == [("b",), ("d",)]
        df = pd.read_sql("SELECT * FROM transactions ORDER BY customer_id, event_ts", engine)
        assert list(df.columns) == ["customer_id", "event_ts", "amount", "name"]
        assert df["name"].tolist() == ["a", "d", "b", "c"]
        df = pd.read_sql(sa.text(AS_OF), engine)
        assert df["customer_id"].tolist() == [1, 2, 3]
        assert df["amount"].tolist()[:2] == [10.5, 20.0]
    finally:
        engine.dispose()


# --- JDBC ----------------------------------------------------------------------------

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
JAVA_SRC = Path(__file__).parent / "java" / "JdbcSmoke.java"


@pytest.mark.skipif(
    shutil.which("javac") is None or not JDBC_JAR.exists(),
    reason="Java 17 and libpostgresql-jdbc-java are not installed (.ci/services.sh installs them)",
)
def test_jdbc(pg_server: Server, tmp_path: Path) -> None:
    subprocess.run(["javac", "-d", str(tmp_path), str(JAVA_SRC)], check=True, timeout=120)
    r = subprocess.run(
        [
            "java", "-cp", f"{JDBC_JAR}:{tmp_path}", "JdbcSmoke",
            f"jdbc:postgresql://127.0.0.1:{pg_server.port}/default", USER, PASSWORD, AS_OF,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pk=customer_id" in r.stdout
    assert "prepared=a/10.5,d/30.25" in r.stdout
    assert "fsql_columns=2 fsql_rows=3" in r.stdout
    assert "error_state=42703" in r.stdout
    assert r.stdout.strip().endswith("OK")


# --- the session's PostgreSQL identity -----------------------------------------

_WHO = (
    "SELECT current_user, session_user,"
    " (SELECT usename FROM pg_stat_activity WHERE pid = pg_backend_pid())"
)


def test_psycopg_scram_user_is_the_session_identity(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        assert c.execute(_WHO).fetchone() == (USER, USER, USER)
        assert c.execute("SHOW session_authorization").fetchone() == (USER,)
        assert c.info.parameter_status("session_authorization") == USER
        # a role of fsql's: no privileges beyond reading the mirror
        assert c.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, pg_has_role(current_user, "
            "'fsql_client', 'MEMBER') FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False, False, False, True)
        assert c.execute(
            "SELECT has_table_privilege('public.transactions', 'SELECT'),"
            " has_table_privilege('public.transactions', 'INSERT'),"
            " current_setting('default_transaction_read_only')"
        ).fetchone() == (True, False, "on")
        # \d still works as that user
        assert c.execute(
            "SELECT count(*) FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r"
            " ON r.oid = a.attrelid WHERE r.relname = 'transactions' AND a.attnum > 0"
        ).fetchone() == (4,)
        with pytest.raises(psycopg.Error) as e:
            c.execute("SET SESSION AUTHORIZATION postgres")
        assert e.value.sqlstate == "42501"
        assert c.execute(_WHO).fetchone() == (USER, USER, USER)


def test_psycopg_trust_any_name_is_the_session_identity(tmp_path: Path) -> None:
    import psycopg
    import pyarrow as pa

    import fsql

    from .conftest import start_server

    path = tmp_path / "store"
    store = fsql.connect(path)
    try:
        store.create_feature_group("t", pa.table({"k": [1, 2]}), primary_key="k")
    finally:
        store.close()
    server = start_server(path, "--auth", "trust")

    def connect(user: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=server.port, dbname="default", user=user, autocommit=True
        )

    try:
        for user in ("bob", 'Wé"ird Name; DROP ROLE x', "bob"):  # bob again: its role exists
            with connect(user) as c:
                assert c.execute(_WHO).fetchone() == (user, user, user)
                assert c.execute("SHOW session_authorization").fetchone() == (user,)
                assert c.execute("SELECT k FROM t ORDER BY k").fetchall() == [(1,), (2,)]
                assert c.execute(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone() == (False,)
        # a name that is a mirror role fsql did not make (its superuser) or
        # that PostgreSQL reserves: the session keeps fsql_client's identity
        for user in ("postgres", "pg_monitor", "public"):
            with connect(user) as c:
                who = c.execute("SELECT current_user, session_user").fetchone()
                assert who == ("fsql_client", "fsql_client")
                assert c.execute(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone() == (False,)
                with pytest.raises(psycopg.Error) as e:
                    c.execute("SELECT pg_catalog.pg_reload_conf()")
                assert e.value.sqlstate == "42501"
                assert c.execute("SELECT k FROM t WHERE k = 2").fetchall() == [(2,)]
    finally:
        server.stop()


def test_psycopg_prepared_syntax_error_comes_at_prepare(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        for text, position in (
            ("SELECT amount FROM transactions WHERE customer_id = %s AND", 59),  # end of input
            ("SELECT FEATURES amount WHERE customer_id = %s AS OF", 47),  # FSQL
        ):
            for _ in range(2):  # the outcome is cached per text: the same error again
                with pytest.raises(psycopg.errors.SyntaxError) as e:
                    c.execute(text, (1,), prepare=True)
                assert e.value.sqlstate == "42601"
                assert e.value.diag.statement_position == str(position)
                assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        q = "SELECT amount FROM transactions WHERE customer_id = %s"
        assert c.execute(q, (2,), prepare=True).fetchall() == [(20.0,)]
        assert c.execute(q, (2,), prepare=True).fetchall() == [(20.0,)]


def test_text_arrays_over_the_wire_read_as_postgresql_writes_them(pg_server: Server) -> None:
    import psycopg
    from psycopg.types.string import TextLoader
    from service_checks import require_service

    require_service("postgres")

    def as_text(c: psycopg.Connection) -> None:
        for oid in (1009, 1016):  # text[] and bigint[] read as their text
            c.adapters.register_loader(oid, TextLoader)

    with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres") as pg:
        as_text(pg)
        expected = pg.execute(
            "SELECT ARRAY['a b', 'c,d', NULL, '']::text[], ARRAY[1, NULL, 3]::bigint[]"
            " UNION ALL SELECT '{}'::text[], '{}'::bigint[]"
        ).fetchall()
    assert expected[0] == ('{"a b","c,d",NULL,""}', "{1,NULL,3}")
    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        as_text(c)
        assert c.execute("SELECT at, ai FROM types_fg ORDER BY k").fetchall() == expected
        # an array the engine computes
        got = c.execute(
            "SELECT ARRAY['a', 'b c', '', NULL, 'null', 'x\"y'] AS x FROM types_fg LIMIT 1"
        ).fetchone()
        assert got == ('{a,"b c","",NULL,"null","x\\"y"}',)
