#!/usr/bin/env bash
# Audit on a generated 100,000-entry ledger: `release audit --env prod --at T` and
# `release audit verify`, side by side with `sha256sum` and `openssl dgst -sha256` of the
# same file (the floor for any tool that must read and hash every byte; verify also parses
# every line and hashes each one separately). Needs no testbed.
#
#   scripts/bench/audit.sh [ENTRIES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
entries="${1:-100000}"
runs="${2:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release -p release-cli -p verify --example generate-ledger
target/release/examples/generate-ledger "$work/state" "$entries" >/dev/null
release=(target/release/release --config examples/hestino/release.toml --state-dir "$work/state")
at="$(date -u -d '-3 hours' +%Y-%m-%dT%H:%M:%SZ)"

# Best of N wall-clock milliseconds of a command.
best_ms() {
  local best=999999 start end ms
  for _ in $(seq 1 "$runs"); do
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    (( ms < best )) && best=$ms
  done
  echo "$best"
}

"${release[@]}" audit verify | grep -q "chain: intact" || { echo "generated ledger does not verify" >&2; exit 1; }
size=$(du -m "$work/state/ledger.jsonl" | cut -f1)
at_ms=$(best_ms "${release[@]}" audit --env prod --at "$at")
verify_ms=$(best_ms "${release[@]}" audit verify)
sha_ms=$(best_ms sha256sum "$work/state/ledger.jsonl")
ssl_ms=$(best_ms openssl dgst -sha256 "$work/state/ledger.jsonl")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f×", a/b}'; }

printf '| benchmark (%s entries, %s MB, best of %s) | release | sha256sum | openssl dgst | release / sha256sum | release / openssl |\n' "$entries" "$size" "$runs"
printf '|---|---|---|---|---|---|\n'
for row in "audit --env prod --at T:$at_ms" "audit verify:$verify_ms"; do
  ms="${row##*:}"
  printf '| %s | %s ms | %s ms | %s ms | %s | %s |\n' "${row%:*}" "$ms" "$sha_ms" "$ssl_ms" "$(ratio "$ms" "$sha_ms")" "$(ratio "$ms" "$ssl_ms")"
done
