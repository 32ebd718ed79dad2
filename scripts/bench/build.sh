#!/usr/bin/env bash
# BuildKit builds: `release build` + `release push` of the example's 6 services against
# `docker buildx build --push` of the same images (same builder, build args and labels,
# attestations off), and the old classic-builder path (`builder = "classic"`), alternating
# in one run. Images go to `buildkit-bench/…` repositories of the testbed registry, so the
# demo's `hestino/…` images are never touched; local tags are removed afterwards.
#
#   eval "$(scripts/testbed env)" && scripts/bench/build.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd -P)
export PATH="$HOME/.cargo/bin:$PATH"
rounds="${1:-3}"
: "${RELEASE_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
scripts/prepare-example >/dev/null
cargo build --quiet --release -p release-cli
example="$root/examples/hestino"
services=(api admin-api app admin-app worker redis)
work="$(mktemp -d)"
tags=()
cleanup() {
  for t in "${tags[@]}"; do docker image rm "$t" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The example's config with its repositories under buildkit-bench/ and absolute paths.
sed -e 's|^repository = "hestino/|repository = "buildkit-bench/hestino/|' \
    -e "s|^context = \"image\"|context = \"$example/image\"|" \
    -e "s|^stack_file = \"|stack_file = \"$example/|" \
    "$example/release.toml" >"$work/buildkit.toml"
sed -e 's|^\(context = .*\)$|\1\nbuilder = "classic"|' "$work/buildkit.toml" >"$work/classic.toml"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
release() { target/release/release -q --config "$1" --state-dir "$work/state-$2" "${@:3}"; }
remember() { for s in "${services[@]}"; do tags+=("$RELEASE_REGISTRY/buildkit-bench/hestino/$s:$1"); done; }

bk=() cl=() bx=()
for round in $(seq 1 "$rounds"); do
  stamp=$(date +%s)
  v="9.$round.$stamp"; remember "$v"
  t0=$(now_ms)
  release "$work/buildkit.toml" bk build --version "$v" >/dev/null 2>&1
  release "$work/buildkit.toml" bk push --version "$v" >/dev/null
  t1=$(now_ms)
  v="7.$round.$stamp"; remember "$v"
  release "$work/classic.toml" cl build --version "$v" >/dev/null 2>&1
  release "$work/classic.toml" cl push --version "$v" >/dev/null
  t2=$(now_ms)
  v="8.$round.$stamp"; remember "$v"
  for s in "${services[@]}"; do
    docker buildx build --builder default --progress plain --provenance=false --sbom=false --push \
      -t "$RELEASE_REGISTRY/buildkit-bench/hestino/$s:$v" --build-arg SERVICE="$s" --build-arg VERSION="$v" \
      --label "org.opencontainers.image.version=$v" --label "org.opencontainers.image.created=$(date -u +%FT%TZ)" \
      --label "org.opencontainers.image.title=$s" "$example/image" >/dev/null 2>&1
  done
  t3=$(now_ms)
  bk+=($((t1 - t0))) cl+=($((t2 - t1))) bx+=($((t3 - t2)))
  echo "round $round: release (BuildKit) $((t1 - t0)) ms, release (classic) $((t2 - t1)) ms, docker buildx --push $((t3 - t2)) ms" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
b=$(median "${bk[@]}") c=$(median "${cl[@]}") x=$(median "${bx[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f×", a/b}'; }
printf '| 6 services, median of %s | wall time | / docker buildx --push |\n|---|---|---|\n' "$rounds"
printf '| release build + push (BuildKit; digests confirmed and recorded) | %s ms | %s |\n' "$b" "$(ratio "$b" "$x")"
printf '| release build + push (builder = "classic") | %s ms | %s |\n' "$c" "$(ratio "$c" "$x")"
printf '| docker buildx build --push, one per service (no digest record) | %s ms | 1.00× |\n' "$x"
