#!/usr/bin/env bash
# The cost of signed evidence, side by side in one run: two copies of a one-service
# project (the example's image, DEV and PROD as two stacks on the agent's local Swarm, one
# HTTP check per environment) that differ only in their evidence settings:
#   a  no `[environments.*.evidence]`: the check records to the state directory, the PROD
#      gate reads the state directory only;
#   b  DEV signs its check result (Ed25519 key in DEV_SIGNING_KEY) and attaches it to the
#      image as an OCI referrer; PROD trusts DEV's key (and a revoked one), so its gate also
#      lists, fetches and verifies the attestations in the registry, and PROD signs its
#      verification summary after a real promotion (P-256 key in a file).
# Each variant has its own repository, stacks and state directory. Measured, the variants
# alternating in every round, ROUNDS rounds, medians of the process wall time:
#   1. `release promote --version 1.0.0 --to prod --approved-by bench --dry-run` after one
#      check (b's gate reads 1 attestation);
#   2. `release check --env dev` (each of b's checks adds one referrer: its fallback index
#      grows from 1 to ROUNDS+1 entries during this phase);
#   3. the same dry-run promotion again, after the ROUNDS checks (b's gate reads ROUNDS+1
#      attestations: the gate reads every test result attached to the digest);
#   4. one real promotion per variant (b signs and attaches its summary), one sample each.
# With the testbed registry's log readable ($RELEASE_TESTBED_DIR/registry.log), the
# requests each command made to the variant's repository are counted and the registry's own
# time on them summed (its `http.response.duration`); one authenticated round trip to the
# registry (HEAD of the manifest on a kept-alive connection) is timed, and each command's
# extra requests times that round trip printed as its floor.
#
#   cargo build --release -p release-cli && scripts/prepare-example
#   eval "$(scripts/testbed env)" && scripts/bench/evidence.sh
#
# Settings: RELEASE (binary, default target/release/release), ROUNDS (default 10). Needs
# openssl. Prints a Markdown table on stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

RELEASE="$(realpath "${RELEASE:-target/release/release}")"
ROUNDS="${ROUNDS:-10}"
: "${RELEASE_TEST_REGISTRY:?is unset: run eval \"\$(scripts/testbed env)\" first}"
: "${RELEASE_REGISTRY_CA:?is unset: run eval \"\$(scripts/testbed env)\" first}"
: "${RELEASE_REGISTRY_USERNAME:?is unset: run eval \"\$(scripts/testbed env)\" first}"
: "${RELEASE_REGISTRY_PASSWORD:?is unset: run eval \"\$(scripts/testbed env)\" first}"
[ -x "$RELEASE" ] || { echo "bench: $RELEASE is missing; run cargo build --release -p release-cli first" >&2; exit 3; }
EXAMPLE="$PWD/examples/hestino"
[ -x "$EXAMPLE/image/demo-service" ] || { echo "bench: $EXAMPLE/image/demo-service is missing; run scripts/prepare-example first" >&2; exit 3; }
command -v openssl >/dev/null || { echo "bench: openssl is missing" >&2; exit 3; }
code=$(curl -s --cacert "$RELEASE_REGISTRY_CA" -o /dev/null -w '%{http_code}' "https://$RELEASE_TEST_REGISTRY/v2/" || true)
[ "$code" = 401 ] || { echo "bench: https://$RELEASE_TEST_REGISTRY/v2/ answered '$code', not 401; is the testbed up?" >&2; exit 3; }
# The registry's access log, for counting requests (optional).
LOG="${RELEASE_TESTBED_DIR:-}/registry.log"
[ -r "$LOG" ] || LOG=""
export RELEASE_REGISTRY="$RELEASE_TEST_REGISTRY"
unset RELEASE_ENV

RUN="$$-$(date +%s)"
WORK="$(mktemp -d)"
STACKS=(
  "bench-ev-a-dev-$RUN" "bench-ev-a-prod-$RUN"
  "bench-ev-b-dev-$RUN" "bench-ev-b-prod-$RUN"
)
cleanup() {
  docker stack rm "${STACKS[@]}" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf 'bench: %s\n' "$*" >&2; }

# Four free TCP ports (DEV and PROD of each variant), published in host mode.
read -r -a PORTS <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"

