#!/usr/bin/env bash
# Make sure the local services the tests talk to are up, and install the
# client tools the tests drive (psql, Java + the PostgreSQL JDBC driver).
set -uo pipefail
need_apt=()
command -v psql >/dev/null || need_apt+=(postgresql-client)
command -v javac >/dev/null || need_apt+=(openjdk-17-jdk-headless)
[ -e /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
if ((${#need_apt[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
mariadb-admin -h 127.0.0.1 -u root status >/dev/null 2>&1 || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
exit 0
