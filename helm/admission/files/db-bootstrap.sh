#!/bin/sh
# Creates or updates the app's three database users from their Secrets and
# gives each the least it needs, as the master user. Idempotent: it runs
# before every sync, so a rotated password in a Secret takes effect here.
#
#   writer   (DATABASE_URL)       SELECT, INSERT, UPDATE, DELETE on DB_NAME
#   reader   (DATABASE_READ_URL)  SELECT on DB_NAME
#   migrator (admission migrate)  the above plus schema changes on DB_NAME
#
# Nothing on any other database, no global privilege, no GRANT OPTION: a
# user found with more (granted by hand, or by an older version of this
# script) loses everything and gets its grants again. The usual run finds
# nothing to revoke and only re-grants, so running pods never miss a grant.
#
# Plain SQL that MySQL 8 (Aurora MySQL 3) and MariaDB both accept; the same
# script is run twice against MariaDB by `cargo xtask test`.
#
# Environment (the Job fills it from its Secrets and values):
#   DB_HOST DB_PORT DB_NAME  the writer endpoint and the app's database
#   MASTER_USER MASTER_PASSWORD
#   APP_USER APP_PASSWORD READER_USER READER_PASSWORD MIGRATOR_USER MIGRATOR_PASSWORD
#   DB_CLIENT_FLAGS          extra mysql client flags (TLS), may be empty
#   DB_WAIT_SECONDS          how long to wait for the database (default 120)
set -eu

for var in DB_HOST DB_PORT DB_NAME MASTER_USER APP_USER APP_PASSWORD \
    READER_USER READER_PASSWORD MIGRATOR_USER MIGRATOR_PASSWORD; do
  eval "value=\${$var:-}"
  if [ -z "$value" ]; then
    echo "db-bootstrap: $var is not set" >&2
    exit 2
  fi
done

# Identifiers cannot be bound as parameters: accept only plain names.
for name in "$DB_NAME" "$APP_USER" "$READER_USER" "$MIGRATOR_USER"; do
  case "$name" in
    *[!A-Za-z0-9_]*) echo "db-bootstrap: \`$name\` is not a plain name ([A-Za-z0-9_])" >&2; exit 2 ;;
  esac
done
if [ "$APP_USER" = "$READER_USER" ] || [ "$APP_USER" = "$MIGRATOR_USER" ] || [ "$READER_USER" = "$MIGRATOR_USER" ]; then
  echo "db-bootstrap: the writer, reader and migrator must be three different users" >&2
  exit 2
fi

# The master password goes to the client through its environment, never argv.
export MYSQL_PWD="${MASTER_PASSWORD:-}"

# A SQL string literal: quotes doubled; backslashes doubled, since the
# session below turns NO_BACKSLASH_ESCAPES off.
quote() {
  printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}

# shellcheck disable=SC2086 # DB_CLIENT_FLAGS is a list of flags
sql() {
  mysql ${DB_CLIENT_FLAGS:-} --protocol=TCP -h "$DB_HOST" -P "$DB_PORT" \
    -u "$MASTER_USER" --batch --skip-column-names \
    -e "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', ''); $1"
}

wait_for_database() {
  deadline=$(( $(date +%s) + ${DB_WAIT_SECONDS:-120} ))
  until sql "SELECT 1" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "db-bootstrap: $DB_HOST:$DB_PORT did not answer within ${DB_WAIT_SECONDS:-120} s" >&2
      sql "SELECT 1" >/dev/null
      exit 1
    fi
    echo "db-bootstrap: waiting for $DB_HOST:$DB_PORT" >&2
    sleep 5
  done
}

# ensure_user USER PASSWORD 'PRIV','PRIV',...
ensure_user() {
  user=$(quote "$1")
  password=$(quote "$2")
  wanted=$3
  grantee=$(quote "'$1'@'%'")
  db=$(quote "$DB_NAME")
  sql "CREATE USER IF NOT EXISTS $user@'%' IDENTIFIED BY $password;
       ALTER USER $user@'%' IDENTIFIED BY $password;"
  extra=$(sql "SELECT COUNT(*) FROM (
      SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES
        WHERE GRANTEE = $grantee AND PRIVILEGE_TYPE <> 'USAGE'
      UNION ALL SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES
        WHERE GRANTEE = $grantee
          AND (TABLE_SCHEMA <> $db OR PRIVILEGE_TYPE NOT IN ($wanted) OR IS_GRANTABLE = 'YES')
      UNION ALL SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES
        WHERE GRANTEE = $grantee
      UNION ALL SELECT PRIVILEGE_TYPE FROM information_schema.COLUMN_PRIVILEGES
        WHERE GRANTEE = $grantee
    ) AS extra;")
  if [ "$extra" != "0" ]; then
    echo "db-bootstrap: $1 had $extra privilege(s) beyond its own: revoking them" >&2
    sql "REVOKE ALL PRIVILEGES, GRANT OPTION FROM $user@'%';"
  fi
  privileges=$(printf '%s' "$wanted" | tr -d "'")
  sql "GRANT $privileges ON \`$DB_NAME\`.* TO $user@'%';"
  echo "db-bootstrap: $1: $privileges on $DB_NAME"
}

wait_for_database
sql "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4;"
ensure_user "$APP_USER" "$APP_PASSWORD" "'SELECT','INSERT','UPDATE','DELETE'"
ensure_user "$READER_USER" "$READER_PASSWORD" "'SELECT'"
ensure_user "$MIGRATOR_USER" "$MIGRATOR_PASSWORD" \
  "'SELECT','INSERT','UPDATE','DELETE','CREATE','DROP','ALTER','INDEX','REFERENCES','CREATE VIEW','SHOW VIEW','TRIGGER'"
echo "db-bootstrap: done"