# project VARIANT DEV_PORT PROD_PORT: $WORK/VARIANT with release.toml, dev.yml, prod.yml,
# keys/ (variant b) and state/.
project() {
  local v="$1" dev_port="$2" prod_port="$3" dir="$WORK/$1"
  local dev="bench-ev-$v-dev-$RUN" prod="bench-ev-$v-prod-$RUN" repo="bench/ev-$v-$RUN/web"
  mkdir -p "$dir/state"
  check() {
    printf '[[environments.%s.checks]]\nkind = "http"\nname = "web answers /health"\nservice = "web"\nurl = "http://127.0.0.1:%s/health"\ntimeout = "2s"\nretry_interval = "500ms"\ndeadline = "20s"\n\n' "$1" "$2"
  }
  {
    printf '[project]\nname = "bench"\n\n[registry]\nhost = "%s"\n\n' "$RELEASE_TEST_REGISTRY"
    printf '[services.web]\nrepository = "%s"\ncontext = "%s"\nbuild_args = { SERVICE = "web" }\n\n' "$repo" "$EXAMPLE/image"
    printf '[environments.dev]\nstack = "%s"\nstack_file = "dev.yml"\ndeploy_timeout = "60s"\n\n' "$dev"
    if [ "$v" = b ]; then
      printf '[environments.dev.evidence]\nkey_id = "dev-1"\nsigning_key_env = "DEV_SIGNING_KEY"\n\n'
    fi
    check dev "$dev_port"
    printf '[environments.prod]\nstack = "%s"\nstack_file = "prod.yml"\npromote_from = "dev"\napproval_required = true\ndeploy_timeout = "60s"\n\n' "$prod"
    if [ "$v" = b ]; then
      printf '[environments.prod.evidence]\nkey_id = "prod-1"\nsigning_key_file = "keys/prod.pem"\n'
      printf 'trust = [\n  { id = "dev-1", public_key = "keys/dev.pub" },\n  { id = "dev-0", public_key = "keys/old.pub", revoked = true },\n  { id = "prod-1", public_key = "keys/prod.pub" },\n]\n\n'
    fi
    check prod "$prod_port"
  } >"$dir/release.toml"
  for f in dev prod; do
    local port="$dev_port"
    [ "$f" = prod ] && port="$prod_port"
    cat >"$dir/$f.yml" <<EOF
version: "3.8"
services:
  web:
    image: $repo:0
    init: true
    stop_grace_period: 1s
    ports:
      - target: 8080
        published: $port
        mode: host
    deploy:
      endpoint_mode: dnsrr
      update_config:
        monitor: 2s
        failure_action: rollback
      restart_policy:
        condition: any
        delay: 1s
EOF
  done
  if [ "$v" = b ]; then
    mkdir -p "$dir/keys"
    for k in dev old prod; do
      if [ "$k" = prod ]; then
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/keys/$k.pem" 2>/dev/null
      else
        openssl genpkey -algorithm ed25519 -out "$dir/keys/$k.pem" 2>/dev/null
      fi
      openssl pkey -in "$dir/keys/$k.pem" -pubout -out "$dir/keys/$k.pub"
    done
  fi
}
project a "${PORTS[0]}" "${PORTS[1]}"
project b "${PORTS[2]}" "${PORTS[3]}"
DEV_SIGNING_KEY="$(cat "$WORK/b/keys/dev.pem")"
export DEV_SIGNING_KEY

# rel VARIANT ARGS…: `release` for the variant's project (variant a never reads the key).
rel() {
  local v="$1"
  shift
  (cd "$WORK/$v" && RELEASE_CONFIG="$WORK/$v/release.toml" RELEASE_STATE_DIR="$WORK/$v/state" "$RELEASE" "$@")
}
for v in a b; do
  say "variant $v: build, push, deploy dev"
  rel "$v" -q build --version 1.0.0 >&2
  rel "$v" -q push --version 1.0.0 >&2
  rel "$v" -q deploy --env dev --version 1.0.0 >&2
done
# settle leaves the TIME_WAIT sockets of the setup (and of earlier benchmarks) to expire.
# shellcheck source=scripts/bench/settle.sh
. scripts/bench/settle.sh
settle

python3 - "$RELEASE" "$WORK" "$ROUNDS" "$RUN" "$LOG" <<'EOF'
import base64, http.client, json, os, re, ssl, statistics, subprocess, sys, time

binary, work, rounds, run, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
registry = os.environ["RELEASE_TEST_REGISTRY"]
repo = {v: f"bench/ev-{v}-{run}/web" for v in "ab"}

def log_size():
    return os.path.getsize(log) if log else 0

def requests_since(offset, v):
    """The variant's requests since `offset`: access-log lines naming its repository (the
    /v2/ ping names none), and the registry's own time on them (`response completed`)."""
    if not log:
        return None
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    n, server = 0, 0.0
    for line in text.splitlines():
        if line.startswith("127.0.0.1 - - [") and f" /v2/{repo[v]}/" in line:
            n += 1
        elif 'msg="response completed"' in line and re.search(f'http\\.request\\.uri="?/v2/{re.escape(repo[v])}/', line):
            m = re.search(r"http\.response\.duration=([0-9.]+)(µs|ms|s)", line)
            if m:
                server += float(m[1]) * {"µs": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]
    return n, server

def release(v, args):
    d = os.path.join(work, v)
    env = dict(os.environ, RELEASE_CONFIG=os.path.join(d, "release.toml"),
               RELEASE_STATE_DIR=os.path.join(d, "state"), NO_COLOR="1")
    offset = log_size()
    t = time.perf_counter()
    p = subprocess.run([binary, *args], cwd=d, env=env, capture_output=True, text=True)
    ms = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        sys.exit(f"bench: variant {v}: release {' '.join(args)} exited {p.returncode}:\n"
                 f"{p.stdout[-2000:]}{p.stderr[-2000:]}")
    # Distribution writes its access line after the response; give it a moment.
    time.sleep(0.05)
    return ms, requests_since(offset, v)

