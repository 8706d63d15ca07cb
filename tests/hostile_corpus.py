"""Hostile statements: what a logged-in user might try to reach through the
engine (host files, the environment, other databases, local ports, engine
tables and statements), in every spelling and position fsql accepts a
relation or an expression. Shared by the Python route
(tests/bind/test_confinement.py) and the wire routes
(tests/server/test_confinement_wire.py).

Each case is (statement, expected SQLSTATEs). A canary file, a canary
environment variable and a local listener prove nothing leaked or was
reached: :class:`Canaries`.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

REFUSED = {"42501", "42883", "42P01", "0A000", "42601", "42703"}


@dataclass
class Canaries:
    file: Path
    file_token: str
    env_name: str
    env_token: str
    port: int
    connections: list[tuple[str, int]] = field(default_factory=list)
    _sock: socket.socket | None = None

    @classmethod
    def start(cls, folder: Path) -> Canaries:
        file_token = "canaryfile" + secrets.token_hex(8)
        env_token = "canaryenv" + secrets.token_hex(8)
        file = folder / "canary.txt"
        file.write_text(file_token + "\n")
        env_name = "FSQL_CANARY_" + secrets.token_hex(4).upper()
        os.environ[env_name] = env_token
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(0.2)
        found = cls(file, file_token, env_name, env_token, sock.getsockname()[1], [], sock)
        threading.Thread(target=found._accept, daemon=True).start()
        return found

    def _accept(self) -> None:
        assert self._sock is not None
        while self._sock is not None:
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(addr)
            conn.close()

    def stop(self) -> None:
        os.environ.pop(self.env_name, None)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def leaked(self, text: str) -> bool:
        return self.file_token in text or self.env_token in text


def _spellings(name: str) -> list[str]:
    """How a user may spell a function name: quoted, quoted in upper or
    mixed case, and bare where the parser takes it."""
    return [f'"{name}"', f'"{name.upper()}"', f'"{name[0].upper()}{name[1:]}"', name]


def table_payloads(c: Canaries, store_folder: Path) -> list[str]:
    """Relations that must never be read."""
    port = c.port
    calls = {
        "file": [f"'{c.file}', 'LineAsString'", "'/proc/self/environ', 'RawBLOB'"],
        "url": [f"'http://127.0.0.1:{port}/x', 'CSV', 'a String'"],
        "sqlite": [f"'{store_folder / 'catalog.sqlite'}', 'server_users'"],
        "mysql": ["'127.0.0.1:3306', 'mysql', 'user', 'root', ''"],
        "postgresql": ["'127.0.0.1:5432', 'postgres', 'pg_authid', 'postgres', ''"],
        "merge": ["'fsql_default', '.*'"],
        "remote": [f"'127.0.0.1:{port}', 'system', 'one'"],
        "s3": [f"'http://127.0.0.1:{port}/bucket/x.csv', 'CSV'"],
        "executable": ["'cat /etc/passwd', 'LineAsString', 'x String'"],
        "input": ["'x String'"],
        "view": ["SELECT 1"],
        "hdfs": [f"'hdfs://127.0.0.1:{port}/x', 'CSV'"],
    }
    out = []
    for fn, arg_lists in calls.items():
        for args in arg_lists:
            for spelled in _spellings(fn):
                out.append(f"{spelled}({args})")
    engine_tables = [
        "system.tables",
        '"system"."processes"',
        "system.disks",
        "SYSTEM.one",
        "INFORMATION_SCHEMA.tables",
        "information_schema.columns",
        "fsql_default.tx_v1",
        '"fsql_default"."tx_v1"',
        "fsql_other.secret_v1",
        "default.t",
        "fsqltmp_on_demand.x",
        "nowhere.t",
    ]
    return out + engine_tables


def scalar_payloads(c: Canaries) -> list[str]:
    """Expressions that must never be evaluated by the engine."""
    return [
        *(f"{s}('{c.file}')" for s in _spellings("file")),
        "\"getSetting\"('max_threads')",
        "getsetting('max_threads')",
        '"hostName"()',
        '"currentDatabase"()',
        "\"hasColumnInTable\"('system', 'tables', 'name')",
        '"tcpPort"()',
        "\"dictGet\"('d', 'x', 1)",
        f"\"getMacro\"('{c.env_name}')",
    ]


def relation_statements(rel: str) -> list[str]:
    """Every position a relation can take."""
    return [
        f"SELECT * FROM {rel}",
        f"SELECT * FROM {rel} AS r",
        f"SELECT * FROM (SELECT * FROM {rel}) AS s",
        f"WITH c AS (SELECT * FROM {rel}) SELECT * FROM c",
        f"SELECT * FROM tx JOIN {rel} AS r ON true",
        f"SELECT k FROM tx UNION ALL SELECT 1 FROM {rel}",
        f"SELECT * FROM tx WHERE k IN (SELECT 1 FROM {rel})",
        f"SELECT (SELECT count(*) FROM {rel})",
        f"SELECT * FROM tx WHERE EXISTS (SELECT 1 FROM {rel})",
        f"INSERT INTO tx SELECT * FROM {rel}",
        f"CREATE FEATURE GROUP evil PRIMARY KEY (k) EVENT TIME ts AS SELECT * FROM {rel}",
        f"CREATE TRAINING DATASET evil AS SELECT * FROM {rel}",
        f"SELECT FEATURES amount FROM {rel} AS s AS OF s.ts",
        f"SELECT FEATURES amount WHERE k IN (SELECT 1 FROM {rel})",
        f"EXPLAIN SELECT * FROM {rel}",
    ]


def scalar_statements(expr: str) -> list[str]:
    """Every position an expression can take."""
    return [
        f"SELECT {expr}",
        f"SELECT * FROM tx WHERE {expr} IS NOT NULL",
        f"SELECT k, {expr} FROM tx",
        f"SELECT FEATURES amount WHERE k = length({expr})",
        f"INSERT INTO tx VALUES (3, TIMESTAMP '2024-01-01', length({expr}))",
        f"SELECT * FROM tx FOR SYSTEM_TIME AS OF {expr}",
        f"SELECT FEATURES amount AS OF {expr}",
    ]


ENGINE_STATEMENTS = [
    "DROP TABLE fsql_default.tx_v1",
    "DROP TABLE tx_v1",
    "DROP DATABASE fsql_default",
    "TRUNCATE tx",
    "TRUNCATE TABLE fsql_default.tx_v1",
    "ALTER TABLE tx DELETE WHERE true",
    "ALTER TABLE fsql_default.tx_v1 DROP COLUMN amount",
    "DELETE FROM tx",
    "DELETE FROM fsql_default.tx_v1 WHERE true",
    "UPDATE tx SET amount = 0",
    "CREATE TABLE t (a int)",
    "CREATE TABLE fsql_default.t (a int)",
    "CREATE VIEW v AS SELECT * FROM tx",
    "CREATE VIEW fsql_default.v AS SELECT 1",
    "INSERT INTO fsql_default.tx_v1 VALUES (9, TIMESTAMP '2024-01-01', 9.0)",
    "INSERT INTO system.one VALUES (1)",
    "SELECT * FROM tx SETTINGS max_memory_usage = 1",
    "SELECT 1 FORMAT JSON",
    "SELECT * INTO stolen FROM tx",
    "ATTACH TABLE x FROM '/etc'",
    "SYSTEM DROP DNS CACHE",
    "OPTIMIZE TABLE tx FINAL",
    "KILL QUERY WHERE 1",
    "RENAME TABLE tx TO tx2",
    "DETACH TABLE tx",
]


def corpus(c: Canaries, store_folder: Path) -> list[str]:
    out: list[str] = []
    for rel in table_payloads(c, store_folder):
        out += relation_statements(rel)
    for expr in scalar_payloads(c):
        out += scalar_statements(expr)
    out += ENGINE_STATEMENTS
    return out
