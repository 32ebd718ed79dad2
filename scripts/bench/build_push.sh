#!/usr/bin/env bash
# `release build` + `release push` of the example (6 services) against the same work done
# with `docker build` + `docker push`, alternating, in one run. Needs the testbed.
#
#   eval "$(scripts/testbed env)" && scripts/bench/build_push.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
rounds="${1:-3}"
: "${RELEASE_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
scripts/prepare-example >/dev/null
cargo build --quiet --release -p release-cli
example=examples/hestino
services=(api admin-api app admin-app worker redis)
state="$(mktemp -d)"
trap 'rm -rf "$state"' EXIT
release=(target/release/release -q --config "$example/release.toml" --state-dir "$state")

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

ours=() theirs=()
for round in $(seq 1 "$rounds"); do
  v="9.$round.$(date +%s)"
  t0=$(now_ms)
  "${release[@]}" build --version "$v" >/dev/null 2>&1
  "${release[@]}" push --version "$v" >/dev/null
  t1=$(now_ms)
  v="8.$round.$(date +%s)"
  for s in "${services[@]}"; do
    docker build -q -t "$RELEASE_REGISTRY/hestino/$s:$v" --build-arg SERVICE="$s" --build-arg VERSION="$v" \
      --label "org.opencontainers.image.version=$v" --label "org.opencontainers.image.created=$(date -u +%FT%TZ)" \
      "$example/image" >/dev/null 2>&1
  done
  for s in "${services[@]}"; do docker push -q "$RELEASE_REGISTRY/hestino/$s:$v" >/dev/null; done
  t2=$(now_ms)
  ours+=($((t1 - t0))) theirs+=($((t2 - t1)))
  echo "round $round: release build+push $((t1 - t0)) ms, docker build+push $((t2 - t1)) ms" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
o=$(median "${ours[@]}") d=$(median "${theirs[@]}")
printf '| benchmark (6 services, median of %s) | release | docker CLI | release / docker |\n|---|---|---|---|\n' "$rounds"
printf '| build + push + record digests | %s ms | %s ms (build + push, no digest record) | %s |\n' "$o" "$d" "$(awk -v a="$o" -v b="$d" 'BEGIN{printf "%.2f×", a/b}')"
