"""Create, read, describe, drop and rebuild training datasets.

A training dataset version is built in this order, so that a failure at any
step leaves nothing registered:

1. check the name, version, options and that the location is writable;
2. run the query with its system time pinned (the build time, or the query's
   own ``FOR SYSTEM_TIME AS OF``): every feature group it reads, the spine
   included, is read as the store held it then;
3. split the rows (hash of a row key and seed, or by time);
4. compute statistics in the engine;
5. write every split's file into a temporary folder, then the manifest, then
   rename the folder into place (S3: write in place, manifest last, delete
   on failure);
6. register the version, its lineage and statistics in one catalog
   transaction (on failure the files are deleted).

``rebuild`` re-runs the recorded query at the recorded system time and
compares the result with the recorded checksum and the stored rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from fsql.bind.time import evaluate_time
from fsql.catalog import training as catalog_td
from fsql.catalog.service import now_us
from fsql.catalog.training import LineageEntry, TrainingDatasetRecord
from fsql.errors import (
    DuplicateObject,
    FeatureNotSupported,
    FsqlError,
    InvalidParameter,
    UndefinedColumn,
    UndefinedObject,
    did_you_mean,
)
from fsql.plan.features import execute_plan, plan_features
from fsql.plan.plain import run_plain
from fsql.sql.dialect import parse
from fsql.sql.nodes import SelectFeatures
from fsql.store.offline import micros_literal
from fsql.tables import as_arrow
from fsql.timeutil import from_micros, to_micros
from fsql.training import recovery
from fsql.training import splits as split_mod
from fsql.training import stats as stats_mod
from fsql.training.locations import Location, LocationError, join, resolve
from fsql.training.writers import FORMATS, Format, get_format
from fsql.types import from_arrow

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

SPLIT_COLUMN = "split"
MANIFEST = "manifest.json"
DEFAULT_FOLDER = recovery.DEFAULT_FOLDER
OPTIONS = (
    "format",
    "splits",
    "seed",
    "split_by",
    "train_until",
    "validation_until",
    "split_key",
    "location",
    "label",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# options ------------------------------------------------------------------


def normalize_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate option names and values; returns the options as recorded."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        k = str(key).strip().lower()
        if k not in OPTIONS:
            raise InvalidParameter(
                f"unknown training dataset option {key!r}",
                hint="Options: " + ", ".join(OPTIONS) + ".",
            )
        if k in out:
            raise InvalidParameter(f"option {k!r} is given twice")
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat(sep=" ")
        if k == "seed":
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidParameter(f"seed must be an integer, got {value!r}")
        elif not isinstance(value, str | int | float | bool):
            raise InvalidParameter(f"option {k!r} takes a string or number, got {value!r}")
        out[k] = value
    out["format"] = get_format(str(out.get("format", "parquet"))).name
    split_mod.make_split(out)  # validates splits / time-split options
    if "label" in out:
        out["label"] = ",".join(c.strip() for c in str(out["label"]).split(",") if c.strip())
    return out


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameter(
            f"training dataset name {name!r} is not valid",
            sqlstate="42602",
            hint="Use letters, digits and underscores, starting with a letter.",
        )


# the query ------------------------------------------------------------------


@dataclass
class QueryResult:
    table: pa.Table
    lineage: list[LineageEntry]
    system_time_us: int
    spine: pa.Table | None = None  # a spine read from a training dataset


def _pin(node: exp.Expr | None, system_time_us: int, ctes: set[str]) -> None:
    """Read every table under ``node`` as of ``system_time_us`` unless it says
    otherwise (``FOR SYSTEM_TIME ...``)."""
    if node is None:
        return
    for table in node.find_all(exp.Table):
        if table.db or not table.name or table.name in ctes:
            continue
        if table.args.get("version") is None:
            table.set(
                "version",
                exp.Version(
                    this="TIMESTAMP", kind="AS OF", expression=micros_literal(system_time_us)
                ),
            )


def build_time(store: StoreCore) -> int:
    """Now, but before any commit still pending: a rebuild at this time sees
    exactly the commits this build could see."""
    t = now_us()
    for commit in store.catalog.commits(state="pending"):
        t = min(t, commit.commit_time_us - 1)
    return t


def run_query(
    store: StoreCore, text: str, system_time_us: int | None = None, *, spine: pa.Table | None = None
) -> QueryResult:
    """Run a ``SELECT FEATURES`` or plain ``SELECT`` with its system time
    pinned. ``spine`` (Arrow) is the spine of a ``SELECT FEATURES ... AS OF
    time_column`` handed over from Python."""

    statements = parse(text)
    if len(statements) != 1:
        raise InvalidParameter(
            f"a training dataset is built from one query, got {len(statements)} statements"
        )
    node = statements[0]
    t = system_time_us if system_time_us is not None else build_time(store)
    if isinstance(node, SelectFeatures):
        return _run_features(store, node, t, explicit=system_time_us is not None, spine=spine)
    if spine is not None:
        raise InvalidParameter(
            "a spine from Python goes with SELECT FEATURES ... AS OF its time column",
            hint="e.g. SELECT FEATURES tx.amount AS OF event_ts, with spine=labels",
        )
    if isinstance(node, exp.Query):
        return _run_plain(store, node, t)
    raise InvalidParameter(
        "a training dataset is built from SELECT FEATURES ... or a SELECT",
        sqlstate="42601",
        hint="CREATE TRAINING DATASET name AS SELECT FEATURES f1, f2 FROM spine AS OF spine.ts",
    )


def _run_features(
    store: StoreCore,
    node: SelectFeatures,
    t: int,
    *,
    explicit: bool,
    spine: pa.Table | None = None,
) -> QueryResult:

    node = node.copy()
    own = node.args.get("system_time")
    if own is not None and not explicit:
        t = evaluate_time(store, own)
    read_spine = None
    spine_node = node.args.get("spine")
    if isinstance(spine_node, exp.Table) and not spine_node.db:
        names = {n for fg in store.feature_groups() for n in (fg.name, fg.qualified_name)}
        record = None if spine_node.name in names else find_by_table_name(store, spine_node.name)
        if record is not None or (spine is not None and spine_node.name not in names):
            # a training dataset as the spine: its rows (recorded with the new
            # dataset, so a rebuild reads these, not the dataset's latest version)
            if spine is None:
                assert record is not None
                spine = read_spine = read_all(record, with_split=False)
            _respine(node, spine_node.alias_or_name)
    _pin(node, t, set())  # the spine and any subquery over feature groups
    plan = plan_features(store, node, system_time_us=t, spine=spine)
    plan.lookup_keys = None  # a training dataset reads the offline store
    table = execute_plan(store, plan)
    by_alias = {f.alias: f for f in plan.features}
    spine_fg = None
    relation = node.args.get("spine")
    if isinstance(relation, exp.Table):
        for group in store.feature_groups():
            if relation.name in (group.name, group.qualified_name):
                spine_fg = group  # latest version wins for a bare name
    lineage = []
    for column in table.column_names:
        ref = by_alias.get(column)
        fg = ref.fg if ref is not None else None
        if fg is not None and ref is not None:
            lineage.append(LineageEntry(column, ref.feature, fg.name, fg.version, fg.id))
        elif spine_fg is not None and spine_fg.feature(column) is not None:
            lineage.append(
                LineageEntry(column, column, spine_fg.name, spine_fg.version, spine_fg.id)
            )
        else:
            lineage.append(LineageEntry(column))
    return QueryResult(
        table, lineage, int(plan.system_time_us if plan.system_time_us else t), read_spine
    )


def _respine(node: exp.Expr, alias: str) -> None:
    """Drop the FROM relation (an Arrow spine replaces it) and point
    ``alias.column`` references at the planner's name for such a spine."""
    node.set("spine", None)
    for column in list(node.find_all(exp.Column)):
        if column.table == alias:
            column.set("table", exp.to_identifier("spine"))


