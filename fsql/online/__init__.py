"""The online store: the latest row per primary key of every online feature
group, for low-latency serving.

- :mod:`fsql.online.base`: the one :class:`OnlineStore` interface, the row
  codec all backends share, errors.
- backends: :mod:`~fsql.online.embedded` (default, in the store folder),
  :mod:`~fsql.online.postgres`, :mod:`~fsql.online.mysql` (MariaDB),
  :mod:`~fsql.online.redis`.
- :mod:`fsql.online.service`: serving (feature vectors, the planner hook) and
  the commit hook; :mod:`~fsql.online.materialize`,
  :mod:`~fsql.online.consistency`.
"""

from fsql.online.base import (
    NotOnline,
    OnlineCommitFailed,
    OnlineCommitUnavailable,
    OnlineStore,
    OnlineStoreUnavailable,
)

__all__ = [
    "NotOnline",
    "OnlineCommitFailed",
    "OnlineCommitUnavailable",
    "OnlineStore",
    "OnlineStoreUnavailable",
]
