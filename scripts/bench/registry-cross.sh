#!/usr/bin/env bash
# Cross-registry copy of a ~1 GB multi-layer image: `release image copy` against
# `skopeo copy`, side by side, each into its own fresh repository of a second registry
# (started here on another loopback port, stopped at the end). Reports wall time and peak
# RSS of both.
#
#   eval "$(scripts/testbed env)" && scripts/bench/registry-cross.sh
#
# Settings: BENCH_COPY_MB (default 1024), BENCH_LAYERS (default 8),
#           BENCH_SECOND_PORT (default 5446), RELEASE (default target/release/release).
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RELEASE_TEST_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
SRC="$RELEASE_TEST_REGISTRY"
PORT="${BENCH_SECOND_PORT:-5446}"
DST="127.0.0.1:$PORT"
RELEASE="${RELEASE:-target/release/release}"
COPY_MB="${BENCH_COPY_MB:-1024}"
LAYERS="${BENCH_LAYERS:-8}"
CREDS="$RELEASE_REGISTRY_USERNAME:$RELEASE_REGISTRY_PASSWORD"
export RELEASE_CONFIG=/nonexistent/release.toml
RUN="cross-$$-$(date +%s)"
WORK="$(mktemp -d)"
say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }

[ -x "$RELEASE" ] || cargo build --release -p release-cli >&2

say "second registry on https://$DST (data in $WORK/data)"
sed -e "s|rootdirectory: .*|rootdirectory: $WORK/data|" -e "s|addr: .*|addr: $DST|" \
  "$RELEASE_TESTBED_DIR/registry.yml" >"$WORK/registry.yml"
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
second=$!
trap 'kill $second 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir -p "$WORK/certs"
cp "$RELEASE_REGISTRY_CA" "$WORK/certs/ca.crt"
for _ in $(seq 1 40); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$RELEASE_REGISTRY_CA" "https://$DST/v2/")" = 401 ] && break
  sleep 0.25
done

say "setup: ${LAYERS}-layer image of ${COPY_MB} MB in $SRC/bench/$RUN/big"
ctx="$WORK/big"; mkdir -p "$ctx"
per=$(( COPY_MB / LAYERS ))
{ echo "FROM scratch"; for i in $(seq 1 "$LAYERS"); do
    head -c "${per}M" /dev/urandom >"$ctx/layer$i.bin"; echo "COPY layer$i.bin /layer$i.bin"; done; } >"$ctx/Dockerfile"
docker build -q -t "$SRC/bench/$RUN/big:1" "$ctx" >/dev/null 2>&1
docker push -q "$SRC/bench/$RUN/big:1" >/dev/null
docker rmi -f "$SRC/bench/$RUN/big:1" >/dev/null
rm -rf "$ctx"
sync

a=$(now)
/usr/bin/time -f '%M' -o "$WORK/rss-release" "$RELEASE" --json image copy \
  "$SRC/bench/$RUN/big:1" "$DST/bench/$RUN/release:1" >"$WORK/copy.json"
b=$(now)
ours=$(elapsed_ms "$a" "$b"); ours_rss=$(( $(cat "$WORK/rss-release") / 1024 ))
a=$(now)
/usr/bin/time -f '%M' -o "$WORK/rss-skopeo" skopeo copy -q \
  --src-creds "$CREDS" --dest-creds "$CREDS" --src-cert-dir "$WORK/certs" --dest-cert-dir "$WORK/certs" \
  "docker://$SRC/bench/$RUN/big:1" "docker://$DST/bench/$RUN/skopeo:1" >/dev/null
b=$(now)
theirs=$(elapsed_ms "$a" "$b"); theirs_rss=$(( $(cat "$WORK/rss-skopeo") / 1024 ))

src_digest=$("$RELEASE" image digest "$SRC/bench/$RUN/big:1" | cut -d' ' -f2)
dst_digest=$("$RELEASE" image digest "$DST/bench/$RUN/release:1" | cut -d' ' -f2)
[ "$src_digest" = "$dst_digest" ] || { say "copy changed the digest: $src_digest -> $dst_digest"; exit 1; }
streamed=$(sed -n 's/.*"bytes_uploaded": \([0-9]*\).*/\1/p' "$WORK/copy.json")

echo "| benchmark | release | skopeo copy | release / skopeo |"
echo "|---|---|---|---|"
printf '| copy %s MB (%s layers) to another registry: wall time | %s ms | %s ms | %s× |\n' \
  "$COPY_MB" "$LAYERS" "$ours" "$theirs" "$(awk -v a="$ours" -v b="$theirs" 'BEGIN{printf "%.2f", a/b}')"
printf '| same copy: peak RSS | %s MB | %s MB | %s× |\n' \
  "$ours_rss" "$theirs_rss" "$(awk -v a="$ours_rss" -v b="$theirs_rss" 'BEGIN{printf "%.2f", a/b}')"
say "release uploaded $streamed bytes; digest preserved ($src_digest)"
