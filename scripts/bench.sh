#!/usr/bin/env bash
# Runs the benchmark harness (bench/, docs/benchmarks.md): installs wrk and pgbench when
# missing, builds the release `manifold` and the `baseline`, and runs `manifold-bench`
# with the arguments given (`--quick` for a smoke run; `--help` lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v pgbench >/dev/null || need_apt+=(postgresql-client)
command -v curl >/dev/null || need_apt+=(curl)
if ((${#need_apt[@]})); then
    echo "installing ${need_apt[*]}" >&2
    apt-get install -y "${need_apt[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y "${need_apt[@]}" >/dev/null; }
fi

cargo build --release --bin manifold
cargo build --release -p manifold-bench --bin manifold-bench --bin baseline

target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
exec "$target_dir/release/manifold-bench" \
    --manifold-bin "$target_dir/release/manifold" \
    --baseline-bin "$target_dir/release/baseline" \
    --work-dir "$target_dir/bench" \
    "$@"