def _run_plain(store: StoreCore, node: exp.Expr, t: int) -> QueryResult:

    node = node.copy()
    ctes = {c.alias_or_name for c in node.find_all(exp.CTE)}
    used = []
    fgs = store.feature_groups()
    latest = {fg.name: fg for fg in fgs}
    by_version = {fg.qualified_name: fg for fg in fgs}
    for table in node.find_all(exp.Table):
        if table.db or not table.name or table.name in ctes:
            continue
        fg = latest.get(table.name) or by_version.get(table.name)
        if fg is not None and fg not in used:
            used.append(fg)
    _pin(node, t, ctes)
    table = run_plain(store, node)
    lineage = []
    matched = set()
    for column in table.column_names:
        owners = [fg for fg in used if fg.feature(column) is not None]
        if owners:
            fg = owners[0]
            matched.add(fg.id)
            lineage.append(LineageEntry(column, column, fg.name, fg.version, fg.id))
        else:
            lineage.append(LineageEntry(column))
    for fg in used:  # read but no column of the same name: lineage at group level
        if fg.id not in matched:
            lineage.append(LineageEntry("*", None, fg.name, fg.version, fg.id))
    return QueryResult(table, lineage, t)


_FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\*))?$")


def features_query(
    features: list[str] | str, as_of: Any = None, *, with_spine: bool = False
) -> str:
    """``SELECT FEATURES f1, fg.f2 [AS OF ...]`` from names (the Python form).
    With a spine, ``as_of`` names its time column; without, it is a time
    (latest values as of then)."""
    names = [features] if isinstance(features, str) else list(features)
    if not names:
        raise InvalidParameter("features is empty")
    for n in names:
        if not isinstance(n, str) or not _FEATURE_NAME.match(n):
            raise InvalidParameter(
                f"{n!r} is not a feature name", hint="Use feature, fg.feature or fg.*."
            )
    text = "SELECT FEATURES " + ", ".join(names)
    if as_of is None:
        if with_spine:
            raise InvalidParameter("with a spine, as_of names its time column")
        return text
    if with_spine:
        if not isinstance(as_of, str) or not _FEATURE_NAME.match(as_of) or "*" in as_of:
            raise InvalidParameter(f"as_of {as_of!r} is not a column name")
        return f"{text} AS OF {as_of}"
    stamp = from_micros(to_micros(as_of)).strftime("%Y-%m-%d %H:%M:%S.%f")
    return f"{text} AS OF TIMESTAMP '{stamp}'"


