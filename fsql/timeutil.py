"""Times as integer microseconds since the epoch, UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fsql.errors import InvalidParameter


def to_micros(value: datetime | date | str | int) -> int:
    """Microseconds since the epoch; naive times are taken as UTC."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidParameter(
                f"{value!r} is not a timestamp", sqlstate="22007", hint="Use 'YYYY-MM-DD HH:MM:SS'."
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds
    if isinstance(value, date):
        return to_micros(datetime(value.year, value.month, value.day))
    raise InvalidParameter(f"{value!r} is not a timestamp", sqlstate="22007")


def from_micros(us: int) -> datetime:
    from datetime import timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
