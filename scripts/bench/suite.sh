#!/usr/bin/env bash
# What the test suite costs: `scripts/test` of each REV, one after the other, each on a
# clean clone (what CI runs), with every phase's seconds read off the timestamped log.
#
#   scripts/bench/suite.sh REV [REV...]        e.g. scripts/bench/suite.sh 8da9b2b HEAD
#
# Run it alone, as root, on the machine CI uses: anything else on the two cores shows up in
# the figures. Bring the testbed up first (`scripts/testbed up`), so that no run pays for
# installing packages the next one finds installed. Every clone builds from nothing (its own
# target directory, cargo-fuzz included); the crates.io download cache is shared.
#
# Logs stay in target/bench-suite/<rev>.log, each line prefixed with seconds since start.
# Prints a table: phase | seconds per REV. A run that fails is reported with its phase.
set -euo pipefail
cd "$(dirname "$0")/../.."
(($# > 0)) || { echo "usage: scripts/bench/suite.sh REV [REV...]" >&2; exit 2; }
repo=$PWD
out=$repo/target/bench-suite
mkdir -p "$out"

# Each phase starts at the first line matching its pattern after the previous phase began.
# The fallbacks match the output of commits older than scripts/test's phase lines.
phases=(
  "setup@"
  "fmt and clippy@^== cargo fmt --check"
  "test build@^== cargo test"
  "tests before e2e@^ +Running "
  "e2e@^ +Running .*e2e/main\.rs"
  "tests after e2e@^ +(Running|Doc-tests) "
  "fuzz smoke@^== (fuzz smoke|installing cargo-fuzz|cargo fuzz build)"
  "Jenkins@^== (Jenkins harness|npm-groovy-lint)"
  "fault campaign smoke@^== fault campaign smoke|^[0-9]+ passed, [0-9]+ failed in "
  "end@^== scripts/test passed in"
)

# Seconds spent in each phase of a timestamped log, one per line, "?" where it did not start.
phase_seconds() {
  local log=$1
  awk -v spec="$(printf '%s\n' "${phases[@]}")" '
    BEGIN { n = split(spec, rows, "\n"); for (i = 1; i <= n; i++) { split(rows[i], f, "@"); pat[i] = f[2] }
            at[1] = 0; next_phase = 2 }
    {
      t = $1; sub(/^[0-9]+ /, "")
      # (The fallback for the campaign is the last line of the Jenkins harness.)
      if (next_phase <= n && $0 ~ pat[next_phase]) at[next_phase++] = t
      last = t
    }
    END {
      for (i = 1; i < n; i++) {
        if (i + 1 in at) print at[i + 1] - at[i]
        else if (i in at) { print "(stopped at " last - at[i] " s)"; for (j = i + 1; j < n; j++) print "?"; break }
      }
      print (n in at) ? at[n] : "failed after " last
    }' "$log"
}

declare -A column
for rev in "$@"; do
  sha=$(git rev-parse --short "$rev^{commit}")
  clone=$(mktemp -d /tmp/bench-suite.XXXXXX)
  git clone -q "$repo" "$clone"
  git -C "$clone" checkout -q "$sha"
  log=$out/$sha.log
  echo "== $rev ($sha): scripts/test in $clone, log $log" >&2
  started=$(date +%s)
  rc=0
  (cd "$clone" && CI=true scripts/test) 2>&1 | while IFS= read -r line; do
    printf -v now '%(%s)T' -1
    printf '%s %s\n' "$((now - started))" "$line"
  done >"$log" || rc=$?
  echo "== $rev ($sha): exit $rc after $(($(date +%s) - started)) s" >&2
  column[$sha]=$(phase_seconds "$log")
  rm -rf "$clone"
  shas+=("$sha")
done

printf '| phase |'; printf ' %s |' "${shas[@]}"; echo
printf '|---|'; printf -- '---:|%.0s' "${shas[@]}"; echo
for i in "${!phases[@]}"; do
  name=${phases[$i]%%@*}
  [[ $name == end ]] && name="scripts/test"
  printf '| %s |' "$name"
  for sha in "${shas[@]}"; do printf ' %s |' "$(sed -n "$((i + 1))p" <<<"${column[$sha]}")"; done
  echo
done
