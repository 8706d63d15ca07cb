"""Execution engines and external sources.

An :class:`~fsql.connectors.engine.Engine` runs ClickHouse SQL and returns
Arrow; the embedded one is chDB, the server one clickhouse-connect.
"""
