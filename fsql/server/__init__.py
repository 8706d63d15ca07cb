"""The Postgres-wire server: psql, JDBC and BI tools reach the store."""
