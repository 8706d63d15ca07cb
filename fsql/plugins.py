"""The composition root: the modules that plug into the lower layers'
registries and hooks, imported once so that they subscribe.

- ``fsql.online.api`` subscribes to the store's ``after_commit``,
  ``after_drop`` and ``on_close`` hooks and to the planner's ``key_lookup``;
- ``fsql.training.relation`` registers training datasets as a relation kind
  with the binder;
- ``fsql.training.recovery`` subscribes to the store's ``on_open`` hook
  (removes the temporary folders of killed training-dataset builds).

A new subscriber (statistics, validation, streams) is one module and one
line here. The binder's own relation kinds register in
:mod:`fsql.bind.relations`; statement executors in
:mod:`fsql.statements.registry`.
"""

from __future__ import annotations

import fsql.online.api
import fsql.training.recovery
import fsql.training.relation

SUBSCRIBERS = (fsql.online.api, fsql.training.recovery, fsql.training.relation)
