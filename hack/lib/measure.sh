# shellcheck shell=bash
# Background processes and what the benchmarks read of them from /proc;
# sourced by hack/bench.sh and the scripts of hack/bench/scale.
#
# start_bg appends each process's output to BG_LOGS/NAME.log (BG_LOGS must
# be set) and records its pid in pids, for a cleanup that stops them all.

pids=()

# start_bg NAME CMD [ARGS...] starts CMD in the background; sets STARTED_PID.
start_bg() {
  local name=$1
  shift
  "$@" >>"$BG_LOGS/$name.log" 2>&1 &
  STARTED_PID=$!
  pids+=("$STARTED_PID")
}

# stop_bg PID: SIGTERM, up to 10 s to exit, then SIGKILL.
stop_bg() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# cpu_ticks PID: utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# rss_kb PID: the resident set, in KiB.
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
# read_bytes PID: bytes the process has read (sockets included).
read_bytes() { awk '$1 == "rchar:" { print $2 }' "/proc/$1/io"; }
now_ms() { date +%s%3N; }
