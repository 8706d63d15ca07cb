"""Training datasets as tables in plain SQL: ``td`` (latest version) and
``td_vN`` read their rows (with a ``split`` column) from the dataset's
files, handed to the engine as an Arrow input. A relation kind of the
binder, registered when :mod:`fsql.plugins` loads this module."""

from __future__ import annotations

from sqlglot import exp

from fsql.bind.kinds import BindContext, relation_kind
from fsql.connectors.engine import input_ref
from fsql.training.dataset import find_by_table_name, read_all


@relation_kind("training_dataset", order=20)
def bind_training_dataset(ctx: BindContext, table: exp.Table) -> exp.Expr | None:
    record = find_by_table_name(ctx.store, table.name)
    if record is None:
        return None
    inputs = ctx.statement.meta.setdefault("fsql_inputs", [])
    rows = read_all(record)
    alias = table.alias or table.name
    relation = exp.select(exp.Star()).from_(input_ref(len(inputs)))
    inputs.append(rows)
    return relation.subquery(exp.to_identifier(alias, quoted=True))
