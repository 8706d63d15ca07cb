"""Redis online store: one hash per feature-group version (``prefix +
table``), field = key string, value = ver (32 hex digits) + payload.

Writes run a Lua script that sets a field only when the new ver is not
smaller than the stored one (the same rule as every backend), batches of
1,000 rows per call. A whole-table replace writes a temporary hash and
RENAMEs it over the old one (atomic for readers). Reads are one HMGET.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis as redis_lib

from fsql.online.base import Codec, OnlineStore, OnlineStoreUnavailable, Row, split_prefix

CHUNK = 1_000
VER_LEN = 32

_UPSERT = """
local n = 0
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (not cur) or string.sub(cur, 1, 32) <= string.sub(ARGV[i + 1], 1, 32) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    n = n + 1
  end
end
return n
"""


class RedisOnlineStore(OnlineStore):
    kind = "redis"

    def __init__(self, url: str) -> None:
        url, self.prefix = split_prefix(url, default="fsql:online:")
        self.client = redis_lib.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=3, decode_responses=True
        )
        self._upsert = self.client.register_script(_UPSERT)
        self._lock = threading.RLock()

    def _key(self, table: str) -> str:
        return self.prefix + table

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError) as e:
            raise OnlineStoreUnavailable(
                f"the Redis online store failed: {e}",
                hint="Check that the server is up; `fsql materialize` repairs missed commits.",
            ) from None
        except redis_lib.ResponseError as e:
            if "LOADING" in str(e) or "shutdown" in str(e).lower():
                raise OnlineStoreUnavailable(f"the Redis online store failed: {e}") from None
            raise

    def write(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        key = self._key(table)

        def run() -> None:
            for i in range(0, len(rows), CHUNK):
                args: list[str] = []
                for k, ver, v in rows[i : i + CHUNK]:
                    args.append(k)
                    args.append(ver + v)
                self._upsert(keys=[key], args=args)

        self._call(run)

    def replace(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        key = self._key(table)
        tmp = f"{key}:tmp:{uuid.uuid4().hex}"

        def run() -> None:
            try:
                for i in range(0, len(rows), CHUNK):
                    mapping: dict[Any, Any] = {k: ver + v for k, ver, v in rows[i : i + CHUNK]}
                    self.client.hset(tmp, mapping=mapping)
                if rows:
                    self.client.rename(tmp, key)
                else:
                    self.client.delete(key)
            finally:
                try:
                    self.client.delete(tmp)
                except redis_lib.RedisError:
                    pass

        self._call(run)

    def get(self, table: str, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        found = self._call(self.client.hmget, self._key(table), list(keys))
        return [None if v is None else v[VER_LEN:] for v in found]

    batched_reads = True

    def get_groups(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[str | None]]:
        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for table, keys in requests:
                if keys:
                    pipe.hmget(self._key(table), list(keys))
            return list(pipe.execute())

        results = iter(self._call(run))
        out: list[list[str | None]] = []
        for _, keys in requests:
            values = next(results) if keys else []
            out.append([None if v is None else v[VER_LEN:] for v in values])
        return out

    def scan(self, table: str) -> Iterator[Row]:
        def run() -> list[Row]:
            return [
                (k, v[:VER_LEN], v[VER_LEN:])
                for k, v in self.client.hscan_iter(self._key(table), count=1000)
            ]

        yield from self._call(run)

    def drop(self, table: str) -> None:
        self._call(self.client.delete, self._key(table))

    def close(self) -> None:
        self.client.close()
