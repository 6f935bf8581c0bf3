#!/usr/bin/env bash
# Measures the release `manifold`'s memory on large requests (docs/benchmarks.md, "Large
# requests"): peak RSS (VmHWM) and RSS 10 s later (VmRSS), each case on a fresh process so
# its peak is its own. Not run by CI.
#
#   scripts/memory.sh [sqlite|postgres]...     (default: both)
#
# Cases: one 100,000-row bulk create (~9.9 MB body); four concurrent 20,000-row (~2 MB)
# bulk creates; `list?paginate=false` over 100,000 rows; four of those at once; and a
# mixed run of 4,000 requests from 8 clients (wide filters, sorts, pages, field lists,
# malformed and refused bodies, 600-row creates, 5,000-row lists), as a fuzz run sends.
# PostgreSQL uses MANIFOLD_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# and a scratch database `manifold_memory` it drops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p manifold-server >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/release/manifold"
work="$(mktemp -d)"
port=13917
base="http://127.0.0.1:$port"
pg_url="${MANIFOLD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_scratch="${pg_url%/*}/manifold_memory"
pid=""

cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    psql -q "$pg_url" -c 'DROP DATABASE IF EXISTS manifold_memory' >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Bodies: rows of six columns, as the issue measured them.
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
def rows(n, start=0):
    return [{"title": f"post {i}", "body": "lorem ip", "score": i % 1000,
             "status": "new", "rating": (i % 50) / 10, "published": i % 2 == 0}
            for i in range(start, start + n)]
with open(f"{work}/100k.json", "w") as f:
    json.dump(rows(100_000), f, separators=(",", ":"))
with open(f"{work}/20k.json", "w") as f:
    json.dump(rows(20_000), f, separators=(",", ":"))
EOF
cat >"$work/mixed.py" <<'EOF'
# 4,000 varied requests from 8 threads; prints each answer's status, one per line, at the end.
import collections, json, random, sys, threading, urllib.error, urllib.parse, urllib.request
codes = collections.Counter()
base, token = sys.argv[1], sys.argv[2]
ops = ["$eq", "$ne", "$gt", "$lt", "$in", "$notIn", "$includes", "$like", "$empty", "$bogus"]
fields = ["title", "body", "score", "status", "rating", "published", "nope"]
def value(rng):
    return rng.choice([1, -5, 3.5, "x", "post 1", True, None, [], [1, 2], {"a": 1}, "9" * 40])
def flt(rng, depth=0):
    if depth < 3 and rng.random() < 0.3:
        return {rng.choice(["$and", "$or"]): [flt(rng, depth + 1) for _ in range(rng.randint(0, 4))]}
    if rng.random() < 0.05:
        return {"$or": [{"score": {"$eq": i}} for i in range(1000)]}
    return {rng.choice(fields): {rng.choice(ops): value(rng)}}
def request(rng):
    kind = rng.random()
    if kind < 0.6:
        q = {"filter": json.dumps(flt(rng)), "sort": rng.choice(["-score", "title", "nope", "-id"]),
             "page": str(rng.randint(-1, 50)), "pageSize": str(rng.choice([1, 20, 200, 0, -3]))}
        if rng.random() < 0.3:
            q["fields"] = rng.choice(["id,title", "score", "nope"])
        return "GET", "/api/posts:list?" + urllib.parse.urlencode(q), None
    if kind < 0.7:
        return "GET", "/api/posts:list?paginate=false&filter=" + urllib.parse.quote(
            json.dumps({"id": {"$lte": 5000}})), None
    if kind < 0.8:
        rows = [{"title": f"m {i}", "score": i, "status": "new", "rating": 1.5, "published": True}
                for i in range(600)]
        return "POST", "/api/posts:create", json.dumps(rows).encode()
    bodies = [b"{", b"[]", b'{"score":"high"}', b'{"nope":1}', b'[{"score":1},{"score":"x"}]',
              json.dumps({"title": "t" * 100_000}).encode()]
    return "POST", rng.choice(["/api/posts:create", "/api/posts:update?filterByTk=1"]), rng.choice(bodies)
def worker(seed):
    rng = random.Random(seed)
    for _ in range(500):
        method, path, body = request(rng)
        req = urllib.request.Request(base + path, data=body, method=method, headers={
            "Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
                code = r.status
        except urllib.error.HTTPError as e:
            e.read()
            code = e.code
        codes[code] += 1
threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
for code, n in sorted(codes.items()):
    print("\n".join([str(code)] * n))
EOF
echo "bodies: 100k rows $(stat -c %s "$work/100k.json") bytes, 20k rows $(stat -c %s "$work/20k.json") bytes" >&2

start() { # main-db
    "$bin" serve --listen "127.0.0.1:$port" --main-db "$1" >"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        curl -sf "$base/health/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    token=$(curl -s -X POST "$base/api/auth:signIn" -H 'Content-Type: application/json' \
        -d '{"account":"root","password":"memory"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
}

stop() {
    kill "$pid" && wait "$pid" 2>/dev/null || true
    pid=""
}

status() { # field
    awk -v f="$1:" '$1 == f { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"
}

create() { # body file
    curl -s -o /dev/null -w '%{http_code} (%{size_download} B)\n' -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -X POST "$base/api/posts:create" --data-binary "@$1"
}

# The table holds 180,000 rows once both create cases ran; the lists read 100,000.
list_all() {
    curl -s -o /dev/null -w '%{http_code} (%{size_download} B)\n' -H "Authorization: Bearer $token" \
        "$base/api/posts:list?paginate=false&filter=%7B%22id%22%3A%7B%22%24lte%22%3A100000%7D%7D"
}

run_case() { # main-db label command...
    local db=$1 label=$2
    shift 2
    start "$db"
    local before
    before=$(status VmRSS)
    local codes
    codes=$("$@" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
    local peak
    peak=$(status VmHWM)
    sleep 10
    printf '| %s | %s | %s MB | %s MB | %s MB | %s|\n' \
        "$engine" "$label" "$before" "$peak" "$(status VmRSS)" "$codes"
    stop
}

mixed() {
    python3 "$work/mixed.py" "$base" "$token"
}

four() { # command arg
    for _ in 1 2 3 4; do "$@" & done
    wait
}

export MANIFOLD_ROOT_PASSWORD=memory
echo '| main | case | RSS before | peak RSS | RSS 10 s later | answers |'
echo '| --- | --- | ---: | ---: | ---: | --- |'
engines=("$@")
((${#engines[@]})) || engines=(sqlite postgres)
for engine in "${engines[@]}"; do
    case $engine in
        sqlite) db="sqlite://$work/main.sqlite" ;;
        postgres)
            psql -q "$pg_url" -c 'DROP DATABASE IF EXISTS manifold_memory' -c 'CREATE DATABASE manifold_memory' >/dev/null
            db="$pg_scratch"
            ;;
        *) echo "unknown engine $engine" >&2; exit 2 ;;
    esac
    start "$db"
    curl -s -o /dev/null -H "Authorization: Bearer $token" -X POST "$base/api/collections:create" \
        -H 'Content-Type: application/json' \
        -d '{"name":"posts","fields":[{"name":"title","type":"string"},{"name":"body","type":"text"},{"name":"score","type":"integer"},{"name":"status","type":"string"},{"name":"rating","type":"float"},{"name":"published","type":"boolean"}]}'
    stop
    run_case "$db" "one 100k-row create" create "$work/100k.json"
    run_case "$db" "four 20k-row creates at once" four create "$work/20k.json"
    run_case "$db" "list paginate=false, 100k rows" list_all
    run_case "$db" "four such lists at once" four list_all
    run_case "$db" "mixed run, 4,000 requests from 8 clients" mixed
done
