"""Results stream from the engine to the client in record batches: the
server's peak memory does not grow with the size of a result (COPY, a
named cursor, an unlimited Execute), a row-limited Execute suspends a
streaming portal as PostgreSQL does, an error mid-stream ends the statement
after the rows sent, a cancel stops a streaming query, a client that goes
away mid-stream gives its engine session back, and an oversized query is
53200 for that statement only."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

import fsql
from fsql.server import auth

from .conftest import PASSWORD, USER, Server, free_port, start_server
from .rawclient import Raw, cstr, data_rows, error_fields, msg

MiB = 1 << 20
QUERY = "SELECT number AS id, number / 7.0 AS v, 'customer_' || number::text AS s FROM numbers({n})"
# fast for its first 100,000 rows, then about one row per billion numbers
SLOW_AFTER = (
    "SELECT number FROM numbers(100000000000) WHERE number < 100000 OR number % 1000000007 = 0"
)
FAILS_AT = "SELECT number, throwIf(number = 2000000, 'boom') AS t FROM numbers(3000000)"  # XX000
OVERSIZED = "SELECT number % 1000000 AS k, array_agg(number) AS a FROM numbers(20000000) GROUP BY 1"


def _store(path: Path) -> Path:
    store = fsql.connect(path)
    try:
        auth.set_password(store.catalog, USER, PASSWORD)
    finally:
        store.close()
    return path


@pytest.fixture
def mem_server(tmp_path: Path) -> Iterator[Server]:
    """A fresh server for each memory test: memory an earlier result took
    stays with the process and would hide growth."""
    server = start_server(_store(tmp_path / "store"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose queries may use at most 64 MiB of engine memory."""
    path = _store(tmp_path_factory.mktemp("streaming") / "store")
    server = start_server(path, "--query-memory-limit", "64MiB")
    try:
        yield server
    finally:
        server.stop()


