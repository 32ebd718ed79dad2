#!/usr/bin/env bash
# Compose benchmarks, side by side in one run, on the agent's own engine (Docker Compose v2):
#
#   1. Deploy, in place (`orchestrator = "compose"`): three services (api and app publish a
#      loopback port, worker is internal; the demo image's own health check, every 2 s),
#      every service updated, `release deploy` against
#      `docker compose -p OTHER -f FILE up -d --wait --remove-orphans` on the file
#      `release deploy` rendered and recorded (state/stacks/dev/V.yml, every image pinned
#      REPO:TAG@sha256:…), with only the published ports changed so the two projects do not
#      collide. Two versions A and B; after the first deploys (empty → A, one sample each)
#      and an unmeasured B and A by `release` (so that both rendered files exist before
#      either tool goes first), ROUNDS rounds alternate the target (B, A, B, …) and which
#      tool goes first; medians and the ratio. Then ROUNDS rounds of the same version
#      again (nothing to recreate): the fixed cost of each.
#   2. Blue-green switch (`strategy = "blue-green"`) behind an Nginx started by the script
#      with its own `-p PREFIX -c CONF` on free loopback ports (as tests/e2e/blue_green.rs
#      does): the same three services, api routed; V0 deployed to blue, then BG_ROUNDS
#      rounds of `release deploy` of a new version (blue → green) and `release rollback`
#      (the switch back), each under a request loop through the proxy (`GET /version`, a new
#      connection every 10 ms, timestamp, HTTP status and the version that answered). The
#      reload_command is a two-line wrapper that logs the time before it execs
#      `nginx -s reload`: the switch time is from that reload's start to the end of the
#      first request answered by the new colour. Also the ledger's `reload_ms`, the wall
#      time of the whole `release rollback` and, for comparison, the switch a user would
#      otherwise hand-roll: `sed` of the upstream file, `nginx -t`, `nginx -s reload`.
#
#   eval "$(scripts/testbed env)" && RELEASE=/path/to/release scripts/bench/compose.sh
#
# Settings: RELEASE (binary, default target/debug/release: the work is waiting, not CPU),
# ROUNDS (default 5), BG_ROUNDS (default 3), ONLY (deploy or switch; default both), KEEP
# (set: keep the work directory, with the state, the loops' records and Nginx's log).
# Needs nginx (/usr/sbin/nginx), python3, the demo image's binary
# (examples/hestino/image/demo-service, scripts/prepare-example). Prints Markdown tables on
# stdout; progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${RELEASE_TEST_REGISTRY:?is unset: run eval \"\$(scripts/testbed env)\" first}"
export RELEASE_REGISTRY="$RELEASE_TEST_REGISTRY"
unset RELEASE_ENV RELEASE_VERSION
RELEASE="$(realpath "${RELEASE:-target/debug/release}")"
ROUNDS="${ROUNDS:-5}"
BG_ROUNDS="${BG_ROUNDS:-3}"
ONLY="${ONLY:-}"
[ -x "$RELEASE" ] || { echo "bench: $RELEASE is missing; run cargo build -p release-cli first" >&2; exit 3; }
EXAMPLE="$PWD/examples/hestino"
[ -x "$EXAMPLE/image/demo-service" ] || { echo "bench: $EXAMPLE/image/demo-service is missing; run scripts/prepare-example first" >&2; exit 3; }
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || { echo "bench: nginx is missing (apt-get install nginx)" >&2; exit 3; }
docker compose version >/dev/null || { echo "bench: docker compose v2 is missing" >&2; exit 3; }

