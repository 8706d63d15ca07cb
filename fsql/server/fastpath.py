"""Online feature lookups over the wire without the engine path.

``SELECT FEATURES a, b WHERE customer_id = $1`` is, after its first run, a
cached lookup template in the online service (``fsql.online.prepared``).
Going through ``store.sql`` for every execution still costs an engine-thread
hop, a key table, an Arrow result and the vectorized encoder (~1 ms of fixed
cost for one row). Here the server keeps, per statement text, a
:class:`OnlineLookup`: the template and the online service's vector plan
resolved once, the output columns, and per-column value encoders. An
execution binds the parameters, probes each feature group's online rows and
writes DataRow bytes directly; with the embedded online store held in
memory this is a few dict probes and runs on the event loop (no thread).

The result is the same as ``store.sql`` gives (key columns then features, no
row when the first group lacks the key, the same column types): anything
this path does not cover (an ``IN`` list, a NULL or mistyped parameter, a
type without a row encoder, a lookup needing I/O on the loop) returns None
and the caller takes the normal path, which also reports every error.

Plans are dropped when the online service's ``generation`` moves (any
catalog change to feature groups) and rebuilt in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from fsql.server import encode

log = logging.getLogger("fsql.server")

NOT_READY: object = object()  # the lookup needs I/O: run it in a thread

_INT_RANGES = {
    8: (-(2**7), 2**7),
    16: (-(2**15), 2**15),
    32: (-(2**31), 2**31),
    64: (-(2**63), 2**63),
}


class OnlineLookup:
    """One statement text's online-lookup plan, valid for one generation of
    the online service's plans."""

    def __init__(self, service: Any, template: Any, vplan: Any, generation: int) -> None:
        self.service = service
        self.generation = generation
        key_columns = list(template.key_columns)
        key_types: list[pa.DataType] = list(template.key_types)
        self.sources: list[tuple[str, Any]] = [values[0] for values in template.values]
        self.checks: list[Callable[[Any], bool]] = [_key_check(t) for t in key_types]
        pos = {k: i for i, k in enumerate(key_columns)}
        # per group of the vector plan: its codec and its key values' positions
        self.groups: list[tuple[Any, list[int], bool]] = []
        for g in vplan.groups:
            for name, ftype in zip(g.key_names, g.codec.key_types, strict=True):
                if name not in pos or not ftype.arrow.equals(key_types[pos[name]]):
                    raise _NotFast
            self.groups.append((g.codec, [pos[k] for k in g.key_names], bool(g.single)))
        if any(k not in pos for g in template.groups for k in g.primary_key):
            raise _NotFast
        first = template.groups[0].id
        found = [i for i, g in enumerate(vplan.groups) if g.fg.id == first]
        if not found:
            raise _NotFast
        self.first = found[0]
        # output: the key columns, then each feature (from a key or a value tuple)
        self.slots: list[tuple[int, int]] = [(-1, i) for i in range(len(key_columns))]
        names = list(key_columns)
        types = list(key_types)
        for (gi, i, is_key), ref, ftype in zip(
            vplan.slots, template.features, vplan.types, strict=True
        ):
            if is_key:
                k = pos[vplan.groups[gi].key_names[i]]
                self.slots.append((-1, k))
                types.append(key_types[k])
            else:
                self.slots.append((gi, i))
                types.append(ftype.arrow)
            names.append(ref.alias)
        self.names = names
        self.types = types
        self._described: dict[tuple[int, ...], tuple[list[encode.Field], bytes, list[Any]]] = {}
        if self.encoding(()) is None:
            raise _NotFast

    def valid(self) -> bool:
        return self.service.generation == self.generation

    def encoding(
        self, formats: Sequence[int]
    ) -> tuple[list[encode.Field], bytes, list[Callable[[Any], bytes]]] | None:
        """(fields, RowDescription message, value encoders) for result
        format codes ``formats``; None when a column has no row encoder."""
        key = tuple(formats)
        found = self._described.get(key)
        if found is None:
            from fsql.server import protocol as p

            fields = encode.fields_for(
                pa.schema(list(zip(self.names, self.types, strict=True))), list(formats)
            )
            encoders = encode.row_encoders(self.types, fields)
            if encoders is None:
                return None
            message = p.row_description(encode.row_description_fields(fields))
            if len(self._described) > 16:
                self._described.clear()
            self._described[key] = found = (fields, message, encoders)
        return found

    def rows(self, params: Sequence[Any], *, blocking: bool) -> list[tuple[Any, ...]] | Any:
        """The result rows for ``params``; None: take the normal path;
        NOT_READY (only when not ``blocking``): the lookup needs I/O."""
        keys = []
        for (kind, v), check in zip(self.sources, self.checks, strict=True):
            if kind == "param":
                if not 1 <= v <= len(params):
                    return None
                v = params[v - 1]
            if v is None or not check(v):
                return None
            keys.append(v)
        prims = [
            keys[idx[0]] if single else tuple(keys[i] for i in idx)
            for _, idx, single in self.groups
        ]
        backend = self.service.backend
        found: list[Any] = []
        if not blocking:
            peek = getattr(backend, "peek", None)
            if peek is None:
                return NOT_READY
            for (codec, _, _), prim in zip(self.groups, prims, strict=True):
                row = peek(codec, prim)
                if row is _NOT_READY_BACKEND:
                    return NOT_READY
                found.append(row)
        else:
            got = backend.lookup_groups(
                [(codec, [prim]) for (codec, _, _), prim in zip(self.groups, prims, strict=True)]
            )
            found = [r[0] for r in got]
        if found[self.first] is None:
            return []
        out = []
        for gi, i in self.slots:
            if gi < 0:
                out.append(keys[i])
            else:
                row = found[gi]
                out.append(None if row is None else row[i])
        return [tuple(out)]


class _NotFast(Exception):
    pass


try:  # the embedded store's marker for "needs I/O"
    from fsql.online.embedded import NOT_READY as _NOT_READY_BACKEND
except ImportError:  # pragma: no cover
    _NOT_READY_BACKEND = object()


def _key_check(dtype: pa.DataType) -> Callable[[Any], bool]:
    """Accepts exactly the key values the normal path turns into the same
    key without conversion (an int in range for integer keys, a str for text
    keys); anything else goes the normal way."""
    if pa.types.is_signed_integer(dtype):
        lo, hi = _INT_RANGES[dtype.bit_width]
        return lambda v: type(v) is int and lo <= v < hi
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return lambda v: type(v) is str
    raise _NotFast


def build(store: Any, text: str) -> OnlineLookup | None:
    """The lookup plan of ``text`` (blocking: parses and plans the first time,
    may materialize a group just turned online); None when ``text`` is not a
    single-entity key lookup of online groups this path covers."""
    online = getattr(type(store), "online", None)
    if online is None or "FEATURES" not in text.upper():
        return None
    from fsql.online.base import NotOnline
    from fsql.online.prepared import lookup_template

    service = store.online
    generation = service.generation
    template = lookup_template(service, text)
    if template is None or any(len(values) != 1 for values in template.values):
        return None
    refs = [(r.fg, r.feature, r.alias) for r in template.features]
    try:
        vplan = service.plan(
            tuple(refs), cache_key=("refs", *((r[0].id, r[1], r[2]) for r in refs))
        )
        return OnlineLookup(service, template, vplan, generation)
    except (_NotFast, NotOnline):
        return None
    except Exception:  # the normal path reports it
        log.debug("no online fast path for %r", text, exc_info=True)
        return None
