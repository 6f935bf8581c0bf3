#!/usr/bin/env bash
# Contract fuzzing: Schemathesis (.venv-openapi, installed by scripts/test.sh) sends
# generated requests to a running `manifold` for every operation of its own OpenAPI
# documents (`swagger:get`), and checks that no answer is a 5xx and every answer matches
# the documented status codes, content type and schema. It runs against the SQLite main
# database's collections and against a PostgreSQL and a MariaDB source, each seeded with a schema of
# every common field type and a relation, and prints each run's figures. Any failure fails
# the script.
#
# Needs: target/debug/manifold (built by `cargo test`), PostgreSQL at
# $MANIFOLD_TEST_POSTGRES_URL, MariaDB at $MANIFOLD_TEST_MYSQL_URL (and the mariadb client),
# curl, and .venv-openapi/bin/schemathesis.
# CONTRACT_EXAMPLES sets the generated requests per operation and phase (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'contract.sh: %s\n' "$*"; }
examples=${CONTRACT_EXAMPLES:-20}
pg_url=${MANIFOLD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
manifold=target/debug/manifold
schemathesis=$PWD/.venv-openapi/bin/schemathesis
[ -x "$manifold" ] || { say "$manifold is missing: run cargo test first" >&2; exit 1; }
[ -x "$schemathesis" ] || { say "$schemathesis is missing: scripts/test.sh installs it" >&2; exit 1; }

work=$(mktemp -d)
database=manifold_contract_$$
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port/api
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  psql "$pg_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
  my -e "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  [ -n "${CONTRACT_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
[ -n "${CONTRACT_KEEP:-}" ] && say "work directory: $work"

# A PostgreSQL database of the kind a user registers: every common column type, a
# foreign key (a relation), a view, and a few rows.
psql "$pg_url" -qc "CREATE DATABASE $database" >/dev/null
psql "${pg_url%/*}/$database" -q >/dev/null <<'SQL'
CREATE TABLE authors (id SERIAL PRIMARY KEY, name VARCHAR(100) NOT NULL, email TEXT UNIQUE);
CREATE TABLE books (
  id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, pages INTEGER, rating REAL,
  price NUMERIC(10, 2), available BOOLEAN DEFAULT true, published DATE,
  added TIMESTAMPTZ DEFAULT now(), meta JSONB, code UUID,
  "authorId" INTEGER REFERENCES authors (id)
);
CREATE VIEW available_books AS SELECT id, title FROM books WHERE available;
INSERT INTO authors (name, email) VALUES ('Ann', 'ann@example.com'), ('Bob', NULL);
INSERT INTO books (title, pages, price, published, meta, "authorId")
  VALUES ('One', 100, 9.99, '2024-01-02', '{"a": 1}', 1), ('Two', NULL, NULL, NULL, NULL, 2);
SQL

# The same on MariaDB.
my_url=${MANIFOLD_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/mysql}
my_rest=${my_url#mysql://}
my_login=${my_rest%%@*}
my_password=""
[[ $my_login == *:* ]] && my_password=${my_login#*:}
my_host_port=${my_rest#*@}
my_host_port=${my_host_port%%/*}
my() {
  MYSQL_PWD=$my_password mariadb -u"${my_login%%:*}" -h"${my_host_port%%:*}" \
    -P"${my_host_port##*:}" --protocol=tcp "$@"
}
my -e "CREATE DATABASE $database"
my "$database" <<'SQL'
CREATE TABLE authors (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL,
  email VARCHAR(200) UNIQUE);
CREATE TABLE books (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, title TEXT NOT NULL, pages INT, rating FLOAT,
  price DECIMAL(10, 2), available BOOLEAN DEFAULT true, published DATE,
  added DATETIME DEFAULT CURRENT_TIMESTAMP, meta JSON, code CHAR(36),
  authorId INT, FOREIGN KEY (authorId) REFERENCES authors (id)
);
CREATE VIEW available_books AS SELECT id, title FROM books WHERE available;
INSERT INTO authors (name, email) VALUES ('Ann', 'ann@example.com'), ('Bob', NULL);
INSERT INTO books (title, pages, price, published, meta, authorId)
  VALUES ('One', 100, 9.99, '2024-01-02', '{"a": 1}', 1), ('Two', NULL, NULL, NULL, NULL, 2);
SQL

MANIFOLD_ROOT_PASSWORD=contract-password "$manifold" serve \
  --main-db "sqlite://$work/main.sqlite" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
# fail <what>: says what did not work, with the server's log, and stops.
fail() { say "$1" >&2; cat "$work/server.log" >&2; exit 1; }
# until_true <what> <command…>: retries for 30 s, then fails.
until_true() {
  local what=$1; shift
  for _ in $(seq 1 120); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  fail "$what"
}
until_true "manifold did not become ready" curl -sf "http://127.0.0.1:$port/health/ready"
token=$(curl -sf -X POST "$base/auth:signIn" -H 'Content-Type: application/json' \
  -d '{"account":"root","password":"contract-password"}' | sed -E 's/.*"token":"([^"]+)".*/\1/') \
  || fail "root could not sign in"
post() {
  curl -sf -X POST "$base/$1" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$2" >/dev/null \
    || fail "POST $1 failed"
}
# The main database's collections: every creatable field type and a relation.
post collections:create '{"name":"notes","fields":[
  {"name":"title","type":"string","allowNull":false},{"name":"body","type":"text"},
  {"name":"score","type":"integer"},{"name":"big","type":"bigInt"},
  {"name":"ratio","type":"double"},{"name":"price","type":"decimal"},
  {"name":"done","type":"boolean"},{"name":"day","type":"date"},
  {"name":"at","type":"datetime"},{"name":"meta","type":"json"}]}'
post collections:create '{"name":"replies","fields":[{"name":"text","type":"text"},
  {"name":"note","type":"belongsTo","target":"notes","foreignKey":"noteId"}]}'
post notes:create '[{"title":"a","score":1,"price":"1.50"},{"title":"b","done":true}]'
post dataSources:create "{\"key\":\"pg\",\"type\":\"postgres\",\"options\":{\"url\":\"${pg_url%/*}/$database\"}}"
post dataSources:create "{\"key\":\"my\",\"type\":\"mysql\",\"options\":{\"url\":\"${my_url%/*}/$database\"}}"
loaded() { curl -sf "$base/dataSources:get/$1" -H "Authorization: Bearer $token" | grep -q '"status":"loaded"'; }
for key in pg my; do
  until_true "data source $key did not load" loaded "$key"
done

failed=0
# run <name> <swagger:get query> [header]: fuzzes one document and prints its figures.
run() {
  local name=$1 query=$2 header=${3:-}
  local doc=$work/$name.json
  curl -sf "$base/swagger:get?$query" -H "Authorization: Bearer $token" -o "$doc" \
    || fail "swagger:get?$query failed"
  # One worker: with two, CPython 3.11's ast.parse, which Hypothesis calls from each
  # worker thread, fails with "AST constructor recursion depth mismatch".
  local args=(run "$doc" --url "$base" -H "Authorization: Bearer $token"
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
    --phases examples,coverage,fuzzing --max-examples "$examples" --workers 1
    --generation-database none --seed 1 --no-color
    --report junit --report-junit-path "$work/$name.xml")
  [ -n "$header" ] && args+=(-H "$header")
  # From the work directory: Schemathesis keeps a cache in `.schemathesis` where it runs.
  if (cd "$work" && "$schemathesis" "${args[@]}") >"$work/$name.log" 2>&1; then
    status=passed
  else
    status=FAILED
    failed=1
    cat "$work/$name.log"
  fi
  python3 - "$work/$name.xml" "$name" "$status" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
operations = sum(int(s.get("tests", 0)) for s in suites)
failures = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
print(f"contract.sh: {sys.argv[2]}: {operations} operations, {failures} failing: {sys.argv[3]}")
PY
  grep -E '^  [0-9]+ generated' "$work/$name.log" | sed "s/^ */contract.sh: $name: requests: /" || true
}
run sqlite-main 'ns=collections'
run postgres-source 'dataSource=pg' 'X-Data-Source: pg'
run mariadb-source 'dataSource=my' 'X-Data-Source: my'
if [ "$failed" != 0 ] && grep -q ' 5[0-9][0-9] ' "$work/server.log"; then
  tail -50 "$work/server.log"
fi
exit "$failed"
