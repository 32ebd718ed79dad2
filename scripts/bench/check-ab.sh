#!/usr/bin/env bash
# Two builds of `release` side by side on the example's own checks: `release check --env
# ENV` on examples/hestino (the DEV set: one HTTP, one TCP and six Swarm checks), the
# builds alternating, ROUNDS rounds, medians of the process wall time and of the check run
# (report `seconds`). For judging a change to the check code:
#
#   git worktree add /tmp/before HEAD~1 && (cd /tmp/before && cargo build --release -p release-cli)
#   cargo build --release -p release-cli
#   scripts/bench/check-ab.sh /tmp/before/target/release/release target/release/release
#
# Needs the example deployed (scripts/demo). The checks append to a copy of the demo's
# state directory, never to the demo's own. Settings: ENV (default dev), ROUNDS (default
# 20). Prints a Markdown table on stdout.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BINARY_A BINARY_B" >&2; exit 2; }
# Resolved where the caller stands, before moving to the repository.
A="$(realpath "$1")"
B="$(realpath "$2")"
cd "$(dirname "$0")/../.."

ENV="${ENV:-dev}"
ROUNDS="${ROUNDS:-20}"
STATE="$PWD/target/demo-state"
[ -d "$STATE" ] || { echo "bench: $STATE is missing; run scripts/demo first" >&2; exit 3; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$STATE" "$WORK/state"
# shellcheck source=scripts/bench/settle.sh
. scripts/bench/settle.sh
settle

RELEASE_CONFIG="$PWD/examples/hestino/release.toml" RELEASE_STATE_DIR="$WORK/state" \
  python3 - "$ENV" "$ROUNDS" "$1" "$A" "$2" "$B" <<'EOF'
import json, statistics, subprocess, sys, time

env, rounds = sys.argv[1], int(sys.argv[2])
# Labels as given; the same binary twice measures the noise.
builds = [(f"A: {sys.argv[3]}", sys.argv[4]), (f"B: {sys.argv[5]}", sys.argv[6])]
wall = {k: [] for k, _ in builds}
run = {k: [] for k, _ in builds}
for _ in range(rounds):
    for name, binary in builds:
        t = time.perf_counter()
        p = subprocess.run([binary, "-q", "--json", "check", "--env", env],
                           capture_output=True, text=True)
        wall[name].append((time.perf_counter() - t) * 1000)
        if p.returncode != 0:
            sys.exit(f"bench: {name} exited {p.returncode}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        report = json.loads(p.stdout)
        run[name].append(report["seconds"] * 1000)
n = len(report["checks"])
print(f"| `release check --env {env}` ({n} checks), median of {rounds} rounds | process wall | check run |")
print("|---|---|---|")
for name, _ in builds:
    print(f"| {name} | {statistics.median(wall[name]):.1f} ms | {statistics.median(run[name]):.1f} ms |")
EOF
