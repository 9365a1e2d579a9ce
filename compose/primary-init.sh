#!/usr/bin/env bash
# Runs once, when the primary's data directory is first initialized (the
# official image runs /docker-entrypoint-initdb.d/*.sh as the postgres user
# against a temporary server): creates the replication role the replicas'
# pg_basebackup and streaming use, the application role and database, and
# lets the replication role in over the network. pg_hba.conf lives in the
# data directory, so pg_basebackup copies these lines to every replica and
# a promoted replica accepts its peers' streaming connections too.
set -euo pipefail

: "${REPLICATION_USER:=replicator}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
: "${APP_PASSWORD:?set APP_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v repl_user="$REPLICATION_USER" -v repl_password="$REPLICATION_PASSWORD" \
  -v app_password="$APP_PASSWORD" <<'SQL'
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN PASSWORD :'repl_password';
CREATE ROLE app WITH LOGIN PASSWORD :'app_password';
CREATE DATABASE app OWNER app;
SQL

# The image's own line ("host all all all scram-sha-256") does not cover
# replication connections, which match only the keyword "replication".
echo "host replication ${REPLICATION_USER} all scram-sha-256" >>"$PGDATA/pg_hba.conf"
