#!/bin/sh
# First start: a cluster with trust auth and the `harvester` database; then the server.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --auth=trust --username=postgres --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    echo "listen_addresses = '127.0.0.1'" >> "$PGDATA/postgresql.conf"
    echo "CREATE DATABASE harvester" | postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -k /tmp
