#!/usr/bin/env bash
# Registry benchmarks, side by side in one run against the testbed registry:
#   1. resolve 6 and 200 tags: `release image digest` vs a `skopeo inspect` loop
#   2. copy a multi-layer image to another repository: `release image copy` vs `skopeo copy`
#
#   eval "$(scripts/testbed env)" && scripts/bench/registry.sh
#
# Settings: BENCH_COPY_MB (total layer size of the copy image, default 512),
#           BENCH_LAYERS (default 8), RELEASE (binary, default target/release/release).
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RELEASE_TEST_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
REG="$RELEASE_TEST_REGISTRY"
RELEASE="${RELEASE:-target/release/release}"
COPY_MB="${BENCH_COPY_MB:-512}"
LAYERS="${BENCH_LAYERS:-8}"
CREDS="$RELEASE_REGISTRY_USERNAME:$RELEASE_REGISTRY_PASSWORD"
export RELEASE_REGISTRY="$REG" RELEASE_CONFIG=/nonexistent/release.toml
RUN="bench-$$-$(date +%s)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1f", a / b }'; }

[ -x "$RELEASE" ] || cargo build --release -p release-cli >&2
[ -x examples/hestino/image/demo-service ] || scripts/prepare-example >&2

say "setup: demo image and 200 tags in $REG/bench/$RUN/resolve"
docker build -q -t "$REG/bench/$RUN/resolve:t0" examples/hestino/image >/dev/null
docker push -q "$REG/bench/$RUN/resolve:t0" >/dev/null
refs=()
for i in $(seq 0 199); do refs+=("bench/$RUN/resolve:t$i"); done
for i in $(seq 1 199); do
  "$RELEASE" -q image copy "bench/$RUN/resolve:t0" "bench/$RUN/resolve:t$i" >/dev/null
done

skopeo_loop() {
  for r in "$@"; do
    skopeo inspect --creds "$CREDS" --format '{{.Digest}}' "docker://$REG/$r" >/dev/null
  done
}

rows=()
for n in 6 200; do
  set -- "${refs[@]:0:$n}"
  "$RELEASE" image digest "$@" >/dev/null # warm-up (page cache, registry)
  a=$(now); "$RELEASE" image digest "$@" >"$WORK/ours"; b=$(now)
  ours=$(elapsed_ms "$a" "$b")
  [ "$(wc -l <"$WORK/ours")" = "$n" ] || { say "release printed the wrong number of lines"; exit 1; }
  a=$(now); skopeo_loop "$@"; b=$(now)
  theirs=$(elapsed_ms "$a" "$b")
  rows+=("| resolve $n tags | ${ours} ms | ${theirs} ms (skopeo inspect loop) | $(ratio "$theirs" "$ours")× |")
  say "resolve $n: release ${ours} ms, skopeo ${theirs} ms"
done

say "setup: ${LAYERS}-layer image of ${COPY_MB} MB in $REG/bench/$RUN/big"
ctx="$WORK/big"; mkdir -p "$ctx"
per=$(( COPY_MB / LAYERS ))
{ echo "FROM scratch"; for i in $(seq 1 "$LAYERS"); do
    head -c "${per}M" /dev/urandom >"$ctx/layer$i.bin"; echo "COPY layer$i.bin /layer$i.bin"; done; } >"$ctx/Dockerfile"
docker build -q -t "$REG/bench/$RUN/big:1" "$ctx" >/dev/null
docker push -q "$REG/bench/$RUN/big:1" >/dev/null
rm -rf "$ctx"

a=$(now)
/usr/bin/time -f '%M' -o "$WORK/rss" "$RELEASE" --json image copy "bench/$RUN/big:1" "bench/$RUN/big-copy-release:1" >"$WORK/copy.json"
b=$(now)
ours=$(elapsed_ms "$a" "$b"); rss_kb=$(cat "$WORK/rss")
uploaded=$(sed -n 's/.*"bytes_uploaded": \([0-9]*\).*/\1/p' "$WORK/copy.json")
a=$(now)
skopeo copy -q --src-creds "$CREDS" --dest-creds "$CREDS" \
  "docker://$REG/bench/$RUN/big:1" "docker://$REG/bench/$RUN/big-copy-skopeo:1" >/dev/null
b=$(now)
theirs=$(elapsed_ms "$a" "$b")
rows+=("| copy ${COPY_MB} MB (${LAYERS} layers) to another repository | ${ours} ms, ${uploaded} blob bytes uploaded, peak RSS $((rss_kb / 1024)) MB | ${theirs} ms (skopeo copy) | $(ratio "$theirs" "$ours")× |")
say "copy: release ${ours} ms (${uploaded} bytes uploaded), skopeo ${theirs} ms"

digest_src=$("$RELEASE" image digest "bench/$RUN/big:1" | cut -d' ' -f2)
digest_dst=$("$RELEASE" image digest "bench/$RUN/big-copy-release:1" | cut -d' ' -f2)
[ "$digest_src" = "$digest_dst" ] || { say "copy changed the digest"; exit 1; }

echo "| benchmark | release | baseline | speed-up |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
