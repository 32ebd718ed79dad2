#!/usr/bin/env bash
# Check benchmark, side by side in one run, for two sets of 100 checks:
#   http   GET /health?check=N on the running example DEV service (admin-app,
#          127.0.0.1:18080, deployed by scripts/demo), JSON pointer /status == "ok":
#          answers that cost next to nothing, so the run is bound by the machine's CPU;
#   https  GET https://REGISTRY/v2/?check=N on the testbed registry, 401 expected, verified
#          against the testbed CA: a TLS handshake per check, each check waits on the server;
# each with
#   1. `release check` (all checks concurrent, one HTTP client)
#   2. a sequential `curl` loop over the same URLs
# and `release check`'s total time against its slowest single check.
#
#   eval "$(scripts/testbed env)" && scripts/bench/check.sh
#
# Settings: RELEASE (binary, default target/debug/release), CHECKS (default 100), ROUNDS
# (default 5; the tools alternate, the table shows medians and per-round ratios' medians),
# URL_BASE (default http://198.18.0.10:18080: the demo's DEV admin-app on the dev server), RELEASE_TEST_REGISTRY and RELEASE_REGISTRY_CA
# (set by `scripts/testbed env`). Prints a Markdown table on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."

RELEASE="${RELEASE:-target/debug/release}"
CHECKS="${CHECKS:-100}"
ROUNDS="${ROUNDS:-5}"
URL_BASE="${URL_BASE:-http://198.18.0.10:18080}"
: "${RELEASE_TEST_REGISTRY:?is unset: run eval \"\$(scripts/testbed env)\" first}"
: "${RELEASE_REGISTRY_CA:?is unset: run eval \"\$(scripts/testbed env)\" first}"
TLS_BASE="https://$RELEASE_TEST_REGISTRY"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

[ -x "$RELEASE" ] || cargo build -p release-cli >&2
curl -sf -o /dev/null "$URL_BASE/health" || {
  echo "bench: $URL_BASE/health does not answer; run scripts/demo first" >&2
  exit 3
}
code=$(curl -s --cacert "$RELEASE_REGISTRY_CA" -o /dev/null -w '%{http_code}' "$TLS_BASE/v2/" || true)
[ "$code" = 401 ] || {
  echo "bench: $TLS_BASE/v2/ answered '$code', not 401; run scripts/testbed up first" >&2
  exit 3
}

# config SET: the example config with its DEV checks replaced by $CHECKS checks of SET,
# in $WORK/SET/release.toml, their URLs in $WORK/SET/urls.
EXAMPLE="$PWD/examples/hestino"
config() {
  local set="$1" dir="$WORK/$1" url judge
  mkdir -p "$dir"
  awk '/^\[\[environments\.dev\.checks\]\]/ { skip = 1 } /^\[environments\.prod\]/ { skip = 0 } !skip' \
    "$EXAMPLE/release.toml" |
    sed -e "s|^context = \"image\"|context = \"$EXAMPLE/image\"|" >"$dir/release.toml"
  cp "$EXAMPLE"/stack.*.yml "$dir/"
  : >"$dir/urls"
  for i in $(seq 1 "$CHECKS"); do
    if [ "$set" = http ]; then
      url="$URL_BASE/health?check=$i"
      judge="json_pointer = \"/status\"
json_equals = \"ok\""
    else
      url="$TLS_BASE/v2/?check=$i"
      judge="expect_status = 401
ca = \"$RELEASE_REGISTRY_CA\""
    fi
    echo "$url" >>"$dir/urls"
    cat >>"$dir/release.toml" <<EOF

[[environments.dev.checks]]
kind = "http"
name = "$set $i"
service = "admin-app"
url = "$url"
$judge
timeout = "5s"
EOF
  done
}

