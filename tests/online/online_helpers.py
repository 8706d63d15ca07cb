"""Helpers of the online-store tests: backend URLs, cleanup of test prefixes,
stopping and restarting the local Redis server."""

from __future__ import annotations

import subprocess
import time

from service_checks import require_service, service_up  # noqa: F401

BACKENDS = ["embedded", "postgres", "mariadb", "redis"]
SERVER_BACKENDS = ["postgres", "mariadb", "redis"]

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql://root@127.0.0.1:3306/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def online_url(backend: str, prefix: str) -> str:
    if backend == "embedded":
        return "embedded"
    base = {"postgres": PG_URL, "mariadb": MARIADB_URL, "redis": REDIS_URL}[backend]
    return f"{base}?prefix={prefix}"


def cleanup(backend: str, prefix: str) -> None:
    if backend == "postgres" and service_up("postgres"):
        import psycopg
        from psycopg import sql

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND starts_with(tablename, %s)",
                    (prefix,),
                )
            ]
            for n in names:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(n)))
    elif backend == "mariadb" and service_up("mariadb"):
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", password="", database="test")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'test' AND LEFT(table_name, %s) = %s",
                    (len(prefix), prefix),
                )
                for (n,) in cur.fetchall():
                    cur.execute("DROP TABLE IF EXISTS `" + n.replace("`", "``") + "`")
        finally:
            conn.close()
    elif backend == "redis" and service_up("redis"):
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.delete(key)
        finally:
            client.close()


# --------------------------------------------------------------------------
# stopping and restarting the local Redis server (other tests use it: always
# restart it)

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def stop_redis() -> None:
    subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=30)
    for _ in range(100):
        if not service_up("redis"):
            return
        time.sleep(0.05)
    raise RuntimeError("redis did not stop")


def start_redis() -> None:
    if service_up("redis"):
        return
    subprocess.run(REDIS_START, capture_output=True, timeout=30)
    for _ in range(200):
        if service_up("redis"):
            out = subprocess.run(["redis-cli", "ping"], capture_output=True, text=True)
            if "PONG" in out.stdout:
                return
        time.sleep(0.05)
    raise RuntimeError("redis did not restart")