# schema ---------------------------------------------------------------------


def schema_record(schema: pa.Schema) -> dict[str, Any]:

    columns = []
    for f in schema:
        try:
            type_name = from_arrow(f.type).name
        except FsqlError:
            type_name = str(f.type)
        columns.append({"name": f.name, "type": type_name, "arrow": str(f.type)})
    return {
        "columns": columns,
        "arrow": base64.b64encode(schema.serialize().to_pybytes()).decode(),
    }


def arrow_schema(record: TrainingDatasetRecord) -> pa.Schema:
    raw = base64.b64decode(record.schema["arrow"])
    return pa.ipc.read_schema(pa.py_buffer(raw))


def _normalize(table: pa.Table) -> pa.Table:
    """One chunk per column, no dictionary encoding: the same rows give the
    same bytes in every format."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_dictionary(t):
            t = t.value_type
        fields.append(pa.field(f.name, t, nullable=True))
    schema = pa.schema(fields)
    if not schema.equals(table.schema):
        table = table.cast(schema)
    return table.replace_schema_metadata(None).combine_chunks()


# writing --------------------------------------------------------------------


def file_name(fmt: Format) -> str:
    return f"part-00000.{fmt.extension}"


def dataset_checksum(files: list[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f['path']}\n{f['sha256']}\n".encode())
    return "sha256:" + h.hexdigest()


def encode_parts(
    fmt: Format, parts: Mapping[str, pa.Table]
) -> list[tuple[dict[str, Any], pa.Buffer]]:
    out = []
    for split, table in parts.items():
        sink = pa.BufferOutputStream()
        fmt.write(table, sink)  # type: ignore[arg-type]
        buf = sink.getvalue()
        info = {
            "split": split,
            "path": f"{split}/{file_name(fmt)}",
            "rows": table.num_rows,
            "bytes": buf.size,
            "sha256": hashlib.sha256(memoryview(buf)).hexdigest(),
        }
        out.append((info, buf))
    return out


SPINE_FILE = "spine.parquet"


def spine_entry(spine: pa.Table) -> tuple[dict[str, Any], pa.Buffer]:
    """The spine handed over from Python, kept with the dataset (it is part
    of what a rebuild needs)."""
    sink = pa.BufferOutputStream()
    pq.write_table(spine.replace_schema_metadata(None), sink, compression="zstd")
    buf = sink.getvalue()
    info = {
        "split": None,
        "role": "spine",
        "path": SPINE_FILE,
        "rows": spine.num_rows,
        "bytes": buf.size,
        "sha256": hashlib.sha256(memoryview(buf)).hexdigest(),
    }
    return info, buf


def write_version(
    loc: Location,
    folder: str,
    encoded: list[tuple[dict[str, Any], pa.Buffer]],
    manifest: dict[str, Any],
) -> None:
    """Write the files and the manifest (last) into ``folder`` of ``loc``.
    An OSError (no space, no permission, a file where a folder should be)
    becomes a :class:`LocationError` (58030) naming the path."""
    path = folder
    try:
        for info, buf in encoded:
            path = join(folder, info["split"] or "")
            loc.make_dir(path)
            path = join(folder, info["path"])
            loc.write_bytes(path, memoryview(buf))
        path = join(folder, MANIFEST)
        loc.write_bytes(path, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    except OSError as e:
        raise write_error(loc, path, manifest, e) from e


def write_error(loc: Location, path: str, manifest: Mapping[str, Any], e: OSError) -> LocationError:
    reason = os.strerror(e.errno) if e.errno else str(e).strip().splitlines()[0][:300]
    return LocationError(
        f'could not write "{loc.describe(path)}" for training dataset '
        f'"{manifest.get("name")}" version {manifest.get("version")}: {reason}',
        hint="Check the free space and permissions of the location (a file where a folder "
        "should be?).",
    )


def _publish(
    store_path: Path,
    loc: Location,
    name: str,
    version: int,
    encoded: list[tuple[dict[str, Any], pa.Buffer]],
    manifest: dict[str, Any],
) -> str:
    """Write a version folder atomically (local) or manifest-last (S3);
    returns the folder path inside ``loc``. The local temporary folder is
    claimed in the store folder while it exists, so that the store's
    recovery removes it if this process is killed
    (:mod:`fsql.training.recovery`)."""
    final = loc.path(name, f"v{version}")
    if loc.exists(final):
        if not _is_orphan(loc, final, name, version):
            raise DuplicateObject(
                f"training dataset location {loc.uri_of(name, f'v{version}')!r} "
                "already holds files",
                hint="Choose another location, or remove that folder.",
            )
        loc.delete_dir(final)
    if loc.is_local:
        work = loc.path(name, recovery.temp_folder_name(version))
        with recovery.claim(store_path, work):
            try:
                write_version(loc, work, encoded, manifest)
                try:
                    loc.move(work, final)
                except OSError as e:
                    raise write_error(loc, final, manifest, e) from e
            except BaseException as e:
                loc.delete_dir(work)
                _remove_if_empty(loc, loc.path(name))
                raise _nothing_kept(e)
    else:
        try:
            write_version(loc, final, encoded, manifest)
        except BaseException as e:
            loc.delete_dir(final)
            raise _nothing_kept(e)
    return final


def _nothing_kept(e: BaseException) -> BaseException:
    if isinstance(e, LocationError) and e.hint and "nothing was registered" not in e.hint:
        e.hint += " Nothing was registered and the partly written files were removed."
    return e


def _remove_if_empty(loc: Location, folder: str) -> None:
    try:
        if loc.is_local and not any(Path(folder).iterdir()):
            Path(folder).rmdir()
    except OSError:
        pass


def _is_orphan(loc: Location, folder: str, name: str, version: int) -> bool:
    """A folder an earlier build of this very version left unregistered."""
    try:
        manifest = json.loads(loc.read_bytes(join(folder, MANIFEST)))
    except (FsqlError, ValueError):
        return False
    return bool(manifest.get("name") == name and manifest.get("version") == version)


# create ---------------------------------------------------------------------


@dataclass
class Built:
    parts: dict[str, pa.Table]
    lineage: list[LineageEntry]
    system_time_us: int | None
    timings: dict[str, float] = field(default_factory=dict)
    spine: pa.Table | None = None


def _labels(options: Mapping[str, Any], table: pa.Table) -> list[str]:
    if "label" in options:
        labels = [c for c in str(options["label"]).split(",") if c]

        for c in labels:
            if c not in table.column_names:
                raise UndefinedColumn(
                    f'label column "{c}" is not a column of the training dataset',
                    hint="Columns: " + ", ".join(table.column_names),
                )
        return labels
    return ["label"] if "label" in table.column_names else []


def build(
    store: StoreCore,
    options: Mapping[str, Any],
    *,
    query: str | None,
    data: pa.Table | None,
    system_time_us: int | None,
    spine: pa.Table | None = None,
) -> Built:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if query is not None:
        result = run_query(store, query, system_time_us, spine=spine)
        table, lineage, t = result.table, result.lineage, result.system_time_us
    else:
        assert data is not None
        table, lineage, t = data, [LineageEntry(c) for c in data.column_names], None
    timings["query_s"] = time.perf_counter() - start
    if SPLIT_COLUMN in table.column_names:
        raise InvalidParameter(
            f'the query has a column "{SPLIT_COLUMN}", which names the split of each row',
            sqlstate="42701",
            hint=f"Rename it (AS ...); read splits back with WHERE {SPLIT_COLUMN} = 'train'.",
        )
    if not table.num_columns:
        raise InvalidParameter("the query returns no columns")
    table = _normalize(table)
    start = time.perf_counter()
    spec = split_mod.make_split(dict(options))
    names = split_mod.split_names(spec)
    index = split_mod.assign(store.engine, table, spec)
    parts = split_mod.partition(table, index, names)
    timings["split_s"] = time.perf_counter() - start
    built = Built(parts, lineage, t, timings)
    if query is not None:
        built.spine = result.spine
    return built


_BUILD_LOCK = threading.RLock()


def create(
    store: StoreCore,
    name: str,
    query: str | None = None,
    *,
    data: Any = None,
    spine: Any = None,
    version: int | None = None,
    description: str = "",
    options: Mapping[str, Any] | None = None,
) -> TrainingDataset:
    _check_name(name)
    if (query is None) == (data is None):
        raise InvalidParameter("give a query or data (not both)")
    # one build at a time per process: version numbers and version folders
    # are claimed between the check and the registration
    with _BUILD_LOCK:
        return _create(store, name, query, data, spine, version, description, options)


def _create(
    store: StoreCore,
    name: str,
    query: str | None,
    data: Any,
    spine: Any,
    version: int | None,
    description: str,
    options: Mapping[str, Any] | None,
) -> TrainingDataset:
    opts = normalize_options(options or {})
    fmt = get_format(opts["format"])
    project = store.project
    if any(fg.name == name for fg in store.feature_groups()):
        raise DuplicateObject(
            f'"{name}" is a feature group; a training dataset needs another name',
        )
    have = catalog_td.versions(store.catalog, project, name)
    if version is None:
        version = max(have, default=0) + 1
    elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidParameter(f"version must be 1 or more, got {version!r}")
    elif version in have:
        raise DuplicateObject(
            f'training dataset "{name}" version {version} already exists',
            hint="Training datasets are immutable: leave VERSION out to create the next one.",
        )
    loc = resolve(opts.get("location"), store.path / DEFAULT_FOLDER)
    loc.check_writable()
    if spine is not None and query is None:
        raise InvalidParameter("a spine goes with a SELECT FEATURES query")
    table = as_arrow(data) if data is not None else None
    spine_table = as_arrow(spine) if spine is not None else None
    built = build(store, opts, query=query, data=table, system_time_us=None, spine=spine_table)
    if spine_table is not None:
        built.spine = spine_table
    return _materialize(store, name, version, description, query, opts, fmt, loc, built)


def _materialize(
    store: StoreCore,
    name: str,
    version: int,
    description: str,
    query: str | None,
    opts: dict[str, Any],
    fmt: Format,
    loc: Location,
    built: Built,
) -> TrainingDataset:
    timings = built.timings
    first = next(iter(built.parts.values()))
    start = time.perf_counter()
    labels = _labels(opts, first)
    statistics = stats_mod.compute(store.engine, built.parts, labels=labels)
    timings["stats_s"] = time.perf_counter() - start
    start = time.perf_counter()
    encoded = encode_parts(fmt, built.parts)
    if built.spine is not None:
        encoded.append(spine_entry(built.spine))
    files = [info for info, _ in encoded]
    checksum = dataset_checksum(files)
    schema = schema_record(first.schema)
    split_counts = {s: t.num_rows for s, t in built.parts.items()}
    manifest = {
        "name": name,
        "version": version,
        "project": store.project,
        "format": fmt.name,
        "query": query,
        "system_time_us": built.system_time_us,
        "options": opts,
        "schema": schema,
        "split_counts": split_counts,
        "files": files,
        "checksum": checksum,
    }
    folder = _publish(store.path, loc, name, version, encoded, manifest)
    timings["write_s"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        record = catalog_td.register(
            store.catalog,
            project=store.project,
            name=name,
            version=version,
            description=description,
            query=query,
            system_time_us=built.system_time_us,
            format=fmt.name,
            options=opts,
            location=loc.uri_of(name, f"v{version}") if not loc.is_local else folder,
            schema=schema,
            split_counts=split_counts,
            files=files,
            checksum=checksum,
            lineage=built.lineage,
            statistics=statistics,
        )
    except BaseException:
        loc.delete_dir(folder)
        _remove_if_empty(loc, loc.path(name))
        raise
    timings["register_s"] = time.perf_counter() - start
    handle = TrainingDataset(store, record)
    handle.build_timings = timings
    return handle


# reading --------------------------------------------------------------------


def _location_of(record: TrainingDatasetRecord) -> Location:
    return resolve(record.location, Path(record.location))


def read_split(record: TrainingDatasetRecord, split: str) -> pa.Table:
    if split not in record.split_counts:
        raise InvalidParameter(
            f'training dataset "{record.name}" v{record.version} has no split {split!r}',
            hint="Splits: " + ", ".join(record.split_counts),
        )
    fmt = FORMATS[record.format]
    schema = arrow_schema(record)
    loc = _location_of(record)
    tables = [
        fmt.read(loc.read_bytes(loc.path(f["path"])), schema)
        for f in record.files
        if f["split"] == split
    ]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def read_all(record: TrainingDatasetRecord, *, with_split: bool = True) -> pa.Table:
    tables = []
    for split in record.split_counts:
        t = read_split(record, split)
        if with_split:
            t = t.append_column(
                pa.field(SPLIT_COLUMN, pa.string()), pa.array([split] * t.num_rows, pa.string())
            )
        tables.append(t)
    return pa.concat_tables(tables)


def find_by_table_name(store: StoreCore, name: str) -> TrainingDatasetRecord | None:
    found = catalog_td.find(store.catalog, store.project, name)
    if found is not None:
        return found
    m = re.match(r"^(.*)_v(\d+)$", name)
    if m:
        return catalog_td.find(store.catalog, store.project, m.group(1), int(m.group(2)))
    return None


def training_dataset_names(store: StoreCore) -> list[str]:
    records = catalog_td.list_all(store.catalog, store.project)
    return sorted({r.name for r in records} | {r.qualified_name for r in records})


# the handle -----------------------------------------------------------------


class TrainingDataset:
    """One immutable training dataset version."""

    def __init__(self, store: StoreCore, record: TrainingDatasetRecord) -> None:
        self._store = store
        self.record = record
        self.build_timings: dict[str, float] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{s} {n}" for s, n in self.record.split_counts.items())
        return f"<TrainingDataset {self.name} v{self.version} {self.format} ({counts})>"

    name = property(lambda self: self.record.name)
    version = property(lambda self: self.record.version)
    format = property(lambda self: self.record.format)
    location = property(lambda self: self.record.location)
    query = property(lambda self: self.record.query)
    checksum = property(lambda self: self.record.checksum)
    split_counts = property(lambda self: dict(self.record.split_counts))
    splits = property(lambda self: list(self.record.split_counts))
    row_count = property(lambda self: self.record.row_count)

    @property
    def system_time(self) -> datetime | None:
        us = self.record.system_time_us
        return from_micros(us) if us is not None else None

    @property
    def schema(self) -> pa.Schema:
        return arrow_schema(self.record)

    def read(self, split: str | None = None) -> pa.Table:
        """One split's rows, or (None) every row with a ``split`` column."""
        return read_split(self.record, split) if split is not None else read_all(self.record)

    def to_pandas(self, split: str | None = None) -> Any:
        return self.read(split).to_pandas()

    def files(self, split: str | None = None) -> list[str]:
        loc = _location_of(self.record)
        return [
            loc.uri_of(f["path"]) for f in self.record.files if split is None or f["split"] == split
        ]

    def statistics(self, split: str | None = None) -> dict[str, Any]:
        stats = catalog_td.statistics(self._store.catalog, self.record)
        return stats.get(split, {}) if split is not None else stats

    def verify(self) -> bool:
        """Re-read every file and check it against the recorded checksums."""
        loc = _location_of(self.record)
        files = []
        for f in self.record.files:
            data = loc.read_bytes(loc.path(f["path"]))
            files.append({"path": f["path"], "sha256": hashlib.sha256(data).hexdigest()})
        return dataset_checksum(files) == self.record.checksum

    def describe(self) -> dict[str, Any]:
        r = self.record
        return {
            "name": r.name,
            "version": r.version,
            "description": r.description,
            "format": r.format,
            "location": r.location,
            "query": r.query,
            "system_time": self.system_time.isoformat(sep=" ") if self.system_time else None,
            "system_time_us": r.system_time_us,
            "created_at": from_micros(r.created_at_us).isoformat(sep=" "),
            "row_count": r.row_count,
            "split_counts": dict(r.split_counts),
            "options": dict(r.options),
            "schema": [{"name": c["name"], "type": c["type"]} for c in r.schema["columns"]],
            "feature_groups": [{"name": n, "version": v} for n, v in r.feature_groups],
            "lineage": [
                {
                    "column": e.column,
                    "feature": e.feature,
                    "feature_group": e.feature_group,
                    "feature_group_version": e.feature_group_version,
                }
                for e in r.lineage
            ],
            "files": self.files(),
            "checksum": r.checksum,
        }

    def torch(
        self,
        split: str | None = None,
        *,
        batch_size: int | None = None,
        columns: list[str] | None = None,
    ) -> Any:
        """A PyTorch ``IterableDataset`` over a split (needs the ``torch`` extra)."""
        from fsql.training.torch import TrainingIterable

        return TrainingIterable(self.record, split, batch_size=batch_size, columns=columns)

    def rebuild(self, *, location: str | None = None) -> RebuildResult:
        return rebuild(self._store, self.name, self.version, location=location)

    def drop(self) -> None:
        drop(self._store, self.name, self.version)


