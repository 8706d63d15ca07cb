"""Reading a session's statement_timeout from the statements that set it."""

from __future__ import annotations

import pytest

from fsql.server.timeouts import UNCHANGED, from_options, timeout_change


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("SET statement_timeout = 5000", 5000),
        ("set statement_timeout to '5s'", 5000),
        ("SET SESSION statement_timeout = '1min';", 60_000),
        ("SET LOCAL statement_timeout TO '250ms'", 250),
        ("SET statement_timeout = '1.5s'", 1500),
        ("SET statement_timeout = 0", None),
        ("SET statement_timeout TO DEFAULT", None),
        ("RESET statement_timeout", None),
        ("RESET ALL", None),
    ],
)
def test_changes(text, ms):
    assert timeout_change(text) == ms


@pytest.mark.parametrize(
    "text",
    ["SET lock_timeout = 5", "SELECT 1", "SET statement_timeout = 'soon'", "RESET search_path"],
)
def test_not_changes(text):
    assert timeout_change(text) is UNCHANGED


def test_startup_options():
    assert from_options("-c statement_timeout=2s -c search_path=public") == 2000
    assert from_options("--statement_timeout=300") == 300
    assert from_options("-c search_path=public") is None