# curl_loop SET: the sequential loop a user would otherwise write; every URL must answer
# what the check expects.
curl_loop() {
  local set="$1" url code
  while read -r url; do
    if [ "$set" = http ]; then
      curl -sf -o /dev/null "$url"
    else
      code=$(curl -sS --cacert "$RELEASE_REGISTRY_CA" -o /dev/null -w '%{http_code}' "$url" || true)
      [ "$code" = 401 ] || { say "$url answered '$code', not 401"; return 1; }
    fi
  done <"$WORK/$set/urls"
}

# release SET [ARGS...]: `release check` on SET's config; prints the process wall time in
# ms, taken by the parent around the child alone (two `date` forks would add 3-5 ms to a
# 30 ms run), and leaves the JSON report in $WORK/SET/report.json. A failed check (exit 1)
# is reported by the caller from the report; any other exit stops the benchmark.
release() {
  local set="$1"
  shift
  RELEASE_CONFIG="$WORK/$set/release.toml" RELEASE_STATE_DIR="$WORK/$set/state" python3 -c '
import subprocess, sys, time
with open(sys.argv[1], "w") as out:
    t = time.perf_counter()
    code = subprocess.run(sys.argv[2:], stdout=out).returncode
    print(round((time.perf_counter() - t) * 1000, 1))
    sys.exit(0 if code in (0, 1) else code)
' "$WORK/$set/report.json" "$RELEASE" -q --json check --env dev "$@"
}

# shellcheck source=scripts/bench/settle.sh
. scripts/bench/settle.sh
sets=(http https)
for set in "${sets[@]}"; do config "$set"; done
settle
say "warm-up"
for set in "${sets[@]}"; do
  release "$set" >/dev/null
  curl_loop "$set"
done

declare -A ours runs slowests theirs speedups wall_ratio run_ratio
bounded=()
for round in $(seq 1 "$ROUNDS"); do
  for set in "${sets[@]}"; do
    wall=$(release "$set")
    read -r run slowest passed <<<"$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(round(r["seconds"] * 1000, 1), round(r["slowest"] * 1000, 1), r["passed"])
' "$WORK/$set/report.json")"
    [ "$passed" = "$CHECKS" ] || { say "$set: only $passed of $CHECKS checks passed"; exit 1; }
    t1=$(now)
    curl_loop "$set"
    t2=$(now)
    loop=$(ms "$t1" "$t2")
    ours[$set]+=" $wall"
    runs[$set]+=" $run"
    slowests[$set]+=" $slowest"
    theirs[$set]+=" $loop"
    speedups[$set]+=" $(ratio "$loop" "$wall")"
    wall_ratio[$set]+=" $(ratio "$wall" "$slowest")"
    run_ratio[$set]+=" $(ratio "$run" "$slowest")"
    say "round $round, $set: release $wall ms (run $run ms, slowest check $slowest ms), curl loop $loop ms"
  done
  # The same HTTP checks, at most 16 at a time: fewer connections for the service to accept.
  bounded+=("$(release http --concurrency 16)")
done

# row LABEL ARRAY SUFFIX: the medians of one measure for both sets (for the ratio rows,
# the median of the per-round ratios).
row() {
  local -n values="$2"
  # shellcheck disable=SC2086 # space-separated numbers
  printf '| %s | %s%s | %s%s |\n' "$1" "$(median ${values[http]})" "$3" "$(median ${values[https]})" "$3"
}

printf '| measure (median of %s rounds) | %s HTTP checks, example on loopback | %s HTTPS checks, testbed registry |\n|---|---|---|\n' \
  "$ROUNDS" "$CHECKS" "$CHECKS"
row '`release check`, process wall time' ours ' ms'
row '`release check`, the checks themselves (report `seconds`)' runs ' ms'
row 'slowest single check' slowests ' ms'
row "sequential \`curl\` loop, same $CHECKS URLs" theirs ' ms'
row 'speed-up over curl (process wall)' speedups '×'
row 'check run / slowest check' run_ratio '×'
row 'process wall / slowest check' wall_ratio '×'
printf '| `release check --concurrency 16`, process wall time | %s ms | |\n' "$(median "${bounded[@]}")"
