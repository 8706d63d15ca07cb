"""The ``fsql`` command line.

``main`` is a click group; other modules add subcommands with
``@main.command()``. Every command runs inside :class:`FsqlGroup`, which turns
an :class:`fsql.errors.FsqlError` into a one-screen error with its SQLSTATE
and hint. Heavy modules (pyarrow, chDB, the store) are imported inside the
commands so that ``fsql --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import pyarrow as pa

    from fsql.api import Store

DEFAULT_STORE = "./fsql-store"
FORMATS = ("table", "csv", "json", "parquet")  # fsql.output.FORMATS, without importing it


def format_error(err: Any) -> str:
    """One FsqlError as the CLI shows it: message, SQLSTATE, detail, hint."""
    text = f"{err.message} (SQLSTATE {err.sqlstate})"
    if err.position is not None:
        text += f" at position {err.position}"
    if err.detail and err.sqlstate != "XX000":
        text += f"\nDETAIL: {err.detail}"
    if err.hint:
        text += f"\nHINT: {err.hint}"
    return text


class FsqlGroup(click.Group):
    """A click group whose commands report fsql errors as ClickExceptions."""

    def invoke(self, ctx: click.Context) -> Any:
        from fsql.errors import FsqlError

        try:
            return super().invoke(ctx)
        except FsqlError as e:
            raise click.ClickException(format_error(e)) from None


class CliState:
    def __init__(self, store_path: str) -> None:
        self.store_path = store_path

    @contextmanager
    def open(self, **options: Any) -> Iterator[Store]:
        import fsql

        store = fsql.connect(self.store_path, **options)
        try:
            yield store
        finally:
            store.close()


@click.group(cls=FsqlGroup)
@click.option(
    "--store",
    "store_path",
    envvar="FSQL_STORE",
    default=DEFAULT_STORE,
    show_default=True,
    metavar="PATH",
    help="Store folder (also from the FSQL_STORE environment variable).",
)
@click.version_option(package_name="fsql", prog_name="fsql")
@click.pass_context
def main(ctx: click.Context, store_path: str) -> None:
    """fsql: a SQL-first feature store."""
    ctx.obj = CliState(store_path)


pass_state = click.make_pass_decorator(CliState)


# init ---------------------------------------------------------------------


@main.command()
@click.option(
    "--offline", metavar="URL", help="clickhouse://host:port/db (default: embedded chDB)."
)
@click.option("--catalog", metavar="URL", help="SQLAlchemy URL (default: SQLite in the folder).")
@pass_state
def init(state: CliState, offline: str | None, catalog: str | None) -> None:
    """Create (or open) the store folder."""
    with state.open(offline=offline, catalog=catalog) as store:
        n = len(store.feature_groups())
        click.echo(f"fsql store ready at {store.path} ({n} feature group versions)")


# ingest -------------------------------------------------------------------


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--into", "fg_name", required=True, metavar="FG", help="Feature group name.")
@click.option(
    "--primary-key", "-k", "primary_key", multiple=True, metavar="COL", help="Repeatable."
)
@click.option("--event-time", "-t", metavar="COL", help="Event-time column.")
@click.option("--description", default="", help="Description of a new feature group.")
@click.option(
    "--batch-rows", default=262_144, show_default=True, help="Rows read per batch from the file."
)
@pass_state
def ingest(
    state: CliState,
    file: Path,
    fg_name: str,
    primary_key: tuple[str, ...],
    event_time: str | None,
    description: str,
    batch_rows: int,
) -> None:
    """Load a Parquet or CSV FILE into a feature group as one commit.

    The feature group is created (version 1) when it does not exist yet;
    otherwise the file is inserted into its latest version.
    """
    import pyarrow as pa

    from fsql.errors import InvalidParameter, UndefinedObject

    with state.open() as store:
        try:
            fg = store.get_feature_group(fg_name)
        except UndefinedObject:
            fg = None
        if fg is not None:
            given = {"primary key": list(primary_key), "event time": event_time}
            have = {"primary key": fg.primary_key, "event time": fg.event_time}
            for what in ("primary key", "event time"):
                if given[what] and given[what] != have[what]:
                    raise InvalidParameter(
                        f'feature group "{fg_name}" has {what} {have[what]}, not {given[what]}',
                        hint="Leave the option out, or ingest into a new feature group.",
                    )
            types = {f.name: f.ftype.arrow for f in fg.features}
        elif not primary_key:
            raise click.UsageError(
                f'feature group "{fg_name}" does not exist; to create it, give --primary-key'
            )
        else:
            types = {}
        try:
            table = _read_file(file, batch_rows, types)
        except (pa.ArrowException, OSError) as e:
            raise InvalidParameter(
                f"cannot read {file.name}: {e}",
                sqlstate="22P04",
                hint="Check the file's format and that its values fit the feature types.",
            ) from None
        click.echo(f"committing {table.num_rows} rows to {fg_name} ...", err=True)
        if fg is None:
            fg = store.create_feature_group(
                fg_name,
                table,
                primary_key=list(primary_key),
                event_time=event_time,
                description=description,
            )
            commits = fg.commits()
            verb = "created"
        else:
            commits = [fg.insert(table)]
            verb = "inserted into"
        commit = commits[-1] if commits else None
        click.echo(
            f"{verb} {fg.name} v{fg.version}: {table.num_rows} rows"
            + (f" in commit {commit.id}" if commit else "")
        )


def _read_file(file: Path, batch_rows: int, types: dict[str, pa.DataType]) -> pa.Table:
    """Read the whole file in batches (with a progress bar) into one table."""
    import pyarrow as pa

    suffix = file.suffix.lower()
    batches: list[pa.RecordBatch] = []
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(file)
        total = pf.metadata.num_rows
        with click.progressbar(length=total, label=f"reading {file.name}", file=sys.stderr) as bar:
            for batch in pf.iter_batches(batch_size=batch_rows):
                batches.append(batch)
                bar.update(batch.num_rows)
        schema = pf.schema_arrow
    elif suffix in (".csv", ".tsv", ".txt"):
        import pyarrow.csv as pcsv

        parse = pcsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
        convert = pcsv.ConvertOptions(column_types=types or None)
        read = pcsv.ReadOptions(block_size=max(1 << 20, batch_rows * 64))
        size = file.stat().st_size
        with (
            open(file, "rb") as fh,
            click.progressbar(length=size, label=f"reading {file.name}", file=sys.stderr) as bar,
        ):
            reader = pcsv.open_csv(
                fh, read_options=read, parse_options=parse, convert_options=convert
            )
            seen = 0
            for batch in reader:
                batches.append(batch)
                pos = fh.tell()
                bar.update(pos - seen)
                seen = pos
            bar.update(size - seen)
            schema = reader.schema
    else:
        raise click.BadParameter(
            f"{file.name}: expected a .parquet or .csv file", param_hint="FILE"
        )
    return pa.Table.from_batches(batches, schema=schema)


# sql ----------------------------------------------------------------------


@main.command()
@click.argument("text")
@click.option(
    "--format", "-f", "fmt", type=click.Choice(FORMATS), default="table", show_default=True
)
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file."
)
@click.option(
    "--max-rows",
    default=1000,
    show_default=True,
    help="Rows shown by --format table (0: all).",
)
@pass_state
def sql(state: CliState, text: str, fmt: str, output: Path | None, max_rows: int) -> None:
    """Run SQL TEXT ('-' reads it from standard input) and print each
    statement's result in order (to --output: the last one's)."""
    from fsql.output import write_result
    from fsql.sql.dialect import parse
    from fsql.statements.run import run_statement

    if text == "-":
        text = sys.stdin.read()
    with state.open() as store:
        statements = parse(text)
        if len(statements) <= 1 or output is not None or fmt == "parquet":
            results = [store.sql(text)]
        else:
            results = [run_statement(store, statement) for statement in statements]
    for i, result in enumerate(results):
        if i:
            click.echo()
        write_result(result, fmt, output, max_rows=max_rows)


# demo ---------------------------------------------------------------------


@main.command()
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Store folder for the demo (default: a new temporary folder).",
)
def demo(path: Path | None) -> None:
    """Build a small fraud-detection store and show what to try with it."""
    import tempfile

    from fsql.demo import run_demo

    if path is None:
        path = Path(tempfile.mkdtemp(prefix="fsql-demo-"))
    run_demo(path, echo=click.echo)


# online store (fsql.online) -----------------------------------------------


@main.command()
@click.argument("fg_name", metavar="FG")
@click.option("--version", type=int, help="Feature group version (default: the latest).")
@click.option(
    "--since",
    metavar="TIME",
    help="Only the keys written by commits after TIME (commit time, UTC); default: all.",
)
@pass_state
def materialize(state: CliState, fg_name: str, version: int | None, since: str | None) -> None:
    """Backfill or repair the online rows of FG from the offline store."""
    with state.open() as store:
        fg = store.catalog.feature_group(store.project, fg_name, version)
        result = store.materialize(fg, since=since)
    scope = "all keys" if since is None else f"keys committed after {since}"
    click.echo(
        f"materialized {result['rows']} rows of {fg.name} v{fg.version} ({scope}) "
        "into the online store"
    )


@main.command("check-consistency")
@click.argument("fg_name", metavar="FG")
@click.option("--version", type=int, help="Feature group version (default: the latest).")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_state
def check_consistency(state: CliState, fg_name: str, version: int | None, fmt: str) -> None:
    """Compare the online rows of FG with the offline latest row per key
    (exit status 1 when they differ)."""
    import json

    from fsql.output import write_result

    with state.open() as store:
        fg = store.catalog.feature_group(store.project, fg_name, version)
        report = store.check_consistency(fg)
    summary = report.summary()
    if fmt == "json":
        click.echo(json.dumps({**summary, "rows": report.mismatches.to_pylist()}))
    else:
        verdict = "consistent" if report.ok else f"{report.total_mismatches} mismatches"
        click.echo(
            f"{fg.name} v{fg.version}: {verdict} ({report.checked} offline keys, "
            f"{report.online_rows} online rows, online status {summary['status']})"
        )
    if not report.ok:
        if fmt != "json":
            write_result(report.mismatches, fmt, None, max_rows=1000)
        raise SystemExit(1)


# training datasets (fsql.training) ----------------------------------------


@main.group()
def td() -> None:
    """Training datasets: list, describe, rebuild."""


@td.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default="table")
@pass_state
def td_list(state: CliState, fmt: str) -> None:
    """List training dataset versions."""
    from fsql.output import write_result

    with state.open() as store:
        write_result(store.training_datasets(), fmt, None, max_rows=0)


@td.command("describe")
@click.argument("name")
@click.option("--version", "-v", type=int, help="Version (default: latest).")
@pass_state
def td_describe(state: CliState, name: str, version: int | None) -> None:
    """Show a training dataset version as JSON: query, system time, splits,
    schema, lineage, files and checksum."""
    import json

    with state.open() as store:
        info = store.get_training_dataset(name, version).describe()
    click.echo(json.dumps(info, indent=1, default=str))


@td.command("rebuild")
@click.argument("name")
@click.option("--version", "-v", type=int, help="Version (default: latest).")
@click.option(
    "--output", "-o", metavar="LOCATION", help="Keep the rebuilt files here (path or s3://)."
)
@pass_state
def td_rebuild(state: CliState, name: str, version: int | None, output: str | None) -> None:
    """Rebuild a training dataset version from its recorded query and system
    time, and check it against the recorded checksum and stored rows.

    Exits with status 1 when the rebuild differs. When the stored files are
    gone and the rebuild matches the recorded checksum, they are restored.
    """
    with state.open() as store:
        result = store.rebuild_training_dataset(name, version, location=output)
    counts = ", ".join(f"{s} {n}" for s, n in result.split_counts.items())
    click.echo(f"rebuilt {result.name} v{result.version}: {counts}")
    if result.checksum_match:
        click.echo(f"checksum {result.checksum} matches the recorded one")
    else:
        click.echo(f"checksum {result.checksum} differs from {result.recorded_checksum}")
    if result.rows_identical is None:
        restored = "; restored them" if result.restored else ""
        click.echo(f"stored files could not be read{restored}")
    elif result.rows_identical:
        click.echo("rows identical to the stored ones")
    else:
        click.echo("rows DIFFER from the stored ones")
    if result.location:
        click.echo(f"rebuilt files kept in {result.location}")
    if not result.identical:
        raise SystemExit(1)


@main.command()
@click.argument("name")
@click.option(
    "--format", "-f", "fmt", type=click.Choice(FORMATS), default="table", show_default=True
)
@pass_state
def lineage(state: CliState, name: str, fmt: str) -> None:
    """Training datasets that use a feature group (fg, fg_v2) or a feature
    (feature, fg.feature): the impact of changing it."""
    from fsql.output import write_result

    with state.open() as store:
        write_result(store.lineage(name), fmt, None, max_rows=0)


# serve (the Postgres-wire server lives in fsql.server) -----------------------

from fsql.server.cli import serve as _serve  # noqa: E402

main.add_command(_serve)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=os.path.basename(sys.argv[0]))
