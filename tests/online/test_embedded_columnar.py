"""The embedded store's columnar copy (batch lookups) under many writes:
appended chunks, compaction, rebuilds after mostly-superseded rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fsql.catalog.records import Feature, FeatureGroup
from fsql.online.base import Codec, ver_of
from fsql.online.embedded import EmbeddedOnlineStore


def test_take_agrees_with_single_lookups_under_many_writes(tmp_path: Path) -> None:
    fg = FeatureGroup(
        id=1,
        project="p",
        name="g",
        version=1,
        kind="cached",
        description="",
        primary_key=("k",),
        event_time=None,
        online=True,
        has_upserts=False,
        features=(Feature("k", "bigint"), Feature("x", "double precision"), Feature("s", "text")),
        created_at_us=0,
    )
    codec = Codec(fg)
    store = EmbeddedOnlineStore(tmp_path / "online.sqlite")
    try:
        rows = pa.table({"k": [0, 1, 2], "x": [0.0, 1.0, 2.0], "s": ["a", "b", "c"]})
        store.write(codec.table, codec.encode(rows, [0, 0, 0], [1, 1, 1]), codec)
        expected: dict[int, tuple[float, str]] = {0: (0.0, "a"), 1: (1.0, "b"), 2: (2.0, "c")}
        keys = list(range(8))
        for commit in range(2, 400):
            k = commit % 7
            one = pa.table({"k": [k], "x": [float(commit)], "s": [f"v{commit}"]})
            store.write(codec.table, codec.encode(one, [0], [commit]), codec)
            # an older version of the same key never wins
            old = pa.table({"k": [k], "x": [-1.0], "s": ["old"]})
            store.write(
                codec.table,
                [(*codec.encode(old, [0], [1])[0][:1], ver_of(0, 1), '[-1.0,"old"]')],
                codec,
            )
            expected[k] = (float(commit), f"v{commit}")
            got = store.take(codec, keys)
            assert got is not None
            assert got.column("x").to_pylist() == [
                expected[i][0] if i in expected else None for i in keys
            ]
            assert got.column("s").to_pylist() == [
                expected[i][1] if i in expected else None for i in keys
            ]
            assert [store.lookup_one(codec, i) for i in keys] == [expected.get(i) for i in keys]
        cache = store._caches[codec.table]
        assert cache.arrow is not None and cache.arrow.column(0).num_chunks <= 65
    finally:
        store.close()
