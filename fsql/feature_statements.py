"""Executors of the feature-store statements."""

from __future__ import annotations
