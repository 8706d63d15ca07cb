"""``connector.table`` (or ``connector.schema.table``) in plain SQL or as a
spine: a relation kind that reads the source table in the engine itself
(pushdown connectors: PostgreSQL, MySQL/MariaDB, files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.bind.kinds import BindContext, relation_kind
from fsql.bind.on_demand import check_access, set_secret
from fsql.catalog import connectors as catalog_connectors
from fsql.connectors.registry import SourceConnector, make_connector
from fsql.errors import DatatypeMismatch, FeatureNotSupported

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine


@relation_kind("connector_table", qualified=True)
def bind_connector_table(ctx: BindContext, table: exp.Table) -> exp.Expr | None:
    """The source table as the connector's table function, read by the
    engine itself; None when the qualifier is not a connector."""
    store = ctx.store
    qualifier = table.catalog or table.db
    names = {c.name: c for c in catalog_connectors.connectors(store.catalog, store.project)}
    record = names.get(qualifier)
    if record is None:
        return None
    conn = make_connector(record.name, record.type, record.options, connector_id=record.id)
    check_access(store, conn)
    if not conn.pushdown:
        raise FeatureNotSupported(
            f"{conn.label(table.name)}: a {conn.type_name} source is not read as a table directly",
            hint="Create an on-demand feature group over it: CREATE ON DEMAND FEATURE GROUP "
            f"... CONNECTOR {conn.name} ... AS SELECT ... FROM {table.name}.",
        )
    source_table = exp.Table(
        this=table.this.copy(), db=table.args["db"].copy() if table.catalog else None
    )
    _check_source_table(store.engine, conn, source_table)
    fn = conn.table_function(source_table, set_secret(store.engine, conn))
    assert fn is not None
    fn.meta["fsql_source_table"] = source_table
    alias = table.alias or table.name
    return exp.Table(this=fn, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))


def _check_source_table(engine: Engine, conn: SourceConnector, table: exp.Table) -> None:
    """Describe ``SELECT * FROM table`` at the source before the engine reads
    it, so a missing table, an unreachable source or refused credentials are
    the errors an on-demand feature group gives (42P01, 08001, 28P01/28000,
    naming the connector and the table), not the engine's. Column types the
    feature types do not cover are no reason to refuse here: the engine
    reads the table its own way."""
    query = exp.select(exp.Star()).from_(table.copy())
    try:
        conn.describe(query, engine)
    except DatatypeMismatch:
        pass
