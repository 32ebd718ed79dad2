#!/usr/bin/env bash
# Check benchmark, side by side in one run: 100 HTTP checks against the running example
# DEV service (admin-app, 127.0.0.1:18080, deployed by scripts/demo) with
#   1. `release check` (all checks concurrent, one HTTP client, JSON pointer judged)
#   2. a sequential `curl -sf` loop over the same 100 URLs
# and `release check`'s total time against its slowest single check.
#
#   eval "$(scripts/testbed env)" && scripts/bench/check.sh
#
# Settings: RELEASE (binary, default target/debug/release), CHECKS (default 100), ROUNDS
# (default 5; the tools alternate, the table shows medians and per-round ratios' medians),
# URL_BASE (default http://127.0.0.1:18080). Prints a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

RELEASE="${RELEASE:-target/debug/release}"
CHECKS="${CHECKS:-100}"
ROUNDS="${ROUNDS:-5}"
URL_BASE="${URL_BASE:-http://127.0.0.1:18080}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }

[ -x "$RELEASE" ] || cargo build -p release-cli >&2
curl -sf -o /dev/null "$URL_BASE/health" || {
  echo "bench: $URL_BASE/health does not answer; run scripts/demo first" >&2
  exit 3
}

# The example config, its DEV checks replaced by $CHECKS HTTP checks on distinct URLs.
EXAMPLE="$PWD/examples/hestino"
awk '/^\[\[environments\.dev\.checks\]\]/ { skip = 1 } /^\[environments\.prod\]/ { skip = 0 } !skip' \
  "$EXAMPLE/release.toml" |
  sed -e "s|^context = \"image\"|context = \"$EXAMPLE/image\"|" >"$WORK/release.toml"
cp "$EXAMPLE"/stack.*.yml "$WORK/"
: >"$WORK/urls"
for i in $(seq 1 "$CHECKS"); do
  url="$URL_BASE/health?check=$i"
  echo "$url" >>"$WORK/urls"
  cat >>"$WORK/release.toml" <<EOF

[[environments.dev.checks]]
kind = "http"
name = "health $i"
service = "admin-app"
url = "$url"
json_pointer = "/status"
json_equals = "ok"
timeout = "5s"
EOF
done
export RELEASE_CONFIG="$WORK/release.toml" RELEASE_STATE_DIR="$WORK/state"

say "warm-up"
"$RELEASE" -q check --env dev >/dev/null
while read -r url; do curl -sf -o /dev/null "$url"; done <"$WORK/urls"

# The process wall time, taken by the parent around the child alone (two `date` forks
# would add 3-5 ms to a 30 ms run).
timed() {
  python3 -c '
import subprocess, sys, time
with open(sys.argv[1], "w") as out:
    t = time.perf_counter()
    subprocess.run(sys.argv[2:], stdout=out, check=True)
    print(round((time.perf_counter() - t) * 1000, 1))
' "$@"
}

ours=(); runs=(); slowests=(); theirs=(); wall_ratio=(); run_ratio=(); bounded=()
for round in $(seq 1 "$ROUNDS"); do
  wall=$(timed "$WORK/report.json" "$RELEASE" -q --json check --env dev)
  # The same checks, at most 16 at a time: fewer connections for the service to accept.
  bounded+=("$(timed /dev/null "$RELEASE" -q --json check --env dev --concurrency 16)")
  t1=$(now)
  while read -r url; do curl -sf -o /dev/null "$url"; done <"$WORK/urls"
  t2=$(now)
  read -r run slowest passed <<<"$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(round(r["seconds"] * 1000, 1), round(r["slowest"] * 1000, 1), r["passed"])
' "$WORK/report.json")"
  [ "$passed" = "$CHECKS" ] || { say "only $passed of $CHECKS checks passed"; exit 1; }
  ours+=("$wall"); theirs+=("$(ms "$t1" "$t2")"); runs+=("$run"); slowests+=("$slowest")
  wall_ratio+=("$(awk -v b="${ours[-1]}" -v s="$slowest" 'BEGIN { printf "%.2f", b / s }')")
  run_ratio+=("$(awk -v r="$run" -v s="$slowest" 'BEGIN { printf "%.2f", r / s }')")
  say "round $round: release ${ours[-1]} ms (run $run ms, slowest check $slowest ms), --concurrency 16 ${bounded[-1]} ms, curl loop ${theirs[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
o=$(median "${ours[@]}"); t=$(median "${theirs[@]}")

printf '| measure (median of %s rounds) | value |\n|---|---|\n' "$ROUNDS"
printf '| `release check`, %s HTTP checks, process wall time | %s ms |\n' "$CHECKS" "$o"
printf '| `release check`, the checks themselves (report `seconds`) | %s ms |\n' "$(median "${runs[@]}")"
printf '| slowest single check | %s ms |\n' "$(median "${slowests[@]}")"
printf '| `release check --concurrency 16`, process wall time | %s ms |\n' "$(median "${bounded[@]}")"
printf '| sequential `curl` loop, same %s URLs | %s ms |\n' "$CHECKS" "$t"
printf '| speed-up over curl (process wall) | %s× |\n' "$(awk -v a="$t" -v b="$o" 'BEGIN { printf "%.1f", a / b }')"
printf '| check run / slowest check | %s× |\n' "$(median "${run_ratio[@]}")"
printf '| process wall / slowest check | %s× |\n' "$(median "${wall_ratio[@]}")"