# listing, drop --------------------------------------------------------------


def get(store: StoreCore, name: str, version: int | None = None) -> TrainingDataset:
    return TrainingDataset(store, catalog_td.get(store.catalog, store.project, name, version))


def list_datasets(store: StoreCore) -> list[TrainingDatasetRecord]:
    return catalog_td.list_all(store.catalog, store.project)


def drop(
    store: StoreCore, name: str, version: int | None = None, *, missing_ok: bool = False
) -> int:
    """Drop one version (or, with ``version`` None, every version): the
    catalog entry first, then its files. Returns the number dropped."""
    if version is None:
        records = catalog_td.list_all(store.catalog, store.project, name)
        if not records:
            if missing_ok:
                return 0
            catalog_td.get(store.catalog, store.project, name)  # raises with a hint
    else:
        found = catalog_td.find(store.catalog, store.project, name, version)
        if found is None:
            if missing_ok:
                return 0
            catalog_td.get(store.catalog, store.project, name, version)
        records = [found] if found is not None else []
    for record in records:
        catalog_td.remove(store.catalog, record)
        loc = _location_of(record)
        try:
            loc.delete_dir(loc.base)
            if loc.is_local:
                _remove_if_empty(loc, str(Path(loc.base).parent))
        except FsqlError:
            pass
    return len(records)


