"""A small, realistic fraud-detection store for ``fsql demo``.

Three feature groups, generated deterministically with numpy:

- ``transactions``: one row per card transaction, keyed by ``customer_id``
  and ``event_ts``, with the amount and rolling aggregates over the
  customer's earlier transactions (1 day, 7 days, 30 days);
- ``customer_profiles``: age, country, credit limit, keyed by
  ``customer_id`` with ``updated_at``; a second commit adds later profile
  changes and corrects a few ages (an upsert: the old values stay readable
  with time travel);
- ``fraud_labels``: whether each transaction was fraud, the spine for
  point-in-time training data.

Compromised cards show bursts of large, foreign, night-time purchases, so
the rolling aggregates carry real signal.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from fsql.api import Store

START = np.datetime64("2024-01-01T00:00:00", "us")
DAYS = 90
DAY_US = 86_400_000_000
COUNTRIES = np.array(["US", "US", "US", "US", "GB", "DE", "FR", "CA", "BR", "IN"])
CATEGORIES = np.array(
    ["grocery", "fuel", "restaurant", "travel", "online", "electronics", "pharmacy"]
)
FRAUD_CATEGORIES = np.array(["electronics", "online", "jewelry", "gift_cards"])
DEMO_GROUPS = ("transactions", "customer_profiles", "fraud_labels")


def profiles(n_customers: int, rng: np.random.Generator) -> pa.Table:
    ids = np.arange(1, n_customers + 1, dtype=np.int64)
    age = rng.integers(18, 86, n_customers).astype(np.int32)
    home = rng.choice(COUNTRIES, n_customers)
    limit = (rng.lognormal(8.3, 0.5, n_customers) // 100 * 100).astype(np.float64)
    opened = rng.integers(30, 3650, n_customers).astype(np.int32)
    return pa.table(
        {
            "customer_id": ids,
            "updated_at": pa.array(np.full(n_customers, START), pa.timestamp("us")),
            "age": age,
            "country": home,
            "credit_limit": limit,
            "account_age_days": opened,
        }
    )


def transactions(prof: pa.Table, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """Card transactions with rolling aggregates, and their fraud labels."""
    n = prof.num_rows
    ids = prof.column("customer_id").to_numpy()
    home = prof.column("country").to_numpy(zero_copy_only=False)
    rate = rng.gamma(2.0, 0.6, n)  # transactions per day
    counts = rng.poisson(rate * DAYS)
    cust = np.repeat(ids, counts)
    ts = rng.integers(0, DAYS * DAY_US, cust.size)
    amount = np.round(rng.lognormal(3.3, 0.9, cust.size), 2)
    category = rng.choice(CATEGORIES, cust.size)
    country = home[cust - 1].astype(object)
    foreign_trip = rng.random(cust.size) < 0.03
    country[foreign_trip] = rng.choice(COUNTRIES, int(foreign_trip.sum()))
    fraud = np.zeros(cust.size, dtype=bool)

    # ~4% of cards are compromised: a burst of fraud over one or two days
    victims = rng.choice(ids, max(1, n // 25), replace=False)
    parts = [(cust, ts, amount, category, country, fraud)]
    for v in victims:
        k = int(rng.integers(4, 16))
        t0 = int(rng.integers(10 * DAY_US, (DAYS - 2) * DAY_US))
        night = (t0 // DAY_US) * DAY_US + rng.integers(0, 5 * 3_600_000_000, k)
        parts.append(
            (
                np.full(k, v, dtype=np.int64),
                np.sort(night + rng.integers(0, 2, k) * DAY_US),
                np.round(rng.lognormal(5.6, 0.7, k), 2),
                rng.choice(FRAUD_CATEGORIES, k),
                rng.choice(COUNTRIES[4:], k).astype(object),
                np.ones(k, dtype=bool),
            )
        )
    columns: list[np.ndarray] = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    # one row per (customer, microsecond): drop the rare exact collisions
    order = np.lexsort((columns[1], columns[0]))
    columns = [a[order] for a in columns]
    c, t = columns[0], columns[1]
    keep = np.ones(c.size, dtype=bool)
    keep[1:] = (c[1:] != c[:-1]) | (t[1:] != t[:-1])
    cust, ts, amount, category, country, fraud = (a[keep] for a in columns)

    # rolling windows over each customer's transactions up to and including this one
    span = DAYS * DAY_US * 4
    key = cust * span + ts
    csum = np.concatenate([[0.0], np.cumsum(amount)])
    idx = np.arange(cust.size)

    def window(days: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.searchsorted(key, key - days * DAY_US + 1, side="left")
        return np.round(csum[idx + 1] - csum[start], 2), (idx - start + 1).astype(np.int32)

    sum_1d, count_1d = window(1)
    sum_7d, count_7d = window(7)
    sum_30d, count_30d = window(30)
    event_ts = pa.array(START + ts.astype("timedelta64[us]"), pa.timestamp("us"))
    tx = pa.table(
        {
            "customer_id": cust,
            "event_ts": event_ts,
            "amount": amount,
            "merchant_category": category.astype(str),
            "country": country.astype(str),
            "tx_count_1d": count_1d,
            "tx_count_7d": count_7d,
            "amount_sum_1d": sum_1d,
            "amount_sum_7d": sum_7d,
            "amount_avg_30d": np.round(sum_30d / count_30d, 2),
        }
    )
    labels = pa.table({"customer_id": cust, "event_ts": event_ts, "is_fraud": fraud})
    return tx, labels


def profile_updates(prof: pa.Table, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """Later credit-limit changes (new event times) and age corrections
    (same key and event time as the first load: upserts)."""
    n = prof.num_rows
    changed = np.sort(rng.choice(n, n // 10, replace=False))
    later = prof.take(changed)
    day = rng.integers(20, DAYS, changed.size).astype("timedelta64[D]")
    later = later.set_column(
        1, "updated_at", pa.array(START + day.astype("timedelta64[us]"), pa.timestamp("us"))
    )
    later = later.set_column(
        4, "credit_limit", pa.array(later.column("credit_limit").to_numpy() * 1.5)
    )
    fixed = np.sort(rng.choice(np.setdiff1d(np.arange(n), changed), 5, replace=False))
    corrections = prof.take(fixed)
    corrections = corrections.set_column(
        2, "age", pa.array(corrections.column("age").to_numpy() + 1, pa.int32())
    )
    return later, corrections


def build(store: Store, *, customers: int = 300, seed: int = 7) -> dict[str, int]:
    """(Re)create the demo feature groups in ``store``; return row counts."""
    rng = np.random.default_rng(seed)
    for fg in store.feature_groups():
        if fg.name in DEMO_GROUPS:
            store.drop_feature_group(fg)
    prof = profiles(customers, rng)
    tx, labels = transactions(prof, rng)
    later, corrections = profile_updates(prof, rng)
    store.create_feature_group(
        "transactions",
        tx,
        primary_key="customer_id",
        event_time="event_ts",
        description="card transactions with rolling spend aggregates per customer",
        features={
            "amount": "transaction amount in USD",
            "merchant_category": "merchant category of the transaction",
            "country": "country where the card was used",
            "tx_count_1d": "number of transactions in the last 24 hours",
            "tx_count_7d": "number of transactions in the last 7 days",
            "amount_sum_1d": "total spend in the last 24 hours",
            "amount_sum_7d": "total spend in the last 7 days",
            "amount_avg_30d": "average transaction amount over the last 30 days",
        },
        metadata={"owner": "risk-team", "source": "card-processor"},
    )
    profiles_fg = store.create_feature_group(
        "customer_profiles",
        prof,
        primary_key="customer_id",
        event_time="updated_at",
        description="customer profile from the CRM",
        features={
            "age": "customer age in years",
            "country": "home country",
            "credit_limit": "card credit limit in USD",
            "account_age_days": "days since the account was opened",
        },
        metadata={"owner": "crm-team", "pii": "age"},
    )
    profiles_fg.insert(later)
    profiles_fg.insert(corrections)
    store.create_feature_group(
        "fraud_labels",
        labels,
        primary_key="customer_id",
        event_time="event_ts",
        description="chargeback-confirmed fraud label per transaction",
        features={"is_fraud": "true when the transaction was confirmed fraud"},
        metadata={"owner": "risk-team"},
    )
    return {
        "transactions": tx.num_rows,
        "customer_profiles": prof.num_rows + later.num_rows,
        "fraud_labels": labels.num_rows,
    }


def limit_change_example(store: Store) -> tuple[int, datetime] | None:
    """A customer whose credit limit changed, with transactions in the day
    before and the day after the change: (customer_id, change time)."""
    profiles = store.get_feature_group("customer_profiles").read()
    changes = [
        (r["customer_id"], r["updated_at"])
        for r in profiles.to_pylist()
        if r["updated_at"] != datetime(2024, 1, 1)
    ]
    tx = store.get_feature_group("transactions").read().select(["customer_id", "event_ts"])
    by_customer: dict[int, list[datetime]] = {}
    for c, t in zip(
        tx.column("customer_id").to_pylist(), tx.column("event_ts").to_pylist(), strict=True
    ):
        by_customer.setdefault(c, []).append(t)
    best, best_score = None, 0
    for customer, at in changes:
        times = by_customer.get(customer, [])
        before = sum(1 for t in times if at - timedelta(days=1) <= t < at)
        after = sum(1 for t in times if at <= t < at + timedelta(days=1))
        score = min(before, after, 3)
        if score > best_score:
            best, best_score = (customer, at), score
    return best


def pit_query(customer: int, at: datetime) -> str:
    """The demo's point-in-time query: labels of one customer around a
    profile change, each joined with the features as they were then."""
    lo = (at - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    hi = (at + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    return f"""SELECT FEATURES credit_limit, amount_sum_7d, tx_count_1d
