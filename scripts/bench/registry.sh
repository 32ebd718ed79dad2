#!/usr/bin/env bash
# Registry benchmarks, side by side in one run, against both testbed registries (the
# basic-auth one and the token-auth one on the same storage):
#   1. resolve 6 and 200 tags: `release image digest` vs a `skopeo inspect` loop
#   2. copy a multi-layer image to another repository: `release image copy` vs `skopeo copy`
# Each measure is taken ROUNDS times, the tools alternating; the table shows medians.
#
#   eval "$(scripts/testbed env)" && scripts/bench/registry.sh
#
# Settings: BENCH_COPY_MB (total layer size of the copy image, default 512),
#           BENCH_LAYERS (default 8), RELEASE (binary, default target/release/release),
#           ROUNDS (default 5).
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RELEASE_TEST_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
REG="$RELEASE_TEST_REGISTRY"
TOKEN_REG="${RELEASE_TEST_TOKEN_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
ROUNDS="${ROUNDS:-5}"
RELEASE="${RELEASE:-target/release/release}"
COPY_MB="${BENCH_COPY_MB:-512}"
LAYERS="${BENCH_LAYERS:-8}"
CREDS="$RELEASE_REGISTRY_USERNAME:$RELEASE_REGISTRY_PASSWORD"
export RELEASE_REGISTRY="$REG" RELEASE_CONFIG=/nonexistent/release.toml
RUN="bench-$$-$(date +%s)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT  # replaced below once skopeo's cache is set aside

say() { printf 'bench: %s\n' "$*" >&2; }
# Times come from bash's own clock, $EPOCHREALTIME: `$(date ...)` would fork and add a
# millisecond or two to every measure.
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1f", a / b }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

[ -x "$RELEASE" ] || cargo build --release -p release-cli >&2
# The registries share the 2 cores with everything else; running stacks (the example's
# health checks) move the figures by 10-30 %.
running=$(docker stack ls --format '{{.Name}}' 2>/dev/null | tr '\n' ' ')
[ -z "$running" ] || say "warning: stacks running ($running); figures will be noisier; docker stack rm them for a quiet machine"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
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
  local reg="$1"; shift
  for r in "$@"; do
    skopeo inspect --creds "$CREDS" --format '{{.Digest}}' "docker://$reg/$r" >/dev/null
  done
}

# CPU time a registry process has used, in ms (from /proc; 10 ms resolution). The
# registries share the machine's cores with the client: their CPU per run is a floor no
# client can go under (basic auth costs a bcrypt comparison on every request).
TESTBED_DIR="${RELEASE_TESTBED_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/release-testbed}"
registry_pid() {
  if [ "$1" = "$REG" ]; then cat "$TESTBED_DIR/registry.pid"; else cat "$TESTBED_DIR/registry-token.pid"; fi
}
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }

rows=()
label() { if [ "$1" = "$REG" ]; then echo "basic auth"; else echo "token auth"; fi; }

for reg in "$REG" "$TOKEN_REG"; do
  for n in 6 200; do
    set -- "${refs[@]:0:$n}"
    full=(); for r in "$@"; do full+=("$reg/$r"); done
    "$RELEASE" image digest "${full[@]}" >/dev/null # warm-up (page cache, registry)
    ours=(); theirs=(); cpu=(); pid=$(registry_pid "$reg")
    for round in $(seq 1 "$ROUNDS"); do
      c0=$(cpu_ms "$pid")
      a=$EPOCHREALTIME; "$RELEASE" image digest "${full[@]}" >"$WORK/ours"; b=$EPOCHREALTIME
      cpu+=("$(( $(cpu_ms "$pid") - c0 ))")
      ours+=("$(elapsed_ms "$a" "$b")")
      [ "$(wc -l <"$WORK/ours")" = "$n" ] || { say "release printed the wrong number of lines"; exit 1; }
      a=$EPOCHREALTIME; skopeo_loop "$reg" "$@"; b=$EPOCHREALTIME
      theirs+=("$(elapsed_ms "$a" "$b")")
      say "resolve $n ($(label "$reg")) round $round: release ${ours[-1]} ms (registry CPU ${cpu[-1]} ms), skopeo ${theirs[-1]} ms"
    done
    o=$(median "${ours[@]}"); t=$(median "${theirs[@]}")
    rows+=("| resolve $n tags, $(label "$reg") | ${o} ms (registry CPU $(median "${cpu[@]}") ms) | ${t} ms (skopeo inspect loop) | $(ratio "$t" "$o")× |")
  done
done

say "setup: ${LAYERS}-layer image of ${COPY_MB} MB in $REG/bench/$RUN/big"
ctx="$WORK/big"; mkdir -p "$ctx"
per=$(( COPY_MB / LAYERS ))
{ echo "FROM scratch"; for i in $(seq 1 "$LAYERS"); do
    head -c "${per}M" /dev/urandom >"$ctx/layer$i.bin"; echo "COPY layer$i.bin /layer$i.bin"; done; } >"$ctx/Dockerfile"
