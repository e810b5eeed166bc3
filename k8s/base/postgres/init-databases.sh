#!/bin/sh
# One database and one login role per service, each owning only its own database (docs/design.md: no service
# reads another's tables). Run once by the postgres image's entrypoint on an empty data directory
# (/docker-entrypoint-initdb.d). Passwords come from the environment: <SERVICE>_DB_PASSWORD.
# Names and passwords go through psql variables (:"name", :'pw'), so they are quoted by psql, not by the shell.
set -eu

for service in auth users orders payments notifications; do
    var="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
    password="$(printenv "$var" || true)"
    if [ -z "$password" ]; then
        echo "init-databases: $var is not set" >&2
        exit 1
    fi
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
         -v name="$service" -v pw="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'pw';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done
