"""The store layer: one folder's catalog, offline tables and engine
(:mod:`~fsql.store.core`), the commit protocol (:mod:`~fsql.store.offline`),
the write path's conversions (:mod:`~fsql.store.conform`,
:mod:`~fsql.store.assign`), the folder lock and the hooks the store
announces its events through (:mod:`~fsql.store.hooks`)."""
