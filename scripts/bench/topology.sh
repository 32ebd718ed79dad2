#!/usr/bin/env bash
# Topology benchmark, side by side in one run on the testbed's servers: the 6-service
# example with DEV on the `dev` server (single-node Swarm) and PROD on the 3-node PROD
# Swarm, both reached from the agent over mutual TLS (Docker contexts release-testbed-dev
# and release-testbed-prod), updated from V1 to V2:
#   1. `release deploy --env dev` and `release promote --to prod`, each against the Swarm
#      floor: the last new task turning running (= healthy: Swarm keeps a health-checked
#      task `starting` until it is), measured from the command's start, plus the 5 s
#      monitor window both tools hold;
#   2. on PROD's engine, `docker stack deploy --detach=false --with-registry-auth` of the
#      same rendered, digest-pinned file to a second stack.
#
#   eval "$(scripts/testbed env)" && scripts/bench/topology.sh
#
# Settings: RELEASE (binary, default target/debug/release: the work is waiting, not CPU),
#           ROUNDS (V1→V2 updates per tool, alternating; default 2).
# Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RELEASE_TESTBED_PROD_TCP:?run: eval \"\$(scripts/testbed env)\"}"
export RELEASE_REGISTRY="$RELEASE_TEST_REGISTRY"
RELEASE="${RELEASE:-target/debug/release}"
ROUNDS="${ROUNDS:-2}"
RUN="$$-$(date +%s)"
DEV="bench-tdev-$RUN"
PROD="bench-tprod-$RUN"
THEIRS="bench-tcli-$RUN"
WORK="$(mktemp -d)"
cleanup() {
  docker --context release-testbed-dev stack rm "$DEV" >/dev/null 2>&1 || true
  docker --context release-testbed-prod stack rm "$PROD" "$THEIRS" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.2f", a / b }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

[ -x "$RELEASE" ] || cargo build -p release-cli >&2
[ -x examples/hestino/image/demo-service ] || scripts/prepare-example >&2

# A private copy of the example: its own stack names, the image context absolute.
EXAMPLE="$PWD/examples/hestino"
sed -e "s|^context = \"image\"|context = \"$EXAMPLE/image\"|" \
    -e "s|^stack = \"hestino-dev\"|stack = \"$DEV\"|" \
    -e "s|^stack = \"hestino-prod\"|stack = \"$PROD\"|" \
    -e "s|:18080|:18093|; s|:28080|:28093|" "$EXAMPLE/release.toml" >"$WORK/release.toml"
# Its own host ports: the demo's stacks may be running on the same servers.
for f in stack.dev.yml stack.prod.yml; do
  sed -e "s|published: 18080|published: 18093|; s|published: 28080|published: 28093|" "$EXAMPLE/$f" >"$WORK/$f"
done
export RELEASE_CONFIG="$WORK/release.toml" RELEASE_STATE_DIR="$WORK/state"

# Latest time a running task of STACK on CONTEXT reached `running`.
last_running() {
  docker --context "$1" stack ps "$2" --no-trunc -q --filter desired-state=running \
    | xargs docker --context "$1" inspect --format '{{.Status.Timestamp.Unix}}.{{printf "%09d" .Status.Timestamp.Nanosecond}}' \
    | sort -n | tail -1
}
MONITOR=5

versions=()
for i in $(seq 0 "$ROUNDS"); do versions+=("0.2.$(date +%s)$i"); done
for v in "${versions[@]}"; do
  say "build and push $v"
  "$RELEASE" -q build --version "$v" >/dev/null
  "$RELEASE" -q push --version "$v" >/dev/null
done
v1="${versions[0]}"
say "setup: $v1 on DEV, on PROD (release promote) and on $THEIRS (docker stack deploy)"
"$RELEASE" -q deploy --env dev --version "$v1" >/dev/null
"$RELEASE" -q check --env dev >/dev/null
"$RELEASE" -q promote --version "$v1" --to prod --approved-by bench >/dev/null
theirs_file() { sed -e "s|published: 28093|published: 28092|" "$WORK/state/stacks/prod/$1.yml" >"$WORK/theirs-$1.yml"; }
theirs_file "$v1"
docker --context release-testbed-prod stack deploy --detach=false --resolve-image never \
  --with-registry-auth -c "$WORK/theirs-$v1.yml" "$THEIRS" >/dev/null 2>&1

: >"$WORK/dev"; : >"$WORK/prod"; : >"$WORK/cli"; : >"$WORK/devr"; : >"$WORK/prodr"
for v in "${versions[@]:1}"; do
  say "release deploy --env dev -> $v"
  a=$(now); "$RELEASE" -q deploy --env dev --version "$v" >/dev/null; b=$(now)
  floor=$(awk -v a="$a" -v l="$(last_running release-testbed-dev "$DEV")" -v m="$MONITOR" 'BEGIN { printf "%.2f", l - a + m }')
  echo "$(secs "$a" "$b") $floor" >>"$WORK/dev"; ratio "$(secs "$a" "$b")" "$floor" >>"$WORK/devr"; echo >>"$WORK/devr"
  "$RELEASE" -q check --env dev >/dev/null

  say "release promote --to prod -> $v"
  a=$(now); "$RELEASE" -q promote --version "$v" --to prod --approved-by bench >/dev/null; b=$(now)
  floor=$(awk -v a="$a" -v l="$(last_running release-testbed-prod "$PROD")" -v m="$MONITOR" 'BEGIN { printf "%.2f", l - a + m }')
  echo "$(secs "$a" "$b") $floor" >>"$WORK/prod"; ratio "$(secs "$a" "$b")" "$floor" >>"$WORK/prodr"; echo >>"$WORK/prodr"

  say "docker stack deploy --detach=false (PROD engine) -> $v"
  theirs_file "$v"
  a=$(now)
  docker --context release-testbed-prod stack deploy --detach=false --resolve-image never \
    --with-registry-auth -c "$WORK/theirs-$v.yml" "$THEIRS" >/dev/null 2>&1
  b=$(now)
  echo "$(secs "$a" "$b")" >>"$WORK/cli"
done

col() { awk -v c="$1" 'NF { print $c }' "$2" | median; }
echo "| V1→V2, 6 services, monitor 5 s (median of $ROUNDS) | wall | Swarm floor | wall / floor |"
echo "|---|---|---|---|"
echo "| \`release deploy\`, DEV server (1 node, TLS) | $(col 1 "$WORK/dev") s | $(col 2 "$WORK/dev") s | $(grep . "$WORK/devr" | median)× |"
echo "| \`release promote\`, PROD Swarm (3 nodes, TLS) | $(col 1 "$WORK/prod") s | $(col 2 "$WORK/prod") s | $(grep . "$WORK/prodr" | median)× |"
echo "| \`docker stack deploy --detach=false\`, PROD Swarm | $(col 1 "$WORK/cli") s | | |"
echo
echo "Per round (wall floor): DEV $(tr '\n' ' ' <"$WORK/dev"| sed 's/ *$//'); PROD $(tr '\n' ' ' <"$WORK/prod" | sed 's/ *$//'); CLI $(tr '\n' ' ' <"$WORK/cli" | sed 's/ *$//')."
