"""Training datasets: immutable, versioned, materialized results of a feature
query, with the query, feature-group versions and system time recorded so
they can be rebuilt row for row."""
