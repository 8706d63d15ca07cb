"""`fsql materialize` and `fsql check-consistency` (embedded online store)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner

import fsql
from fsql.cli import main


def test_check_consistency_and_materialize_commands(store_path: Path) -> None:
    with fsql.connect(store_path) as s:
        s.create_feature_group(
            "tx",
            pa.table(
                {
                    "customer_id": [1, 2, 3],
                    "ts": [datetime(2024, 1, 1)] * 3,
                    "amount": [1.0, 2.0, 3.0],
                }
            ),
            primary_key="customer_id",
            event_time="ts",
            online=True,
        )
        fg = s.catalog.feature_group(s.project, "tx")
        codec = s.online.codec(fg)
        rows = [r for r in s.online.backend.scan(codec.table) if r[0] != "[2]"]
        s.online.backend.replace(codec.table, rows, codec)  # lose key 2 online
    runner = CliRunner()
    args = ["--store", str(store_path)]
    ok = runner.invoke(main, [*args, "check-consistency", "tx", "--format", "json"])
    assert ok.exit_code == 1, ok.output
    report = json.loads(ok.output)
    assert report["consistent"] is False and report["by_problem"] == {"missing": 1}
    assert report["rows"][0]["key"] == "[2]"
    table = runner.invoke(main, [*args, "check-consistency", "tx"])
    assert table.exit_code == 1 and "1 mismatches" in table.output and "missing" in table.output
    done = runner.invoke(main, [*args, "materialize", "tx"])
    assert done.exit_code == 0, done.output
    assert "materialized 3 rows of tx v1" in done.output
    again = runner.invoke(main, [*args, "check-consistency", "tx"])
    assert again.exit_code == 0 and "consistent" in again.output
    since = runner.invoke(main, [*args, "materialize", "tx", "--since", "2000-01-01 00:00:00"])
    assert since.exit_code == 0 and "keys committed after" in since.output
    bad = runner.invoke(main, [*args, "materialize", "nope"])
    assert bad.exit_code != 0 and "42P01" in bad.output
