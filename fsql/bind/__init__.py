"""The bind layer: every table reference of a parsed statement becomes the
engine relation it means (:mod:`~fsql.bind.binder`, with the relation kinds
of :mod:`~fsql.bind.kinds`), each feature group is read the way its kind is
(:mod:`~fsql.bind.sources`), and plain SQL is checked by PostgreSQL's name
rules (:mod:`~fsql.bind.names`)."""
