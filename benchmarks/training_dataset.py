"""Training-dataset benchmark: a point-in-time training dataset of 1,000,000
spine rows and 10 features, written as parquet and as tfrecord.

Setup (not timed): a feature group ``feats`` (10 features: 6 doubles, 3
ints, 1 text) with 5 rows per entity over 200,000 entities, and a spine
feature group ``labels`` of 1,000,000 (entity, time, label) rows.

Timed: ``CREATE TRAINING DATASET ... AS SELECT FEATURES f0..f9, labels.label
FROM labels AS OF labels.ts WITH (format = ..., splits = 'train:0.8,test:0.2',
seed = 7)``, split into the point-in-time join (the query), splitting,
statistics, writing (encode + checksum + files) and catalog registration.

References measured in the same run, on the same joined rows:
- parquet: ``pyarrow.parquet.write_table`` of the whole table;
- tfrecord: the ``tfrecord`` package's writer (protobuf per row), timed on
  the first ``--reference-rows`` rows (it is slow) and reported as rows/s.

    python benchmarks/training_dataset.py [--rows 1000000] [--entities 200000]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def feature_table(entities: int, per_entity: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = entities * per_entity
    eid = np.repeat(np.arange(entities, dtype=np.int64), per_entity)
    step = np.tile(np.arange(per_entity, dtype=np.int64), entities)
    base = np.datetime64("2024-01-01T00:00:00", "us")
    ts = base + (step * 86_400 * 1_000_000 * 7 + eid % 86_400 * 1_000_000).astype("timedelta64[us]")
    cols: dict[str, object] = {"eid": eid, "ts": pa.array(ts)}
    for i in range(6):
        cols[f"f{i}"] = rng.normal(i, 1.0 + i, n)
    for i in range(6, 9):
        cols[f"f{i}"] = rng.integers(0, 1000 * i, n, dtype=np.int64)
    cols["f9"] = pa.array(["US", "GB", "DE", "FR", "CA", "BR"]).take(
        pa.array(rng.integers(0, 6, n))
    )
    return pa.table(cols)


def spine_table(rows: int, entities: int, seed: int = 2) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = np.datetime64("2024-01-01T00:00:00", "us")
    # spine times spread over the feature history (and a little before it)
    offsets = rng.integers(-86_400, 86_400 * 7 * 5, rows).astype(np.int64) * 1_000_000
    # unique (eid, ts): the spine is a feature group keyed by both
    eid = rng.integers(0, entities, rows, dtype=np.int64)
    ts = base + (offsets + np.arange(rows, dtype=np.int64)).astype("timedelta64[us]")
    return pa.table(
        {"eid": eid, "ts": pa.array(ts), "label": rng.integers(0, 2, rows, dtype=np.int64)}
    )


def reference_tfrecord(table: pa.Table, rows: int) -> float:
    """Rows/s of the ``tfrecord`` package's protobuf writer."""
    from tfrecord.writer import TFRecordWriter

    part = table.slice(0, rows).to_pylist()
    kinds = {}
    for f in table.schema:
        if pa.types.is_floating(f.type):
            kinds[f.name] = "float"
        elif pa.types.is_string(f.type):
            kinds[f.name] = "byte"
        else:
            kinds[f.name] = "int"
    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as tmp:
        writer = TFRecordWriter(tmp.name)
        start = time.perf_counter()
        for row in part:
            datum = {}
            for k, v in row.items():
                if v is None:
                    continue
                if kinds[k] == "byte":
                    v = v.encode()
                elif hasattr(v, "timestamp"):
                    v = int(v.timestamp() * 1_000_000)
                datum[k] = (v, kinds[k])
            writer.write(datum)
        writer.close()
        elapsed = time.perf_counter() - start
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--per-entity", type=int, default=5)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    args = parser.parse_args()

    import fsql

    folder = Path(tempfile.mkdtemp(prefix="fsql-bench-td-"))
    out: dict[str, object] = {
        "benchmark": "training_dataset",
        "spine_rows": args.rows,
        "features": 10,
        "feature_rows": args.entities * args.per_entity,
    }
    with fsql.connect(folder / "store") as store:
        start = time.perf_counter()
        store.create_feature_group(
            "feats",
            feature_table(args.entities, args.per_entity),
            primary_key="eid",
            event_time="ts",
        )
        store.create_feature_group(
            "labels", spine_table(args.rows, args.entities), primary_key=["eid", "ts"]
        )
        out["setup_s"] = round(time.perf_counter() - start, 3)
        features = ", ".join(f"feats.f{i}" for i in range(10))
        query = f"SELECT FEATURES {features}, labels.label FROM labels AS OF labels.ts"
        results = {}
        joined = None
        for fmt in ("parquet", "tfrecord"):
            start = time.perf_counter()
            handle = store.create_training_dataset(
                f"bench_{fmt}", query, format=fmt, splits="train:0.8,test:0.2", seed=7
            )
            total = time.perf_counter() - start
            t = handle.build_timings
            size = sum(f["bytes"] for f in handle.record.files)
            results[fmt] = {
                "rows": handle.row_count,
                "total_s": round(total, 3),
                "rows_per_s": round(handle.row_count / total),
                "join_s": round(t["query_s"], 3),
                "split_s": round(t["split_s"], 3),
                "stats_s": round(t["stats_s"], 3),
                "write_s": round(t["write_s"], 3),
                "register_s": round(t["register_s"], 3),
                "join_share": round(t["query_s"] / total, 3),
                "write_share": round(t["write_s"] / total, 3),
                "write_rows_per_s": round(handle.row_count / t["write_s"]),
                "bytes": size,
            }
            if joined is None:
                joined = handle.read("train")
        assert joined is not None
        # references on the same rows (the train split), measured now
        start = time.perf_counter()
        pq.write_table(joined, io.BytesIO(), compression="snappy")
        pq_rows_per_s = joined.num_rows / (time.perf_counter() - start)
        ref_rows = min(args.reference_rows, joined.num_rows)
        tf_rows_per_s = reference_tfrecord(joined, ref_rows)
        from fsql.training import tfrecord as ours

        start = time.perf_counter()
        ours.write(joined.slice(0, ref_rows), io.BytesIO())
        our_tf_rows_per_s = ref_rows / (time.perf_counter() - start)
    results["parquet"]["reference"] = "pyarrow.parquet.write_table, same rows"
    results["parquet"]["reference_write_rows_per_s"] = round(pq_rows_per_s)
    results["parquet"]["write_ratio"] = round(
        results["parquet"]["write_rows_per_s"] / pq_rows_per_s, 3
    )
    results["tfrecord"]["reference"] = (
        f"tfrecord package TFRecordWriter (protobuf per row), first {ref_rows} rows"
    )
    results["tfrecord"]["reference_write_rows_per_s"] = round(tf_rows_per_s)
    results["tfrecord"]["encoder_rows_per_s_same_rows"] = round(our_tf_rows_per_s)
    results["tfrecord"]["encoder_ratio"] = round(our_tf_rows_per_s / tf_rows_per_s, 2)
    out["formats"] = results
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
