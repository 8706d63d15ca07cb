"""Parsers of the feature-store statements (SELECT FEATURES, feature-group DDL,
discovery). Nodes live in :mod:`fsql.sql.nodes`."""

from __future__ import annotations