# rebuild --------------------------------------------------------------------


@dataclass
class RebuildResult:
    name: str
    version: int
    split_counts: dict[str, int]
    checksum: str
    recorded_checksum: str
    rows_identical: bool | None  # None: the stored files could not be read
    restored: bool
    location: str | None  # where the rebuilt files were kept (None: not kept)

    @property
    def checksum_match(self) -> bool:
        return self.checksum == self.recorded_checksum

    @property
    def identical(self) -> bool:
        return self.checksum_match and self.rows_identical is not False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "split_counts": self.split_counts,
            "checksum": self.checksum,
            "recorded_checksum": self.recorded_checksum,
            "checksum_match": self.checksum_match,
            "rows_identical": self.rows_identical,
            "restored": self.restored,
            "location": self.location,
        }


def rebuild(
    store: StoreCore, name: str, version: int | None = None, *, location: str | None = None
) -> RebuildResult:
    """Re-run a version's recorded query at its recorded system time.

    The result is compared with the recorded checksum and, when the stored
    files can be read, row by row with them. When the stored files are gone
    and the rebuild matches the recorded checksum, they are written again.
    ``location`` keeps a copy of the rebuilt files there
    (``<location>/<name>/v<N>``).
    """
    record = catalog_td.get(store.catalog, store.project, name, version)
    if record.query is None:
        raise FeatureNotSupported(
            f'training dataset "{record.name}" v{record.version} was built from data handed '
            "over from Python; there is no query to rebuild it from"
        )
    spine = None
    spine_files = [f for f in record.files if f.get("role") == "spine"]
    if spine_files:
        loc = _location_of(record)
        spine = pq.read_table(pa.BufferReader(loc.read_bytes(loc.path(spine_files[0]["path"]))))
    built = build(
        store,
        record.options,
        query=record.query,
        data=None,
        system_time_us=record.system_time_us,
        spine=spine,
    )
    schema = arrow_schema(record)
    parts = {}
    for split, table in built.parts.items():
        if not table.schema.equals(schema):
            try:
                table = table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                pass  # the schemas differ: the checksum will say so
        parts[split] = table
    fmt = FORMATS[record.format]
    encoded = encode_parts(fmt, parts)
    if spine is not None:
        encoded.append(spine_entry(spine))
    files = [info for info, _ in encoded]
    checksum = dataset_checksum(files)
    rows_identical: bool | None
    try:
        stored = {s: read_split(record, s) for s in record.split_counts}
        rows_identical = list(stored) == list(parts) and all(
            same_rows(stored[s], _as_read_back(fmt, parts[s], schema)) for s in stored
        )
    except FsqlError:
        rows_identical = None
    restored = False
    manifest = _manifest_of(record)
    if rows_identical is None and checksum == record.checksum:
        loc = _location_of(record)
        write_version(loc, loc.base, encoded, manifest)
        restored = True
    kept = None
    if location is not None:
        loc = resolve(location, store.path / DEFAULT_FOLDER)
        loc.check_writable()
        folder = _publish(store.path, loc, record.name, record.version, encoded, manifest)
        kept = loc.uri_of(record.name, f"v{record.version}") if not loc.is_local else folder
    return RebuildResult(
        record.name,
        record.version,
        {s: t.num_rows for s, t in parts.items()},
        checksum,
        record.checksum,
        rows_identical,
        restored,
        kept,
    )


