"""Training/serving consistency: compare the online rows of a feature group
with the offline latest row per primary key as of its last commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from fsql.catalog import FeatureGroup
from fsql.online.base import Codec
from fsql.online.materialize import encode_rows, last_commit, offline_latest
from fsql.online.state import OnlineState

if TYPE_CHECKING:
    from fsql.online.service import OnlineService

REPORT_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("problem", pa.string()),  # missing | unexpected | different | older | newer
        ("offline", pa.string()),
        ("online", pa.string()),
    ]
)


@dataclass
class ConsistencyReport:
    feature_group: str
    version: int
    checked: int  # offline keys compared
    online_rows: int
    mismatches: pa.Table  # REPORT_SCHEMA
    state: OnlineState | None
    as_of_commit: int | None
    total_mismatches: int = 0

    @property
    def ok(self) -> bool:
        return self.total_mismatches == 0

    def summary(self) -> dict[str, object]:
        counts: dict[str, int] = {}
        for p in self.mismatches.column("problem").to_pylist():
            counts[p] = counts.get(p, 0) + 1
        return {
            "feature_group": self.feature_group,
            "version": self.version,
            "consistent": self.ok,
            "offline_keys": self.checked,
            "online_rows": self.online_rows,
            "mismatches": self.total_mismatches,
            "by_problem": counts,
            "as_of_commit": self.as_of_commit,
            "status": self.state.status if self.state else "never materialized",
        }


def _show(codec: Codec, v: str) -> str:
    values = json.loads(v)
    return json.dumps(dict(zip(codec.value_names, values, strict=False)), default=str)


def check(service: OnlineService, fg: FeatureGroup, *, limit: int = 1000) -> ConsistencyReport:
    """Compare every key; list up to ``limit`` mismatches."""
    codec = service.codec(fg)
    commit_id, commit_us = last_commit(service, fg)
    offline: dict[str, tuple[str, str]] = {}
    if commit_us is not None:
        rows = offline_latest(service, fg, system_time_us=commit_us)
        offline = {k: (ver, v) for k, ver, v in encode_rows(codec, rows)}
    online = {k: (ver, v) for k, ver, v in service.backend.scan(codec.table)}
    problems: list[dict[str, str | None]] = []
    for k, (ver, v) in offline.items():
        got = online.get(k)
        if got is None:
            problems.append(
                {"key": k, "problem": "missing", "offline": _show(codec, v), "online": None}
            )
        elif got[1] != v:
            problems.append(
                {
                    "key": k,
                    "problem": "different",
                    "offline": _show(codec, v),
                    "online": _show(codec, got[1]),
                }
            )
        elif got[0] != ver:
            problems.append(
                {
                    "key": k,
                    "problem": "older" if got[0] < ver else "newer",
                    "offline": f"version {ver}",
                    "online": f"version {got[0]}",
                }
            )
    for k, (_ver, v) in online.items():
        if k not in offline:
            problems.append(
                {"key": k, "problem": "unexpected", "offline": None, "online": _show(codec, v)}
            )
    problems.sort(key=lambda p: (p["problem"] or "", p["key"] or ""))
    return ConsistencyReport(
        feature_group=fg.name,
        version=fg.version,
        checked=len(offline),
        online_rows=len(online),
        mismatches=pa.Table.from_pylist(problems[:limit], schema=REPORT_SCHEMA)
        if problems
        else REPORT_SCHEMA.empty_table(),
        state=service.state(fg),
        as_of_commit=commit_id,
        total_mismatches=len(problems),
    )
