# Sourced by the check benchmarks. Every loopback connection a run opens and closes leaves
# a socket in TIME_WAIT for 60 s (two per check through Docker's port proxy); tens of
# thousands of them, left by a previous benchmark, make every connect() search longer for
# a free port, and the figures drift by several milliseconds. settle waits (70 s at most)
# until fewer than 2000 are left.
settle() {
  local waited=0 left
  while left=$(($(ss -Htan state time-wait | wc -l))) && [ "$left" -ge 2000 ] && [ "$waited" -lt 70 ]; do
    [ "$waited" -eq 0 ] && printf 'bench: waiting for %s TIME_WAIT sockets to expire\n' "$left" >&2
    sleep 5
    waited=$((waited + 5))
  done
}
