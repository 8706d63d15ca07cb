"""Statement nodes of the FSQL dialect (sqlglot expression classes).

Each node is a plain data holder; the store's executors
(:mod:`fsql.statements.feature_groups`) give them meaning.
"""

from __future__ import annotations

from sqlglot import exp


class SelectFeatures(exp.Expression):
    """``SELECT FEATURES f, ... [FROM spine] [AS OF t] [FOR SYSTEM_TIME AS OF s]
    [WHERE ...] [ORDER BY ...] [LIMIT n] [OFFSET n]``."""

    arg_types = {
        "expressions": True,  # feature references, maybe aliased
        "spine": False,  # a relation
        "as_of": False,  # an expression: a timestamp or a spine column
        "system_time": False,
        "where": False,
        "order": False,
        "limit": False,
        "offset": False,
    }


class CreateFeatureGroup(exp.Expression):
    arg_types = {
        "this": True,  # name
        "version": False,
        "exists": False,  # IF NOT EXISTS
        "columns": False,  # list of ColumnDef
        "primary_key": True,  # list of Identifier
        "event_time": False,  # Identifier
        "online": False,
        "description": False,
        "query": False,  # AS SELECT ...
        "metadata": False,
    }


class DropFeatureGroup(exp.Expression):
    arg_types = {"this": True, "version": False, "exists": False}


class ShowFeatureGroups(exp.Expression):
    arg_types = {"like": False}


class ShowFeatures(exp.Expression):
    arg_types = {"this": False, "like": False}


class DescribeFeatureGroup(exp.Expression):
    arg_types = {"this": True, "version": False}


class SearchFeatures(exp.Expression):
    arg_types = {"this": True}


class AlterFeatureGroup(exp.Expression):
    """``SET METADATA (k = v, ...)``, ``UNSET METADATA (k, ...)``,
    ``SET DESCRIPTION 'x'``, ``SET ONLINE`` / ``SET OFFLINE``."""

    arg_types = {"this": True, "version": False, "action": True, "values": False}


class ExplainStatement(exp.Expression):
    arg_types = {"this": True}
