"""Catalog tables (SQLAlchemy Core).

These describe the latest schema. Each table is created by the migration that
introduced it (see :mod:`fsql.catalog.migrations`); a change to a released
table is a new migration, never an edit of an old one.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("applied_at_us", BigInteger, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at_us", BigInteger, nullable=False),
)

feature_groups = Table(
    "feature_groups",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    # 'cached' (rows stored by fsql) or 'on_demand' (a view over a connector)
    Column("kind", String(20), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("primary_key", JSON, nullable=False),
    Column("event_time", String(200), nullable=True),
    Column("online", Boolean, nullable=False, default=False),
    # True once two commits wrote the same (primary key, event time): reads
    # must then pick the latest commit per key and time.
    Column("has_upserts", Boolean, nullable=False, default=False),
    Column("connector", String(200), nullable=True),
    Column("query", Text, nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", "version"),
)

features = Table(
    "features",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "feature_group_id",
        Integer,
        ForeignKey("feature_groups.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("type", String(100), nullable=False),
    Column("description", Text, nullable=False, default=""),
    UniqueConstraint("feature_group_id", "name"),
)

fg_metadata = Table(
    "feature_group_metadata",
    metadata,
    Column(
        "feature_group_id",
        Integer,
        ForeignKey("feature_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

commits = Table(
    "commits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "feature_group_id",
        Integer,
        ForeignKey("feature_groups.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("commit_time_us", BigInteger, nullable=False),
    # 'pending' while rows are written, then 'committed' or 'aborted'
    Column("state", String(20), nullable=False),
    Column("row_count", BigInteger, nullable=False, default=0),
)

# Named external sources (migration 2). ``options`` holds only what is safe to
# show: secrets are references (``password_env``, ``password_file``), never
# values.
connectors = Table(
    "connectors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("type", String(40), nullable=False),
    Column("options", JSON, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at_us", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name"),
)

# Online store state per feature-group version (migration 5): whether its
# online rows are known to match the offline latest-per-key ('ok') or missed a
# commit ('stale': an online write failed, or commits landed while the group
# was not online), and the last commit applied online.
online_state = Table(
    "online_state",
    metadata,
    Column(
        "feature_group_id",
        Integer,
        ForeignKey("feature_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", String(20), nullable=False),
    Column("last_commit_id", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at_us", BigInteger, nullable=False),
)

# Training datasets (migration 3): one row per immutable version, with what
# rebuilds it (FSQL text, system time, options), what it holds (schema, row
# counts per split, files, checksum) and where it lives.
training_datasets = Table(
    "training_datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    # the FSQL query text; NULL when built from data handed over from Python
    Column("query", Text, nullable=True),
    Column("system_time_us", BigInteger, nullable=True),
    Column("format", String(20), nullable=False),
    Column("options", JSON, nullable=False),
    Column("location", Text, nullable=False),
    Column("schema", JSON, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("split_counts", JSON, nullable=False),
    Column("files", JSON, nullable=False),
    Column("checksum", String(100), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", "version"),
)

# Lineage: which feature (of which feature-group version) each column of a
# training dataset came from. Names are kept, so lineage outlives a dropped
# feature group.
training_dataset_features = Table(
    "training_dataset_features",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "training_dataset_id",
        Integer,
        ForeignKey("training_datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("column_name", String(200), nullable=False),
    Column("feature", String(200), nullable=True),
    Column("feature_group_id", Integer, nullable=True),
    Column("feature_group", String(200), nullable=True),
    Column("feature_group_version", Integer, nullable=True),
)

# Statistics per training dataset, split ('*': all rows) and column.
training_dataset_statistics = Table(
    "training_dataset_statistics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "training_dataset_id",
        Integer,
        ForeignKey("training_datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("split", String(200), nullable=False),
    Column("column_name", String(200), nullable=False),
    Column("stats", JSON, nullable=False),
    UniqueConstraint("training_dataset_id", "split", "column_name"),
)

# Postgres-wire server users: SCRAM-SHA-256 verifiers, never passwords
# ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64 parts).
server_users = Table(
    "server_users",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("scram_verifier", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)