CHECK = ["-q", "check", "--env", "dev"]
DRY = ["-q", "promote", "--version", "1.0.0", "--to", "prod", "--approved-by", "bench", "--dry-run"]
REAL = ["-q", "promote", "--version", "1.0.0", "--to", "prod", "--approved-by", "bench"]

def phase(name, args):
    wall = {"a": [], "b": []}
    reqs = {"a": [], "b": []}
    print(f"bench: {name}, {rounds} rounds", file=sys.stderr)
    for _ in range(rounds):
        for v in "ab":
            ms, n = release(v, args)
            wall[v].append(ms)
            reqs[v].append(n)
    return wall, reqs

# One unmeasured check each: b's image gets its first attestation, both ledgers a
# `checked` entry for the gate.
for v in "ab":
    release(v, CHECK)
dry1 = phase("promote --dry-run after 1 check", DRY)
check = phase("check --env dev", CHECK)
dryn = phase(f"promote --dry-run after {rounds + 1} checks", DRY)
print("bench: one real promotion per variant", file=sys.stderr)
real = {v: release(v, REAL) for v in "ab"}

# One authenticated round trip: HEAD of b's manifest on a kept-alive TLS connection.
ctx = ssl.create_default_context(cafile=os.environ["RELEASE_REGISTRY_CA"])
host, port = registry.rsplit(":", 1)
conn = http.client.HTTPSConnection(host, int(port), context=ctx)
auth = base64.b64encode(f"{os.environ['RELEASE_REGISTRY_USERNAME']}:{os.environ['RELEASE_REGISTRY_PASSWORD']}".encode()).decode()
rtt = []
for i in range(51):
    t = time.perf_counter()
    conn.request("HEAD", f"/v2/{repo['b']}/manifests/1.0.0", headers={
        "Authorization": f"Basic {auth}",
        "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
    r = conn.getresponse()
    r.read()
    if i:
        rtt.append((time.perf_counter() - t) * 1000)
    if r.status != 200:
        sys.exit(f"bench: HEAD of the manifest answered {r.status}")
conn.close()
rtt_ms = statistics.median(rtt)

med = statistics.median
def reqtext(reqs, v):
    got = [r for r in reqs[v] if r is not None]
    if not got:
        return "n/a"
    lo, hi = min(n for n, _ in got), max(n for n, _ in got)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"

def servertext(reqs, v):
    got = [r for r in reqs[v] if r is not None]
    return f"{med([t for _, t in got]):.1f} ms" if got else "n/a"

print(f"| median of {rounds} rounds, variants alternating | a: no evidence | b: signed evidence | b / a | overhead | registry requests a / b | registry time a / b |")
print("|---|---|---|---|---|---|---|")
goal = True
for label, (wall, reqs) in [
    ("`release check --env dev`", check),
    ("`release promote --dry-run`, gate after 1 check (b reads 1 attestation)", dry1),
    (f"`release promote --dry-run`, gate after {rounds + 1} checks (b reads {rounds + 1})", dryn),
]:
    a, b = med(wall["a"]), med(wall["b"])
    over = (b / a - 1) * 100
    goal = goal and over <= 15
    print(f"| {label} | {a:.1f} ms | {b:.1f} ms | {b / a:.2f} | {over:+.0f}% | {reqtext(reqs, 'a')} / {reqtext(reqs, 'b')} | {servertext(reqs, 'a')} / {servertext(reqs, 'b')} |")
(ra, qa), (rb, qb) = real["a"], real["b"]
one = lambda q, i: "n/a" if q is None else (f"{q[0]}" if i == 0 else f"{q[1]:.1f} ms")
print(f"| `release promote` (gate, deploy PROD, b signs its summary), one sample | {ra:.0f} ms | {rb:.0f} ms | {rb / ra:.2f} | {(rb / ra - 1) * 100:+.0f}% | {one(qa, 0)} / {one(qb, 0)} | {one(qa, 1)} / {one(qb, 1)} |")
print()
print(f"One authenticated round trip to the registry (HEAD of a manifest, kept-alive TLS, basic auth): median {rtt_ms:.1f} ms of 50.")
for name, (wall, reqs) in [("check", check), ("dry-run after 1", dry1), (f"dry-run after {rounds + 1}", dryn)]:
    if all(r is not None for r in reqs["a"] + reqs["b"]):
        extra = med([n for n, _ in reqs["b"]]) - med([n for n, _ in reqs["a"]])
        print(f"Floor, {name}: b makes {extra:g} more requests; at {rtt_ms:.1f} ms each that is "
              f"{extra * rtt_ms:.1f} ms, against {med(wall['b']) - med(wall['a']):.1f} ms measured.")
for name, (wall, _) in [("check", check), ("dry-run after 1", dry1), (f"dry-run after {rounds + 1}", dryn)]:
    print(f"Rounds, {name}: a {min(wall['a']):.1f}–{max(wall['a']):.1f} ms, b {min(wall['b']):.1f}–{max(wall['b']):.1f} ms.")
print()
print(f"Goal ≤ +15% wall time on the measured commands (median): {'**met**' if goal else '**not met**'}.")
EOF
