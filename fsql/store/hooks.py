"""Hooks: how a lower layer announces an event to the layers above it.

A layer declares a :class:`Hook` where the event happens (the store declares
``after_commit``; the planner declares ``key_lookup``) and calls it; the
layers above subscribe when they are imported, so the announcing layer never
imports them. A hook is process-wide and receives the store it concerns as
its first argument, so per-store state stays with the store
(:attr:`StoreCore.services`).

The store's own events are declared here:

- ``after_commit(store, fg, commit)``: a commit became visible (the online
  store keeps its rows current; statistics, validation and stream offsets
  will subscribe here too);
- ``after_drop(store, fg)``: a feature group version was dropped;
- ``on_open(store)``: the store opened and the offline store recovered
  (pending commits rolled back); subscribers repair what a crash left in
  their part (online rows behind the offline commits, temporary folders of
  killed training-dataset builds). A subscriber that raises makes the open
  fail (the store is closed again);
- ``on_close(store)``: the store is closing (services release what they hold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Hook:
    """A named list of subscribers, called in subscription order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[..., Any]] = []

    def subscribe(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add ``fn`` (once; usable as a decorator)."""
        if fn not in self._subscribers:
            self._subscribers.append(fn)
        return fn

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        """Announce: every subscriber runs, in order."""
        for fn in list(self._subscribers):
            fn(*args, **kwargs)

    def first(self, *args: Any, **kwargs: Any) -> Any:
        """Ask: the first subscriber's answer that is not None (None if none)."""
        for fn in list(self._subscribers):
            found = fn(*args, **kwargs)
            if found is not None:
                return found
        return None

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._subscribers)} subscribers>"


after_commit = Hook("after_commit")
after_drop = Hook("after_drop")
on_open = Hook("on_open")
on_close = Hook("on_close")