class Peak:
    """The peak RSS of a process while the block runs (polled every 5 ms)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._done = threading.Event()

    def __enter__(self) -> Peak:
        self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def _copy(dsn: str, n: int) -> int:
    lines = 0
    with (
        psycopg.connect(dsn, autocommit=True) as c,
        c.cursor().copy(f"COPY ({QUERY.format(n=n)}) TO STDOUT") as cp,
    ):
        for data in cp:
            lines += bytes(data).count(b"\n")
    return lines


def _named_cursor(dsn: str, n: int) -> int:
    rows = 0
    with psycopg.connect(dsn) as c, c.cursor(name="big") as cur:
        cur.itersize = 10_000
        cur.execute(QUERY.format(n=n))
        while batch := cur.fetchmany(10_000):
            rows += len(batch)
    return rows


def _unlimited_execute(dsn: str, n: int) -> int:
    # psycopg's stream(): one Execute without a row limit, rows read as they come
    with psycopg.connect(dsn, autocommit=True) as c:
        return sum(1 for _ in c.cursor().stream(QUERY.format(n=n)))


def _peaks(server: Server, read: Callable[[str, int], int], small: int, large: int) -> list[int]:
    read(server.dsn, 1000)  # warm up
    base = psutil.Process(server.proc.pid).memory_info().rss
    peaks = [base]
    for n in (small, large):
        with Peak(server.proc.pid) as p:
            assert read(server.dsn, n) == n
        peaks.append(p.peak)
    print(
        f"{read.__name__}: server RSS {base // MiB} MiB, peak while reading {small:,} rows "
        f"{peaks[1] // MiB} MiB, {large:,} rows {peaks[2] // MiB} MiB"
    )
    return peaks


def test_copy_to_stdout_memory_does_not_grow_with_rows(mem_server: Server) -> None:
    # materialized, the 12M-row COPY peaked ~660 MB above the 3M-row one
    base, small, large = _peaks(mem_server, _copy, 3_000_000, 12_000_000)
    assert large - small < 150 * MiB
    assert large - base < 300 * MiB


@pytest.mark.parametrize("read", [_named_cursor, _unlimited_execute])
def test_select_memory_does_not_grow_with_rows(
    mem_server: Server, read: Callable[[str, int], int]
) -> None:
    # materialized, 6M rows peaked ~360 MB above 1.5M rows
    base, small, large = _peaks(mem_server, read, 1_500_000, 6_000_000)
    assert large - small < 150 * MiB
    assert large - base < 300 * MiB


# --- the protocol around a stream ---------------------------------------------


def _raw(server: Server) -> Raw:
    raw = Raw(server.port, timeout=60)
    assert raw.login(USER, PASSWORD)[-1][0] == b"Z"
    return raw


def _parse_bind(text: str) -> bytes:
    return msg(b"P", cstr("") + cstr(text) + struct.pack("!h", 0)) + msg(
        b"B", cstr("") + cstr("") + struct.pack("!hhh", 0, 0, 0)
    )


def _execute(limit: int) -> bytes:
    return msg(b"E", cstr("") + struct.pack("!i", limit)) + msg(b"H")


def _until(raw: Raw, kinds: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    while True:
        k, body = raw.read()
        out.append((k, body))
        if k in kinds:
            return out


def test_a_row_limit_suspends_a_streaming_portal(limited: Server) -> None:
    raw = _raw(limited)
    try:
        raw.send(_parse_bind("SELECT number FROM numbers(300000)") + _execute(100_000))
        got: list[int] = []
        ends = []
        for _ in range(4):
            replies = _until(raw, b"sCE")
            got += [int(r[0] or b"-1") for r in data_rows(replies)]
            ends.append(replies[-1])
            if replies[-1][0] != b"s":
                break
            raw.send(_execute(100_000))
        # suspended whenever the limit was reached; the Execute after the
        # last full one completes with no rows (as PostgreSQL does)
        assert [k for k, _ in ends] == [b"s", b"s", b"s", b"C"]
        assert ends[-1][1] == b"SELECT 300000\0"
        assert got == list(range(300_000))
        raw.send(msg(b"S"))
        assert raw.until(b"Z")[-1] == (b"Z", b"I")
    finally:
        raw.close()


def test_an_empty_result_is_described(limited: Server) -> None:
    query = "SELECT number AS n, number::text AS t FROM numbers(10) WHERE number > 100"
    with psycopg.connect(limited.dsn, autocommit=True) as c:
        cur = c.execute(query)
        assert [d.name for d in cur.description or []] == ["n", "t"]
        assert cur.fetchall() == []
    raw = _raw(limited)
    try:
        replies = raw.query(query)
        assert [k for k, _ in replies] == [b"T", b"C", b"Z"]
        assert replies[1][1] == b"SELECT 0\0"
    finally:
        raw.close()


def test_fetch_and_move_read_a_streaming_cursor(limited: Server) -> None:
    with psycopg.connect(limited.dsn) as c, c.cursor(name="c") as cur:
        cur.itersize = 5000
        cur.execute("SELECT number FROM numbers(1000000)")
        assert cur.fetchone() == (0,)
        cur.scroll(99_999)  # MOVE forward
        assert cur.fetchmany(2) == [(100_000,), (100_001,)]
        rest = cur.fetchall()
        assert len(rest) == 1_000_000 - 100_002 and rest[-1] == (999_999,)


def test_an_error_mid_stream_comes_after_the_rows_sent(limited: Server) -> None:
    raw = _raw(limited)
    try:
        replies = raw.query(FAILS_AT)
        kinds = [k for k, _ in replies]
        assert kinds[0] == b"T" and kinds[-2:] == [b"E", b"Z"]
        assert 0 < kinds.count(b"D") <= 2_000_000
        assert "boom" in error_fields(replies[-2][1])["M"]
        again = raw.query("SELECT count(*) FROM numbers(7)")
        assert data_rows(again) == [[b"7"]]
    finally:
        raw.close()
    with psycopg.connect(limited.dsn, autocommit=True) as c:
        got = 0
        with pytest.raises(psycopg.Error) as e:
            for _ in c.cursor().stream(FAILS_AT):
                got += 1
        assert e.value.sqlstate == "XX000" and 0 < got <= 2_000_000
        lines = 0
        with pytest.raises(psycopg.Error), c.cursor().copy(f"COPY ({FAILS_AT}) TO STDOUT") as cp:
            for data in cp:
                lines += bytes(data).count(b"\n")
        assert 0 < lines <= 2_000_000
        assert c.execute("SELECT count(*) FROM numbers(5)").fetchone() == (5,)


def test_a_cancel_stops_a_streaming_query(limited: Server) -> None:
    with psycopg.connect(limited.dsn, autocommit=True) as c:
        got = 0
        canceled_at = None
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            for _ in c.cursor().stream(SLOW_AFTER):
                got += 1
                if got == 50_000:
                    canceled_at = time.monotonic()
                    c.cancel_safe()
        # the rows the engine has handed out are sent while it works on
        # (the rest of this query takes minutes)
        assert canceled_at is not None and canceled_at - started < 10
        assert time.monotonic() - canceled_at < 5
        assert 50_000 <= got <= 100_001
        assert c.execute("SELECT count(*) FROM numbers(5)").fetchone() == (5,)


def test_an_oversized_query_ends_only_its_statement_with_53200(limited: Server) -> None:
    with psycopg.connect(limited.dsn, autocommit=True) as c:
        with pytest.raises(psycopg.Error) as e:
            c.execute(OVERSIZED).fetchall()
        assert e.value.sqlstate == "53200"
        assert c.execute("SELECT count(*) FROM numbers(5)").fetchone() == (5,)
        with pytest.raises(psycopg.Error) as e, c.cursor().copy(f"COPY ({OVERSIZED}) TO STDOUT"):
            pass
        assert e.value.sqlstate == "53200"
        # a large result streams within the same 64 MiB
        assert _copy(limited.dsn, 3_000_000) == 3_000_000
        assert c.execute("SELECT count(*) FROM numbers(6)").fetchone() == (6,)
    raw = _raw(limited)
    try:
        replies = raw.query(OVERSIZED)
        assert error_fields(replies[-2][1])["C"] == "53200" and replies[-1][0] == b"Z"
    finally:
        raw.close()
    with psycopg.connect(limited.dsn) as c, c.cursor(name="o") as cur:
        with pytest.raises(psycopg.Error) as e:
            cur.execute(OVERSIZED)
            cur.fetchall()
        assert e.value.sqlstate == "53200"
    assert limited.alive()


# --- a client that goes away mid-stream ---------------------------------------


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[tuple[fsql.Store, int]]:
    """A server in this process (trust auth), so the engine's session pool
    can be looked at."""
    from fsql.connectors import secrets
    from fsql.server.server import Server as WireServer
    from fsql.server.server import ServerConfig

    store = fsql.connect(tmp_path / "store")
    server = WireServer(store, ServerConfig(port=free_port(), auth="trust"))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    try:
        server.prepare()
        thread.start()
        assert started.wait(60)
        yield store, server.port
    finally:
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(60)
        server.mirror.stop()
        store.close()
        secrets.POLICY.unrestrict()


def _busy(store: fsql.Store) -> int:
    """Engine sessions taken from the embedded engine's pool."""
    return len(store.engine._busy)  # type: ignore[attr-defined]


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


@pytest.mark.parametrize("how", ["simple", "suspended portal", "cursor"])
def test_a_client_gone_mid_stream_gives_the_engine_session_back(
    in_process: tuple[fsql.Store, int], how: str
) -> None:
    store, port = in_process
    raw = Raw(port, timeout=30)
    try:
        assert raw.login("someone", "")[-1][0] == b"Z"
        big = "SELECT number FROM numbers(1000000000)"
        if how == "simple":
            raw.send(msg(b"Q", cstr(big)))
            kinds = [raw.read()[0] for _ in range(1000)]  # some rows, then stop reading
            assert kinds[0] == b"T" and kinds[-1] == b"D"
        elif how == "suspended portal":
            raw.send(_parse_bind(big) + _execute(1000))
            assert _until(raw, b"sCE")[-1][0] == b"s"
        else:
            raw.query("BEGIN")
            raw.query(f"DECLARE c CURSOR FOR {big}")
            assert len(data_rows(raw.query("FETCH 1000 FROM c"))) == 1000
        assert _eventually(lambda: _busy(store) == 1)  # the stream holds a session
    finally:
        raw.close()  # no Terminate: the socket just closes
    assert _eventually(lambda: _busy(store) == 0)