def _bits(arr: pa.Array) -> pa.Array:
    """Floats as same-width integers, so NaN equals NaN (bit for bit)."""
    t = arr.type
    if pa.types.is_floating(t):
        return arr.view({16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[t.bit_width])
    if pa.types.is_list(t) and pa.types.is_floating(t.value_type):
        inner = _bits(arr.values)
        return pa.ListArray.from_arrays(arr.offsets, inner, mask=arr.is_null())
    return arr


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Row-for-row equality, with NaN equal to NaN."""
    if not a.schema.equals(b.schema) or a.num_rows != b.num_rows:
        return False
    return all(
        _bits(a.column(i).combine_chunks()).equals(_bits(b.column(i).combine_chunks()))
        for i in range(a.num_columns)
    )


def _as_read_back(fmt: Format, table: pa.Table, schema: pa.Schema) -> pa.Table:
    """What reading ``table`` back from ``fmt`` gives (tfrecord keeps floats
    as float32, for example), so rebuilt rows compare with stored ones."""
    sink = pa.BufferOutputStream()
    fmt.write(table, sink)  # type: ignore[arg-type]
    return fmt.read(sink.getvalue().to_pybytes(), schema)


def _manifest_of(record: TrainingDatasetRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "version": record.version,
        "project": record.project,
        "format": record.format,
        "query": record.query,
        "system_time_us": record.system_time_us,
        "options": record.options,
        "schema": record.schema,
        "split_counts": record.split_counts,
        "files": record.files,
        "checksum": record.checksum,
    }


# lineage --------------------------------------------------------------------


def lineage(store: StoreCore, name: str) -> pa.Table:
    """Training datasets that use a feature group (``fg``, ``fg_vN``), a
    feature (``fg.feature`` or a bare feature name)."""
    fgs = store.feature_groups()
    fg_names = {fg.name for fg in fgs}
    query: dict[str, Any] = {}
    text = name.strip()
    if "." in text:
        group, _, feature = text.partition(".")
        query = {"feature": feature}
        m = re.match(r"^(.*)_v(\d+)$", group)
        if group in fg_names or not m:
            query["feature_group"] = group
        else:
            query["feature_group"], query["feature_group_version"] = m.group(1), int(m.group(2))
    else:
        m = re.match(r"^(.*)_v(\d+)$", text)
        if text in fg_names:
            query = {"feature_group": text}
        elif m and m.group(1) in fg_names:
            query = {"feature_group": m.group(1), "feature_group_version": int(m.group(2))}
        else:
            query = {"feature": text}
    hits = catalog_td.lineage(store.catalog, store.project, **query)
    if not hits:
        wanted_group, wanted = query.get("feature_group"), query.get("feature")
        everything = catalog_td.lineage(store.catalog, store.project)
        known_group = (
            wanted_group is None
            or wanted_group in fg_names
            or any(e.feature_group == wanted_group for _, e in everything)
        )
        known_feature = (
            wanted is None
            or any(fg.feature(wanted) for fg in fgs)
            or any(e.feature == wanted for _, e in everything)
        )
        if not (known_group and known_feature):
            raise UndefinedObject(
                f'no feature group or feature named "{name}"',
                hint=did_you_mean(
                    text, sorted(fg_names | {f.name for fg in fgs for f in fg.features})
                ),
            )
    rows = [
        {
            "training_dataset": r.name,
            "version": r.version,
            "column": e.column,
            "feature_group": e.feature_group,
            "feature_group_version": e.feature_group_version,
            "feature": e.feature,
            "created_at": from_micros(r.created_at_us).replace(tzinfo=None),
        }
        for r, e in hits
    ]
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("training_dataset", pa.string()),
                ("version", pa.int32()),
                ("column", pa.string()),
                ("feature_group", pa.string()),
                ("feature_group_version", pa.int32()),
                ("feature", pa.string()),
                ("created_at", pa.timestamp("us")),
            ]
        ),
    )


def listing(store: StoreCore, like: str | None = None) -> pa.Table:
    """``SHOW TRAINING DATASETS``: one row per version."""
    rows = []
    pattern = _like_regex(like) if like else None
    for r in list_datasets(store):
        if pattern is not None and not pattern.match(r.name):
            continue
        rows.append(
            {
                "name": r.name,
                "version": r.version,
                "format": r.format,
                "rows": r.row_count,
                "splits": ", ".join(f"{s}:{n}" for s, n in r.split_counts.items()),
                "feature_groups": ", ".join(f"{n}_v{v}" for n, v in r.feature_groups),
                "system_time": from_micros(r.system_time_us).replace(tzinfo=None)
                if r.system_time_us is not None
                else None,
                "location": r.location,
                "description": r.description,
                "query": r.query,
                "checksum": r.checksum,
            }
        )
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("name", pa.string()),
                ("version", pa.int32()),
                ("format", pa.string()),
                ("rows", pa.int64()),
                ("splits", pa.string()),
                ("feature_groups", pa.string()),
                ("system_time", pa.timestamp("us")),
                ("location", pa.string()),
                ("description", pa.string()),
                ("query", pa.string()),
                ("checksum", pa.string()),
            ]
        ),
    )


def _like_regex(like: str) -> re.Pattern[str]:
    out = []
    for ch in like:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def describe_table(handle: TrainingDataset) -> pa.Table:
    """``DESCRIBE TRAINING DATASET``: one row per column, with its lineage and
    whole-dataset statistics."""
    record = handle.record
    stats = handle.statistics("*")
    lineage_of = {e.column: e for e in record.lineage}
    rows = []
    for c in record.schema["columns"]:
        e = lineage_of.get(c["name"])
        s = stats.get(c["name"], {})
        rows.append(
            {
                "column": c["name"],
                "type": c["type"],
                "feature_group": f"{e.feature_group}_v{e.feature_group_version}"
                if e is not None and e.feature_group
                else None,
                "feature": e.feature if e is not None else None,
                "nulls": s.get("nulls"),
                "distinct": s.get("distinct"),
                "min": None if s.get("min") is None else str(s.get("min")),
                "max": None if s.get("max") is None else str(s.get("max")),
                "mean": s.get("mean"),
                "stddev": s.get("stddev"),
            }
        )
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("column", pa.string()),
                ("type", pa.string()),
                ("feature_group", pa.string()),
                ("feature", pa.string()),
                ("nulls", pa.int64()),
                ("distinct", pa.int64()),
                ("min", pa.string()),
                ("max", pa.string()),
                ("mean", pa.float64()),
                ("stddev", pa.float64()),
            ]
        ),
    )
