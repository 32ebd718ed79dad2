#!/usr/bin/env bash
# Deploy benchmark, side by side in one run on the testbed's DEV server (its single-node
# Swarm, reached over mutual TLS through the example's Docker context): update the 6-service
# example (examples/hestino, DEV stack: update_config.monitor 5s) from V1 to V2 with
#   1. `release deploy` (all services watched at once, each held for its monitor window)
#   2. `"${DEV_DOCKER[@]}" stack deploy --detach=false` (the CLI waits for one service after another)
# on two stacks rendered from the same digest-pinned file. Also reports the latency from
# the last task turning running (= healthy: Swarm keeps a health-checked task `starting`
# until it is) to `release deploy` exiting; by design that includes one monitor window.
#
#   eval "$(scripts/testbed env)" && scripts/bench/deploy.sh
#
# Settings: RELEASE (binary, default target/debug/release: the work is waiting, not CPU).
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RELEASE_TEST_REGISTRY:?run: eval \"\$(scripts/testbed env)\"}"
export RELEASE_REGISTRY="$RELEASE_TEST_REGISTRY"
RELEASE="${RELEASE:-target/debug/release}"
RUN="$$-$(date +%s)"
OURS="bench-ours-$RUN"
THEIRS="bench-cli-$RUN"
V1="0.1.$(date +%s)1"
V2="0.1.$(date +%s)2"
WORK="$(mktemp -d)"
DEV_DOCKER=(docker --context release-testbed-dev)
cleanup() {
  "${DEV_DOCKER[@]}" stack rm "$OURS" "$THEIRS" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1f", a / b }'; }

[ -x "$RELEASE" ] || cargo build -p release-cli >&2
[ -x examples/hestino/image/demo-service ] || scripts/prepare-example >&2

# A private copy of the example: its own stack name and host port, the image context absolute.
EXAMPLE="$PWD/examples/hestino"
sed -e "s|^context = \"image\"|context = \"$EXAMPLE/image\"|" \
    -e "s|^stack = \"hestino-dev\"|stack = \"$OURS\"|" \
    -e "s|:18080|:18091|" "$EXAMPLE/release.toml" >"$WORK/release.toml"
sed -e "s|published: 18080|published: 18091|" "$EXAMPLE/stack.dev.yml" >"$WORK/stack.dev.yml"
cp "$EXAMPLE/stack.prod.yml" "$WORK/stack.prod.yml"
export RELEASE_CONFIG="$WORK/release.toml" RELEASE_STATE_DIR="$WORK/state"

for v in "$V1" "$V2"; do
  say "build and push $v"
  "$RELEASE" -q build --version "$v" >/dev/null
  "$RELEASE" -q push --version "$v" >/dev/null
done

say "setup: $V1 on $OURS (release deploy) and $THEIRS (docker stack deploy)"
"$RELEASE" -q deploy --env dev --version "$V1" >/dev/null
their_stack() { sed -e "s|published: 18091|published: 18092|" "$WORK/state/stacks/dev/$1.yml" >"$WORK/theirs-$1.yml"; }
their_stack "$V1"
"${DEV_DOCKER[@]}" stack deploy --detach=false --resolve-image never --with-registry-auth \
  -c "$WORK/theirs-$V1.yml" "$THEIRS" >/dev/null 2>&1

say "release deploy $V1 -> $V2"
a=$(now)
"$RELEASE" --json deploy --env dev --version "$V2" >"$WORK/ours.json"
b=$(now)
ours=$(secs "$a" "$b")
# Latest time a running task of the stack reached `running`.
last_running=$("${DEV_DOCKER[@]}" stack ps "$OURS" --no-trunc -q --filter desired-state=running \
  | xargs "${DEV_DOCKER[@]}" inspect --format '{{.Status.Timestamp.Unix}}.{{printf "%09d" .Status.Timestamp.Nanosecond}}' \
  | sort -n | tail -1)
latency=$(secs "$last_running" "$b")

say ""${DEV_DOCKER[@]}" stack deploy --detach=false $V1 -> $V2"
their_stack "$V2"
a=$(now)
"${DEV_DOCKER[@]}" stack deploy --detach=false --resolve-image never --with-registry-auth \
  -c "$WORK/theirs-$V2.yml" "$THEIRS" >/dev/null 2>&1
b=$(now)
theirs=$(secs "$a" "$b")
# Same end state: every running task on the pinned image of its service.
grep -c '"result": "converged"' "$WORK/ours.json" | grep -qx 6 || { say "release did not converge all 6 services"; exit 1; }

echo "| scenario | release deploy | "${DEV_DOCKER[@]}" stack deploy --detach=false | speed-up |"
echo "|---|---|---|---|"
echo "| update 6 services V1→V2 (monitor 5s) | ${ours} s | ${theirs} s | $(ratio "$theirs" "$ours")× |"
echo
echo "Last task running → \`release deploy\` exit: ${latency} s (includes the 5 s monitor window)."