docker build -q -t "$REG/bench/$RUN/big:1" "$ctx" >/dev/null
docker push -q "$REG/bench/$RUN/big:1" >/dev/null
rm -rf "$ctx"
digest_src=$("$RELEASE" image digest "bench/$RUN/big:1" | cut -d' ' -f2)

# skopeo keeps a blob-info cache: once it has copied a blob it mounts it next time instead
# of uploading. In the pipeline the layers were pushed by docker, so skopeo has never seen
# them (cold); a second copy of the same layers finds them (warm). Both are measured, with
# the user's own cache set aside and put back afterwards.
if [ "$(id -u)" = 0 ]; then SKOPEO_CACHE=/var/lib/containers/cache; else SKOPEO_CACHE="${XDG_DATA_HOME:-$HOME/.local/share}/containers/cache"; fi
mkdir -p "$SKOPEO_CACHE" "$WORK/skopeo-cache"
mv "$SKOPEO_CACHE"/blob-info-cache-v1.* "$WORK/skopeo-cache/" 2>/dev/null || true
restore_cache() {
  rm -f "$SKOPEO_CACHE"/blob-info-cache-v1.*
  mv "$WORK/skopeo-cache"/* "$SKOPEO_CACHE/" 2>/dev/null || true
  rm -rf "$WORK"
}
trap restore_cache EXIT

skopeo_copy() {
  skopeo copy -q --src-creds "$CREDS" --dest-creds "$CREDS" "docker://$1" "docker://$2" >/dev/null
}

for reg in "$REG" "$TOKEN_REG"; do
  ours=(); cold=(); warm=(); rss=(); cpu=(); uploaded_all=0; pid=$(registry_pid "$reg")
  for round in $(seq 1 "$ROUNDS"); do
    # Fresh destination repositories every round, so no tool finds the blobs linked there.
    tag="$round-${reg##*:}"
    dst="$reg/bench/$RUN/copy-release-$tag:1"
    c0=$(cpu_ms "$pid")
    a=$EPOCHREALTIME
    "$RELEASE" --json image copy "$reg/bench/$RUN/big:1" "$dst" >"$WORK/copy.json"
    b=$EPOCHREALTIME
    cpu+=("$(( $(cpu_ms "$pid") - c0 ))")
    ours+=("$(elapsed_ms "$a" "$b")")
    # Peak RSS from a second, untimed copy (wrapping the timed one in time(1) would add
    # its own fork and exec to a 40 ms measure).
    /usr/bin/time -f '%M' -o "$WORK/rss" "$RELEASE" -q image copy "$reg/bench/$RUN/big:1" "$reg/bench/$RUN/copy-rss-$tag:1" >/dev/null
    rss+=("$(cat "$WORK/rss")")
    uploaded=$(sed -n 's/.*"bytes_uploaded": \([0-9]*\).*/\1/p' "$WORK/copy.json")
    uploaded_all=$((uploaded_all + uploaded))
    [ "$("$RELEASE" image digest "$dst" | cut -d' ' -f2)" = "$digest_src" ] || { say "copy changed the digest"; exit 1; }
    rm -f "$SKOPEO_CACHE"/blob-info-cache-v1.*
    a=$EPOCHREALTIME; skopeo_copy "$reg/bench/$RUN/big:1" "$reg/bench/$RUN/copy-skopeo-cold-$tag:1"; b=$EPOCHREALTIME
    cold+=("$(elapsed_ms "$a" "$b")")
    a=$EPOCHREALTIME; skopeo_copy "$reg/bench/$RUN/big:1" "$reg/bench/$RUN/copy-skopeo-warm-$tag:1"; b=$EPOCHREALTIME
    warm+=("$(elapsed_ms "$a" "$b")")
    say "copy ($(label "$reg")) round $round: release ${ours[-1]} ms (${uploaded} bytes uploaded, registry CPU ${cpu[-1]} ms), skopeo cold ${cold[-1]} ms, warm ${warm[-1]} ms"
  done
  o=$(median "${ours[@]}"); c=$(median "${cold[@]}"); w=$(median "${warm[@]}"); r=$(median "${rss[@]}")
  what="copy ${COPY_MB} MB (${LAYERS} layers) to another repository, $(label "$reg")"
  rows+=("| $what | ${o} ms (registry CPU $(median "${cpu[@]}") ms), ${uploaded_all} blob bytes uploaded in ${ROUNDS} rounds, peak RSS $((r / 1024)) MB | ${c} ms (skopeo copy, blob cache cold) | $(ratio "$c" "$o")× |")
  rows+=("| $what | ${o} ms | ${w} ms (skopeo copy, blob cache warm: it mounts) | $(ratio "$w" "$o")× |")
done

echo "| benchmark (median of $ROUNDS) | release | baseline | speed-up |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