FROM fraud_labels AS OF fraud_labels.event_ts
WHERE fraud_labels.customer_id = {int(customer)}
  AND fraud_labels.event_ts BETWEEN TIMESTAMP '{lo}' AND TIMESTAMP '{hi}'"""


QUERIES: list[tuple[str, str]] = [
    (
        "Fraud rate by 7-day spend (plain SQL over feature groups)",
        """SELECT CASE WHEN t.amount_sum_7d < 250 THEN '1: < 250'
            WHEN t.amount_sum_7d < 1000 THEN '2: 250-1000'
            WHEN t.amount_sum_7d < 5000 THEN '3: 1000-5000'
            ELSE '4: >= 5000' END AS spend_7d,
       count(*) AS transactions,
       round(100.0 * avg(CASE WHEN l.is_fraud THEN 1 ELSE 0 END), 2) AS fraud_pct
FROM transactions t JOIN fraud_labels l
  ON t.customer_id = l.customer_id AND t.event_ts = l.event_ts
GROUP BY 1 ORDER BY 1""",
    ),
    (
        "Busiest 24 hours per customer, with fraud counts",
        """SELECT t.customer_id, max(t.tx_count_1d) AS max_tx_1d,
       max(t.amount_sum_1d) AS max_spend_1d,
       sum(CASE WHEN l.is_fraud THEN 1 ELSE 0 END) AS frauds
