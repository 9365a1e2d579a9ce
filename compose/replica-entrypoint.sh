#!/usr/bin/env bash
# Entrypoint of a streaming replica: on first start (empty data directory)
# clone the primary with pg_basebackup, creating this replica's physical
# replication slot and writing standby.signal plus primary_conninfo (-R);
# then hand over to the official image's entrypoint, which starts postgres
# as the postgres user on the existing data directory.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:?set PRIMARY_HOST}"
: "${PRIMARY_PORT:=5432}"
: "${REPLICATION_USER:?set REPLICATION_USER}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
: "${SLOT_NAME:?set SLOT_NAME (the replication slot, e.g. the service name)}"

# application_name = the slot name = the node name in pgrelay.toml, so
# pg_stat_replication on the primary names replicas as pgrelay does.
conninfo="host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER password=$REPLICATION_PASSWORD application_name=$SLOT_NAME"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 0700 "$PGDATA"

  echo "replica $SLOT_NAME: waiting for $PRIMARY_HOST:$PRIMARY_PORT"
  until gosu postgres pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT"; do
    sleep 1
  done

  # A clone that died half-way (container killed, volume removed) leaves
  # its slot behind, and -C refuses an existing slot: drop it if unused.
  gosu postgres psql "$conninfo dbname=postgres" -v ON_ERROR_STOP=1 -qAt \
    -v slot="$SLOT_NAME" <<'SQL'
SELECT pg_drop_replication_slot(slot_name)
  FROM pg_replication_slots
 WHERE slot_name = :'slot' AND NOT active;
SQL

  echo "replica $SLOT_NAME: cloning $PRIMARY_HOST with pg_basebackup"
  gosu postgres pg_basebackup --dbname="$conninfo" --pgdata="$PGDATA" \
    --write-recovery-conf --wal-method=stream \
    --create-slot --slot="$SLOT_NAME" --checkpoint=fast
fi

exec docker-entrypoint.sh postgres