RUN="$$-$(date +%s)"
OURS="bench-co-ours-$RUN"
THEIRS="bench-co-cli-$RUN"
BG="bench-co-bg-$RUN"
REPO="bench/compose-$RUN"
WORK="$(mktemp -d)"
NGX="$WORK/nginx"
LOOP_PID=""
cleanup() {
  if [ -n "$LOOP_PID" ]; then kill "$LOOP_PID" 2>/dev/null || true; fi
  if [ -f "$NGX/nginx.pid" ]; then "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -s stop 2>/dev/null || true; fi
  for p in "$OURS" "$THEIRS" "$BG-blue" "$BG-green"; do
    docker compose -p "$p" down --remove-orphans -t 1 >/dev/null 2>&1 || true
  done
  docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -F "/$REPO/" | xargs -r docker image rm >/dev/null 2>&1 || true
  if [ -n "${KEEP:-}" ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

say() { printf 'bench: %s\n' "$*" >&2; }
# Milliseconds between two $EPOCHREALTIME values (no fork inside a measure).
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.2f", a / b }'; }

# Eight free loopback ports: api and app of each in-place project, the proxy's two
# listeners, blue and green.
read -r -a PORTS <<<"$(python3 -c '
import socket
s = [socket.socket() for _ in range(8)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
OURS_API=${PORTS[0]} OURS_APP=${PORTS[1]} THEIRS_API=${PORTS[2]} THEIRS_APP=${PORTS[3]}
PROXY=${PORTS[4]} PREVIEW=${PORTS[5]} BLUE=${PORTS[6]} GREEN=${PORTS[7]}
UPSTREAM="bench_co_${RUN//-/_}_api"

# --- The proxy: Debian's Nginx with its own prefix (the e2e test's configuration). ---
mkdir -p "$NGX/tmp"
cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 512; }
http {
  log_format bench '\$msec \$server_port \$request_uri \$status \$upstream_addr';
  access_log $NGX/access.log bench;
  client_body_temp_path $NGX/tmp/body;
  proxy_temp_path $NGX/tmp/proxy;
  fastcgi_temp_path $NGX/tmp/fastcgi;
  uwsgi_temp_path $NGX/tmp/uwsgi;
  scgi_temp_path $NGX/tmp/scgi;
  include $NGX/upstreams.conf;
  server { listen 127.0.0.1:$PROXY; location / { proxy_pass http://$UPSTREAM; } }
  server { listen 127.0.0.1:$PREVIEW; location / { proxy_pass http://${UPSTREAM}_preview; } }
}
EOF
# Before the first deploy neither upstream has a colour: the proxy answers 502.
printf 'upstream %s { server 127.0.0.1:9 down; }\nupstream %s_preview { server 127.0.0.1:9 down; }\n' \
  "$UPSTREAM" "$UPSTREAM" >"$NGX/upstreams.conf"
# The reload command: logs when it starts, then is `nginx -s reload`.
cat >"$WORK/reload.sh" <<EOF
#!/bin/sh
date +%s.%N >>"$WORK/reloads.log"
exec "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -s reload
EOF
chmod +x "$WORK/reload.sh"
: >"$WORK/reloads.log"

# --- The project: one release.toml, env dev in place, env bg blue-green. ---
{
  printf '[project]\nname = "bench"\n\n[registry]\nhost = "registry.invalid"\n\n'
  for s in api app worker; do
    printf '[services.%s]\nrepository = "%s/%s"\ncontext = "%s"\nbuild_args = { SERVICE = "%s" }\n' \
      "$s" "$REPO" "$s" "$EXAMPLE/image" "$s"
    [ "$s" = worker ] && printf 'internal = true\n'
    printf '\n'
  done
  printf '[environments.dev]\norchestrator = "compose"\nstack = "%s"\nstack_file = "dev.yml"\ndeploy_timeout = "60s"\n\n' "$OURS"
  printf '[environments.bg]\norchestrator = "compose"\nstrategy = "blue-green"\nstack = "%s"\nstack_file = "bg.yml"\ndeploy_timeout = "60s"\n\n' "$BG"
  printf '[environments.bg.blue_green]\nupstream_file = "%s"\nproxy_url = "http://127.0.0.1:%s"\npreview_url = "http://127.0.0.1:%s"\n' \
    "$NGX/upstreams.conf" "$PROXY" "$PREVIEW"
  printf 'test_command = ["%s", "-p", "%s", "-c", "%s", "-t", "-q"]\nreload_command = ["%s"]\n' \
    "$NGINX" "$NGX" "$NGX/nginx.conf" "$WORK/reload.sh"
  printf 'routes = [{ upstream = "%s", service = "api", port = 8080, blue = %s, green = %s }]\n\n' "$UPSTREAM" "$BLUE" "$GREEN"
  printf '[[environments.bg.checks]]\nkind = "http"\nname = "api answers /health"\nservice = "api"\nurl = "http://127.0.0.1:%s/health"\n' "$PROXY"
  printf 'json_pointer = "/status"\njson_equals = "ok"\ntimeout = "2s"\nretry_interval = "500ms"\ndeadline = "10s"\n'
} >"$WORK/release.toml"
# In place: api and app publish a loopback port each; the image's own health check.
{
  printf 'services:\n'
  for s in api app worker; do
    printf '  %s:\n    image: ${RELEASE_REGISTRY}/%s/%s:${VERSION}\n    init: true\n    stop_grace_period: 1s\n' "$s" "$REPO" "$s"
    [ "$s" = api ] && printf '    ports:\n      - "127.0.0.1:%s:8080"\n' "$OURS_API"
    [ "$s" = app ] && printf '    ports:\n      - "127.0.0.1:%s:8080"\n' "$OURS_APP"
  done
} >"$WORK/dev.yml"
# Blue-green: the same three services, no port (the tool publishes each colour's api);
# api's health check is the process answering --version, every second (as in the e2e
# test), /health is the environment's check through the proxy.
{
  printf 'services:\n'
  for s in api app worker; do
    printf '  %s:\n    image: ${RELEASE_REGISTRY}/%s/%s:${VERSION}\n    init: true\n    stop_grace_period: 1s\n' "$s" "$REPO" "$s"
    [ "$s" = api ] && printf '    healthcheck:\n      test: ["CMD", "/demo-service", "--version"]\n      interval: 1s\n      start_period: 1s\n'
  done
} >"$WORK/bg.yml"
export RELEASE_CONFIG="$WORK/release.toml" RELEASE_STATE_DIR="$WORK/state"
rel() { (cd "$WORK" && "$RELEASE" "$@"); }

LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
loadavg() {
  echo "$(docker compose version --short 2>/dev/null | sed 's/^/Docker Compose /'), $("$NGINX" -v 2>&1 | sed 's|.*/||;s|^|Nginx |'), $(nproc) cores; load average (1 min) at the start $LOAD0, now $(cut -d' ' -f1 /proc/loadavg)."
}
T="$(date +%s)"
VERSIONS=()
for i in $(seq 0 $((BG_ROUNDS > 1 ? BG_ROUNDS : 1))); do VERSIONS+=("0.$i.$T"); done
A="${VERSIONS[0]}" B="${VERSIONS[1]}"
for v in "${VERSIONS[@]}"; do
  say "build and push $v"
  rel -q build --version "$v" >/dev/null
  rel -q push --version "$v" >/dev/null
done

# --- 1. In place. ---
if [ "$ONLY" != switch ]; then
  their_file() {
    sed -e "s|127.0.0.1:$OURS_API:|127.0.0.1:$THEIRS_API:|" -e "s|127.0.0.1:$OURS_APP:|127.0.0.1:$THEIRS_APP:|" \
      -e "s|^name: .*|name: $THEIRS|" "$WORK/state/stacks/dev/$1.yml" >"$WORK/theirs-$1.yml"
    grep -q "$THEIRS_API" "$WORK/theirs-$1.yml" || { say "no port $OURS_API in the rendered file"; cat "$WORK/state/stacks/dev/$1.yml" >&2; exit 1; }
  }
  ours() {
    local a b
    a=$EPOCHREALTIME
    rel -q deploy --env dev --version "$1" >"$WORK/ours.out" 2>&1 || { cat "$WORK/ours.out" >&2; say "release deploy $1 failed"; exit 1; }
    b=$EPOCHREALTIME
    ms "$a" "$b"
  }
  theirs() {
    local a b
    a=$EPOCHREALTIME
    (cd "$WORK" && docker compose -p "$THEIRS" -f "$WORK/theirs-$1.yml" up -d --wait --remove-orphans) >"$WORK/theirs.out" 2>&1 \
      || { cat "$WORK/theirs.out" >&2; say "docker compose up $1 failed"; exit 1; }
    b=$EPOCHREALTIME
    ms "$a" "$b"
  }
  # Both projects serve the version; every container runs the digest pinned in the file.
  serves() {
    local port
    for port in "$OURS_API" "$OURS_APP" "$THEIRS_API" "$THEIRS_APP"; do
      curl -fsS "http://127.0.0.1:$port/version" | grep -q "\"$1\"" || { say "port $port does not serve $1"; exit 1; }
    done
    for p in "$OURS" "$THEIRS"; do
      n=$(docker ps -q --filter "label=com.docker.compose.project=$p" | wc -l)
      [ "$n" = 3 ] || { say "project $p has $n containers"; exit 1; }
    done
  }
  say "first deploy (empty → $A): release deploy"
  first_ours=$(ours "$A")
  their_file "$A"
  say "first deploy (empty → $A): docker compose up"
  first_theirs=$(theirs "$A")
  serves "$A"
  say "unmeasured: release deploy $B, then $A (both rendered files recorded)"
  ours "$B" >/dev/null
  their_file "$B"
  ours "$A" >/dev/null
  O=() C=() LINES=()
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then v=$B; from=$A; else v=$A; from=$B; fi
    if [ $((r % 2)) = 1 ]; then
      o=$(ours "$v"); c=$(theirs "$v"); first=release
    else
      c=$(theirs "$v"); o=$(ours "$v"); first="docker compose"
    fi
    serves "$v"
    say "round $r ($from → $v, $first first): release $o ms, docker compose $c ms"
    O+=("$o") C+=("$c") LINES+=("$o/$c")
  done
  # The fixed cost: the same version again, nothing to recreate (both tools still run
  # `up --wait`; release also reads and judges the containers and writes its records).
  NO=() NC=() NLINES=()
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then o=$(ours "$v"); c=$(theirs "$v"); else c=$(theirs "$v"); o=$(ours "$v"); fi
    say "no change, round $r: release $o ms, docker compose $c ms"
    NO+=("$o") NC+=("$c") NLINES+=("$o/$c")
  done
  serves "$v"
  mo=$(median "${O[@]}") mc=$(median "${C[@]}")
  echo "| in place, 3 services (api, app published, worker internal) | release deploy | docker compose up -d --wait --remove-orphans | release / compose |"
  echo "|---|---|---|---|"
  echo "| first deploy, empty → V1 (one sample) | ${first_ours} ms | ${first_theirs} ms | $(ratio "$first_ours" "$first_theirs")× |"
  echo "| update every service, median of $ROUNDS rounds | ${mo} ms | ${mc} ms | $(ratio "$mo" "$mc")× |"
  mno=$(median "${NO[@]}") mnc=$(median "${NC[@]}")
  echo "| the same version again, nothing recreated, median of $ROUNDS rounds | ${mno} ms | ${mnc} ms | $(ratio "$mno" "$mnc")× |"
  echo
  echo "Rounds (release/compose, ms; odd rounds release first, target alternating $B, $A): $(IFS=,; echo "${LINES[*]}" | sed 's/,/, /g')."
  echo "No-change rounds: $(IFS=,; echo "${NLINES[*]}" | sed 's/,/, /g')."
  if awk -v a="$mo" -v b="$mc" 'BEGIN { exit !(a <= 1.1 * b) }'; then g='**met**'; else g='**not met**'; fi
  echo "Goal release ≤ 1.1× docker compose (median update): $g ($(ratio "$mo" "$mc")×)."
  loadavg
  echo
  for p in "$OURS" "$THEIRS"; do docker compose -p "$p" down --remove-orphans -t 1 >/dev/null 2>&1 || true; done
fi

# --- 2. Blue-green switch. ---
[ "$ONLY" = deploy ] && exit 0
LOAD0="$(cut -d' ' -f1 /proc/loadavg)"
"$NGINX" -p "$NGX" -c "$NGX/nginx.conf"
# The request loop: python, one new connection per request every 10 ms, until the stop
# file exists; one line per request: start end status version ("-" for an error).
cat >"$WORK/loop.py" <<'EOF'
import os, socket, sys, time
port, out, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(out, "w") as f:
    while not os.path.exists(stop):
        a = time.time()
        status, version = "err", "-"
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.settimeout(2)
            s.sendall(b"GET /version HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
            status = head.split(" ", 2)[1] if " " in head else "bad"
            if status == "200":
                import json
                version = json.loads(body)["version"]
        except Exception as e:
            status = "err:" + type(e).__name__
        f.write(f"{a:.6f} {time.time():.6f} {status} {version}\n")
        time.sleep(0.01)
EOF
LOOPS=0
loop_start() {
  LOOPS=$((LOOPS + 1))
  rm -f "$WORK/stop"
  python3 "$WORK/loop.py" "$PROXY" "$WORK/loop-$LOOPS.txt" "$WORK/stop" &
  LOOP_PID=$!
  sleep 0.5
}
loop_stop() {
  sleep 1.5
  touch "$WORK/stop"
  wait "$LOOP_PID"
  LOOP_PID=""
}
EVENTS="$WORK/events.txt"
: >"$EVENTS"
# event KIND LOOP START END FROM TO: one measured switch.
event() { echo "$*" >>"$EVENTS"; }

say "blue-green: first deploy $A (blue)"
rel -q deploy --env bg --version "$A" >&2
# Nginx applies a reload after the command returned: poll (every 10 ms, 5 s at most) until
# the proxy serves A, counting what it answered meanwhile.
FIRST="$(python3 - "$PROXY" "$A" <<'PY'
import sys, time, urllib.request, urllib.error
port, want = sys.argv[1], sys.argv[2]
t0, other = time.time(), {}
while time.time() - t0 < 5:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2).read().decode()
        if want in body:
            break
        key = "200 " + body
    except urllib.error.HTTPError as e:
        key = str(e.code)
    except Exception as e:
        key = type(e).__name__
    other[key] = other.get(key, 0) + 1
    time.sleep(0.01)
else:
    sys.exit(f"bench: the proxy does not serve {want} 5 s after the first deploy: {other}")
got = ", ".join(f"{n} × {k}" for k, n in other.items()) or "nothing else"
print(f"First blue-green deploy (empty → V0, blue): the proxy served V0 {(time.time() - t0) * 1000:.0f} ms after `release deploy` exited; before that it answered {got}.")
PY
)"
say "$FIRST"
for r in $(seq 1 "$BG_ROUNDS"); do
  v=${VERSIONS[$r]}
  say "round $r: release deploy $v (blue → green) under the request loop"
  loop_start
  a=$EPOCHREALTIME
  rel -q deploy --env bg --version "$v" >&2 || { say "release deploy $v failed"; exit 1; }
  b=$EPOCHREALTIME
  loop_stop
  event deploy "$LOOPS" "$a" "$b" "$A" "$v"
  say "round $r: release rollback (green → blue) under the request loop"
  loop_start
  a=$EPOCHREALTIME
  rel -q rollback --env bg >&2 || { say "release rollback failed"; exit 1; }
  b=$EPOCHREALTIME
  loop_stop
  event rollback "$LOOPS" "$a" "$b" "$v" "$A"
done
# The hand-rolled switch a user would otherwise do, between the same two colours (blue
# serves A, green still runs the last version in its window): sed, nginx -t, reload.
cp "$NGX/upstreams.conf" "$WORK/upstreams.saved"
last=${VERSIONS[$BG_ROUNDS]}
for r in $(seq 1 "$BG_ROUNDS"); do
  for dir in "$BLUE $GREEN $A $last" "$GREEN $BLUE $last $A"; do
    read -r from to vfrom vto <<<"$dir"
    say "hand-rolled: sed + nginx -t + nginx -s reload ($from → $to)"
    loop_start
    a=$EPOCHREALTIME
    sed -i "/^upstream $UPSTREAM {/,/}/ s/127\.0\.0\.1:$from;/127.0.0.1:$to;/" "$NGX/upstreams.conf"
    "$NGINX" -p "$NGX" -c "$NGX/nginx.conf" -t -q
    "$WORK/reload.sh"
    b=$EPOCHREALTIME
    loop_stop
    event hand "$LOOPS" "$a" "$b" "$vfrom" "$vto"
  done
done
cp "$WORK/upstreams.saved" "$NGX/upstreams.conf"
LOAD="$(loadavg)"

python3 - "$WORK" "$EVENTS" "$WORK/reloads.log" "$WORK/state" "$PROXY" "$BLUE" "$GREEN" "$LOAD" "$FIRST" <<'EOF'
import glob, json, os, statistics, sys
work, events, reloads, state = sys.argv[1:5]
reload_at = [float(l) for l in open(reloads) if l.strip()]
proxy, blue, green = sys.argv[5:8]
colour = {blue: "blue", green: "green"}
# Nginx's access log: msec, listener port, URI, status, upstream address.
access = []
for l in open(os.path.join(work, "nginx", "access.log")):
    f = l.split()
    if len(f) >= 5:
        access.append((float(f[0]), f[1], f[2], f[3], f[4]))
# The ledger's `switched` events, in order: their reload_ms.
ledger = []
for path in sorted(glob.glob(os.path.join(state, "**", "*.jsonl"), recursive=True)):
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        kind = e.get("kind") or e.get("type")
        if kind == "switched":
            ledger.append(e.get("payload", e))
switches = [p for p in ledger if p.get("trigger") in ("deploy", "rollback")]
rows = {"deploy": [], "rollback": [], "hand": []}
for n, line in enumerate(open(events)):
    kind, loop, a, b, vfrom, vto = line.split()
    a, b = float(a), float(b)
    seen = []
    for l in open(os.path.join(work, f"loop-{loop}.txt")):
        s, e, status, version = l.split()
        seen.append((float(s), float(e), status, version))
    failed = sum(1 for _, _, st, _ in seen if st != "200")
    first = next((x for x in seen if x[3] == vto), None)
    # The reload that switched: the last one that started before the first request
    # answered by the new colour was sent.
    rl = max((t for t in reload_at if a <= t and first and t < first[0]), default=None)
    switch_ms = (first[1] - rl) * 1000 if first and rl else None
    old_after = sum(1 for x in seen if first and x[0] > first[0] and x[3] == vfrom)
    last_old = max((x[1] for x in seen if first and x[0] > first[0] and x[3] == vfrom), default=None)
    gap = max((y[0] - x[0] for x, y in zip(seen, seen[1:])), default=0) * 1000
    # The tool's own checks (`GET /health`) on the public listener after that reload,
    # before the command exited: which colour answered them.
    after = [l for l in access if l[2] == "/health" and l[1] == proxy and rl and rl <= l[0] <= b + 0.05]
    checked = ", ".join(colour.get(l[4].rsplit(":", 1)[-1], l[4]) for l in after) or "none"
    rows[kind].append(dict(checked=checked, wall=(b - a) * 1000, n=len(seen), failed=failed, switch=switch_ms,
                           old_after=old_after, last_old=(last_old - first[1]) * 1000 if last_old else 0,
                           reload_to_end=(b - rl) * 1000 if rl else None, gap=gap,
                           statuses=sorted({x[2] for x in seen if x[2] != "200"})))
for kind in ("deploy", "rollback"):
    for i, row in enumerate(rows[kind]):
        idx = 2 * i + (1 if kind == "rollback" else 0)
        # switched events: the first deploy's, then deploy/rollback alternating.
        p = switches[idx + 1] if idx + 1 < len(switches) else {}
        row["reload_ms"] = p.get("reload_ms")
med = statistics.median
def fmt(v, unit=" ms"):
    return "n/a" if v is None else f"{v:.0f}{unit}"
def mid(rs, k):
    vs = [r[k] for r in rs if r[k] is not None]
    return med(vs) if vs else None
print(f"| blue-green behind Nginx, request loop every 10 ms | rounds | requests | failed | switch: reload start → first answer of the new colour (median; rounds) | ledger reload_ms (median) | wall time of the command (median) | old colour answering after the new one's first |")
print("|---|---|---|---|---|---|---|---|")
label = {"deploy": "`release deploy` V → V' (switch blue → green)",
         "rollback": "`release rollback` (switch green → blue)",
         "hand": "hand-rolled `sed` + `nginx -t` + `nginx -s reload`"}
for kind in ("deploy", "rollback", "hand"):
    rs = rows[kind]
    if not rs:
        continue
    sw = "; ".join(fmt(r["switch"], "") for r in rs)
    rl = fmt(mid(rs, "reload_ms")) if kind != "hand" else "–"
    print(f"| {label[kind]} | {len(rs)} | {sum(r['n'] for r in rs)} | {sum(r['failed'] for r in rs)} | "
          f"{fmt(mid(rs, 'switch'))} ({sw}) | {rl} | {fmt(mid(rs, 'wall'))} | "
          f"{sum(r['old_after'] for r in rs)} requests, the last {max(r['last_old'] for r in rs):.0f} ms after |")
print()
for kind in ("deploy", "rollback", "hand"):
    for i, r in enumerate(rows[kind]):
        print(f"- {kind} {i + 1}: {r['n']} requests, {r['failed']} failed{' ' + str(r['statuses']) if r['statuses'] else ''}, "
              f"switch {fmt(r['switch'])}, reload_ms {fmt(r.get('reload_ms'))}, wall {fmt(r['wall'])}, "
              f"reload start → command exit {fmt(r['reload_to_end'])}, longest gap between request starts {r['gap']:.0f} ms"
              + (f", the tool's /health checks through the proxy after the reload answered by: {r['checked']}" if kind != "hand" else ""))
print()
failed = sum(r["failed"] for k in ("deploy", "rollback") for r in rows[k])
sws = [r["switch"] for k in ("deploy", "rollback") for r in rows[k]]
ok_sw = all(s is not None and s < 1000 for s in sws)
print(f"Goal 0 failed requests: {'**met**' if failed == 0 else f'**not met** ({failed})'}; "
      f"switch < 1 s: {'**met**' if ok_sw else '**not met**'} (slowest {fmt(max((s for s in sws if s is not None), default=None))}).")
new_old = [0, 0]
for r, vto_colour in ((r, "green") for r in rows["deploy"]):
    for c in r["checked"].split(", "):
        if c in ("blue", "green"):
            new_old[c != vto_colour] += 1
print(f"`release deploy`'s checks through the public listener after the switch (step 6 of "
      f"docs/blue-green.md), from Nginx's access log: {new_old[0]} answered by the new colour, "
      f"{new_old[1]} by the old one.")
print(sys.argv[9])
print(sys.argv[8])
EOF