FROM transactions t JOIN fraud_labels l
  ON t.customer_id = l.customer_id AND t.event_ts = l.event_ts
GROUP BY t.customer_id ORDER BY max_spend_1d DESC LIMIT 5""",
    ),
]


def run_demo(path: Path, *, echo: Callable[[str], object] = print) -> None:
    """Build the demo store at ``path``, print real query results and what to
    try next."""
    import fsql
    from fsql.output import format_table

    echo(f"Building a fraud-detection demo store in {path} ...")
    with fsql.connect(path) as store:
        counts = build(store)
        for name, n in counts.items():
            fg = store.get_feature_group(name)
            echo(f"  {name:<18} {n:>6} rows  {fg.description}")
        for title, text in QUERIES:
            echo(f"\n{title}:\n")
            echo(_indent(text))
            echo("")
            echo(format_table(store.sql(text)).rstrip("\n"))

        prof = store.get_feature_group("customer_profiles")
        commits = prof.commits()
        then = prof.read(system_time=commits[0].commit_time_us)
        now = prof.read()
        before, after = _ages(then), _ages(now)
        customer = min(k for k in after if before.get(k) != after[k])
        echo(
            f"\nTime travel: customer_profiles has {len(commits)} commits; the last one "
            f"corrected some ages (an upsert). Customer {customer} as stored then and now:\n"
        )
        echo(
            format_table(
                pa.table(
                    {
                        "read": ["after the first commit", "now"],
                        "age": [before[customer], after[customer]],
                    }
                )
            ).rstrip("\n")
        )
        example = limit_change_example(store)
        if example is not None:
            customer, at = example
            text = pit_query(customer, at)
            echo(
                f"\nPoint-in-time join: every label row gets the feature values as they "
                f"were at its event time. Customer {customer}'s credit limit changed on "
                f"{at:%Y-%m-%d}; rows before it see the old limit:\n"
            )
            echo(_indent(text))
            echo("")
            echo(format_table(store.sql(text)).rstrip("\n"))
        hits = store.search("spend")
        found = sorted(set(hits.column("feature").drop_null().to_pylist()))
        echo(f"\nSearch 'spend' finds the features: {', '.join(found)}")

    q = shlex.quote(str(path))
    activate = ""
    if shutil.which("fsql") is None and sys.prefix != sys.base_prefix:
        # run as .venv/bin/fsql (make demo): the commands below need the venv on PATH
        activate = f"  source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}\n"
    echo(
        "\nTry next:\n"
        f"{activate}"
        f"  export FSQL_STORE={q}\n"
        '  fsql sql "SELECT * FROM customer_profiles WHERE customer_id = 7"\n'
        '  fsql sql "SELECT merchant_category, count(*), avg(amount) FROM transactions '
        'GROUP BY 1 ORDER BY 2 DESC" --format csv\n'
        '  fsql sql "SELECT * FROM fraud_labels WHERE is_fraud" --format parquet '
        "--output fraud.parquet\n"
        '  fsql sql "SELECT FEATURES amount_sum_7d, age, credit_limit '
        'FROM fraud_labels AS OF fraud_labels.event_ts" --format parquet -o training.parquet\n'
        '  fsql sql "SELECT FEATURES amount_sum_7d, credit_limit WHERE customer_id = 42"\n'
        "  fsql ingest fraud.parquet --into confirmed_fraud --primary-key customer_id "
        "--event-time event_ts\n"
        f'  python -c "import fsql; s = fsql.connect({str(path)!r}); '
        "print(s.get_feature_group('transactions').read().num_rows)\""
    )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _ages(table: pa.Table) -> dict[int, int]:
    """Age per customer in the first profile load (updated_at = START)."""
    first = datetime(2024, 1, 1)
    return {r["customer_id"]: r["age"] for r in table.to_pylist() if r["updated_at"] == first}
