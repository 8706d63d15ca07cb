"""The ``fsql`` command line, through click's runner and as the installed binary."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import fsql
from fsql.cli import main

T0 = dt.datetime(2024, 1, 1)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, store: Path, *args: str, ok: bool = True):
    result = runner.invoke(main, ["--store", str(store), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def tx_table(n: int, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([i % 10 for i in range(start, start + n)], pa.int64()),
            "event_ts": pa.array(
                [T0 + dt.timedelta(minutes=i) for i in range(start, start + n)],
                pa.timestamp("us"),
            ),
            "amount": [float(i) for i in range(start, start + n)],
        }
    )


def test_help_lists_commands(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("init", "ingest", "sql", "demo"):
        assert command in result.output
    assert "FSQL_STORE" in result.output


def test_init_creates_store(runner, tmp_path):
    store = tmp_path / "s"
    result = invoke(runner, store, "init")
    assert "fsql store ready" in result.output
    assert (store / "fsql.json").exists() and (store / "catalog.sqlite").exists()


def test_ingest_parquet_creates_then_csv_inserts_one_commit_each(runner, tmp_path):
    store = tmp_path / "s"
    parquet = tmp_path / "tx.parquet"
    pq.write_table(tx_table(1000), parquet, row_group_size=100)
    result = invoke(
        runner,
        store,
        "ingest",
        str(parquet),
        "--into",
        "tx",
        "--primary-key",
        "customer_id",
        "--event-time",
        "event_ts",
        "--description",
        "card transactions",
        "--batch-rows",
        "64",  # many batches, still one commit
    )
    assert "created tx v1: 1000 rows" in result.output
    csv_file = tmp_path / "more.csv"
    with csv_file.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event_ts", "amount"])
        for i in range(1000, 1500):
            w.writerow([i % 10, (T0 + dt.timedelta(minutes=i)).isoformat(sep=" "), i / 2])
    result = invoke(runner, store, "ingest", str(csv_file), "--into", "tx", "--batch-rows", "10")
    assert "inserted into tx v1: 500 rows" in result.output
    with fsql.connect(store) as s:
        fg = s.get_feature_group("tx")
        assert fg.description == "card transactions"
        assert fg.primary_key == ["customer_id"] and fg.event_time == "event_ts"
        assert [c.row_count for c in fg.commits()] == [1000, 500]
        rows = fg.read()
        assert rows.num_rows == 1500
        assert rows.schema.field("event_ts").type == pa.timestamp("us")


def test_ingest_errors(runner, tmp_path):
    store = tmp_path / "s"
    parquet = tmp_path / "tx.parquet"
    pq.write_table(tx_table(20), parquet)
    result = runner.invoke(main, ["--store", str(store), "ingest", str(parquet), "--into", "tx"])
    assert result.exit_code == 2
    assert "give --primary-key" in result.output
    invoke(
        runner, store, "ingest", str(parquet), "--into", "tx", "-k", "customer_id", "-t", "event_ts"
    )
    # wrong columns: the error names them, with SQLSTATE and hint, nothing written
    bad = tmp_path / "bad.parquet"
    pq.write_table(tx_table(5).drop_columns(["amount"]).append_column("x", pa.array([1] * 5)), bad)
    result = invoke(runner, store, "ingest", str(bad), "--into", "tx", ok=False)
    assert result.exit_code == 1
    assert "missing columns: amount (double precision)" in result.output
    assert "unknown columns: x" in result.output
    assert "SQLSTATE 42703" in result.output and "HINT:" in result.output
    # a different key than the group's
    result = invoke(runner, store, "ingest", str(parquet), "--into", "tx", "-k", "amount", ok=False)
    assert "has primary key ['customer_id']" in result.output
    wrong = tmp_path / "data.json"
    wrong.write_text("{}")
    result = invoke(runner, store, "ingest", str(wrong), "--into", "tx", ok=False)
    assert result.exit_code == 2 and ".parquet or .csv" in result.output
    # values that do not parse as the feature's type
    broken = tmp_path / "broken.csv"
    broken.write_text("customer_id,event_ts,amount\nseven,2024-01-01 00:00:00,1.0\n")
    result = invoke(runner, store, "ingest", str(broken), "--into", "tx", ok=False)
    assert result.exit_code == 1 and "SQLSTATE 22P04" in result.output
    assert "cannot read broken.csv" in result.output and "Traceback" not in result.output
    with fsql.connect(store) as s:
        assert [c.row_count for c in s.get_feature_group("tx").commits()] == [20]


@pytest.fixture
def filled(runner, tmp_path) -> Path:
    store = tmp_path / "s"
    with fsql.connect(store) as s:
        s.create_feature_group("tx", tx_table(30), primary_key="customer_id", event_time="event_ts")
    return store


QUERY = (
    "SELECT customer_id, count(*) AS n, sum(amount) AS total FROM tx GROUP BY 1 ORDER BY 1 LIMIT 3"
)


def test_sql_table_format(runner, filled):
    out = invoke(runner, filled, "sql", QUERY).output
    lines = out.splitlines()
    assert lines[0].split("|")[0].strip() == "customer_id"
    assert lines[1].startswith("-----")
    assert [c.strip() for c in lines[2].split("|")] == ["0", "3", "30"]
    assert lines[2].startswith(" " * 10 + "0 |")  # numbers right-aligned
    assert lines[-1] == "(3 rows)"
    capped = invoke(runner, filled, "sql", "SELECT * FROM tx", "--max-rows", "2").output
    assert capped.splitlines()[-1] == "(30 rows, first 2 shown)"


def test_sql_csv_json_parquet(runner, filled, tmp_path):
    out = invoke(runner, filled, "sql", QUERY, "--format", "csv").output
    assert out.splitlines()[:2] == ['"customer_id","n","total"', "0,3,30"]
    rows = json.loads(invoke(runner, filled, "sql", QUERY, "-f", "json").output)
    assert rows[0] == {"customer_id": 0, "n": 3, "total": 30.0}
    first = json.loads(
        invoke(runner, filled, "sql", "SELECT * FROM tx LIMIT 1", "-f", "json").output
    )
    assert first[0]["event_ts"] == "2024-01-01T00:00:00"
    target = tmp_path / "out.parquet"
    invoke(runner, filled, "sql", QUERY, "--format", "parquet", "--output", str(target))
    assert pq.read_table(target).to_pylist()[1] == {"customer_id": 1, "n": 3, "total": 33.0}
    csv_target = tmp_path / "out.csv"
    invoke(runner, filled, "sql", QUERY, "-f", "csv", "-o", str(csv_target))
    assert csv_target.read_text().count("\n") == 4


def test_sql_errors_show_sqlstate_and_hint(runner, filled):
    result = invoke(runner, filled, "sql", "SELECT * FROM tz", ok=False)
    assert result.exit_code == 1
    assert 'relation "tz" does not exist (SQLSTATE 42P01)' in result.output
    assert "HINT: Did you mean 'tx'" in result.output


def test_store_from_environment(runner, filled):
    result = runner.invoke(
        main, ["sql", "SELECT count(*) AS n FROM tx", "-f", "csv"], env={"FSQL_STORE": str(filled)}
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "30"


def test_store_in_use_is_a_clean_error(runner, filled):
    # the CLI runs in this process here, which already holds the store; a
    # store held by another process is tested in tests/test_store.py
    with fsql.connect(filled):
        result = runner.invoke(main, ["--store", str(filled), "init"])
    assert result.exit_code == 1
    assert "SQLSTATE 55006" in result.output
    assert "already open in this process" in result.output


def test_demo_builds_store_and_prints_results(runner, tmp_path):
    path = tmp_path / "demo"
    result = runner.invoke(main, ["demo", "--path", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Fraud rate by 7-day spend" in out and "4: >= 5000" in out
    assert "Time travel" in out and "Try next:" in out
    assert "Point-in-time join" in out and "SELECT FEATURES" in out
    with fsql.connect(path) as s:
        assert {g.name for g in s.feature_groups()} == {
            "transactions",
            "customer_profiles",
            "fraud_labels",
        }
        fraud = s.sql("SELECT avg(CASE WHEN is_fraud THEN 1 ELSE 0 END) AS r FROM fraud_labels")
        assert 0 < fraud.column("r")[0].as_py() < 0.2
    # rebuilding in the same folder replaces the demo groups
    again = runner.invoke(main, ["demo", "--path", str(path)], catch_exceptions=False)
    assert again.exit_code == 0
    with fsql.connect(path) as s:
        assert len(s.feature_groups()) == 3


def test_installed_binary(tmp_path):
    exe = shutil.which("fsql", path=str(Path(sys.executable).parent)) or shutil.which("fsql")
    assert exe, "the fsql console script is not installed"
    env = {**os.environ, "FSQL_STORE": str(tmp_path / "s")}
    parquet = tmp_path / "tx.parquet"
    pq.write_table(tx_table(100), parquet)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )

    done = run("ingest", str(parquet), "--into", "tx", "-k", "customer_id", "-t", "event_ts")
    assert done.returncode == 0, done.stderr
    assert "created tx v1: 100 rows" in done.stdout
    out = run("sql", "SELECT count(*) AS n, max(amount) AS top FROM tx", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 100, "top": 99.0}]
    bad = run("sql", "SELECT * FROM nope")
    assert bad.returncode == 1
    assert "SQLSTATE 42P01" in bad.stderr and "Traceback" not in bad.stderr


def test_sql_from_stdin_and_parquet_to_a_pipe(runner, filled):
    result = runner.invoke(
        main,
        ["--store", str(filled), "sql", "-", "-f", "csv"],
        input="SELECT count(*) AS n FROM tx",
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ['"n"', "30"]
    piped = runner.invoke(
        main, ["--store", str(filled), "sql", "SELECT * FROM tx", "-f", "parquet"]
    )
    assert piped.exit_code == 0
    import io

    assert pq.read_table(io.BytesIO(piped.stdout_bytes)).num_rows == 30


def test_sql_prints_each_statements_result_in_order(runner, tmp_path):
    out = invoke(
        runner, tmp_path / "s", "sql", "SELECT 1 AS first; SELECT 2 AS second", "--format", "csv"
    )
    assert out.output.split() == ['"first"', "1", '"second"', "2"]
