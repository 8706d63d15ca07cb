"""The metadata service: projects, feature groups, features, commits.

SQLAlchemy over SQLite in the store folder by default, PostgreSQL in server
mode. It never imports the serving layers.
"""

from fsql.catalog.records import Commit, Feature, FeatureGroup
from fsql.catalog.service import Catalog

__all__ = ["Catalog", "Commit", "Feature", "FeatureGroup"]
