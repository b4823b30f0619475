# shellcheck shell=bash
# Process supervision for the local control plane and the demo; sourced by
# hack/cluster.sh and hack/demo.sh.
#
# Every process runs in its own session (setsid), so a Ctrl-C in the terminal
# reaches only the script, which then stops them in order. Its pid is written
# by the process itself right before exec, so the pid file always names the
# real process (the group leader), and stopping it signals the whole group
# (nginx workers included).
#
# Expects STATE (the state directory) to be set.

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# pid_of NAME prints the pid of a running process started by start_proc.
pid_of() {
  local f="$STATE/pids/$1.pid" pid started now
  # Builtins only (read, no command substitution): demo.sh's supervise
  # loop calls this while its Ctrl-C trap may fire.
  [ -s "$f" ] && read -r pid <"$f" || return 1
  [ -n "$pid" ] && running "$pid" || return 1
  # Guard against a recycled pid: the process must be the one started (same
  # start time), whatever happened to its binary since.
  read -r started <"$STATE/pids/$1.start" 2>/dev/null || return 1
  read_start_time "$pid" now || return 1
  [ "$started" = "$now" ] || return 1
  echo "$pid"
}

# read_start_time PID VAR sets VAR to the process's start time (clock ticks
# after boot).
read_start_time() {
  local stat var=$2
  read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086 # split the fields on purpose
  set -- $stat
  printf -v "$var" '%s' "${20}"
}

# start_time PID prints the process's start time (clock ticks after boot).
start_time() {
  local t
  read_start_time "$1" t || return 1
  echo "$t"
}

# start_proc NAME CMD [ARGS...] starts CMD in the background, logging to
# $STATE/logs/NAME.log.
start_proc() {
  local name=$1
  shift
  mkdir -p "$STATE/pids" "$STATE/logs"
  if pid_of "$name" >/dev/null; then
    die "$name is already running (pid $(pid_of "$name")); run: $0 down"
  fi
  local pidf="$STATE/pids/$name.pid" log="$STATE/logs/$name.log"
  rm -f "$pidf"
  printf '\n=== %s %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
  # shellcheck disable=SC2016 # $$ and "$@" expand in the child shell
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidf" "$@" </dev/null >>"$log" 2>&1 &
  local deadline=$((SECONDS + 10)) pid
  until [ -s "$pidf" ]; do
    [ $SECONDS -lt $deadline ] || die "$name did not start; see $log"
    sleep 0.05
  done
  pid=$(cat "$pidf")
  # Wait for the exec so that /proc/PID/exe names the program, not bash.
  local want exe
  want=$(readlink -f "$(command -v "$1")")
  deadline=$((SECONDS + 10))
  until exe=$(readlink "/proc/$pid/exe" 2>/dev/null) && [ "${exe% (deleted)}" = "$want" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 10 "$log" >&2
      die "$name exited at once; see $log"
    fi
    [ $SECONDS -lt $deadline ] || die "$name did not exec $want; see $log"
    sleep 0.05
  done
  start_time "$pid" >"$STATE/pids/$name.start"
  log "started $name (pid $pid, log $log)"
}

# stop_proc NAME [GRACE_SECONDS] sends SIGTERM to the process group, waits,
# then SIGKILLs whatever is left.
stop_proc() {
  local name=$1 grace=${2:-20} pid
  if ! pid=$(pid_of "$name"); then
    rm -f "$STATE/pids/$name.pid" "$STATE/pids/$name.start"
    return 0
  fi
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while running "$pid" || pgrp_alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      log "$name did not stop within ${grace}s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$STATE/pids/$name.pid" "$STATE/pids/$name.start"
  log "stopped $name"
}

# running PID is true while the process exists and is not a zombie (an
# orphan's exit is reaped by init, which may take a while).
running() {
  local stat
  read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# pgrp_alive PGID is true while any process of the group is running.
pgrp_alive() {
  local p
  for p in $(pgrep -g "$1" 2>/dev/null); do
    running "$p" && return 0
  done
  return 1
}

# wait_for NAME DESCRIPTION TIMEOUT CMD [ARGS...] polls CMD until it succeeds,
# failing early (with the end of NAME's log) when process NAME has died.
wait_for() {
  local name=$1 desc=$2 timeout=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$name" ] && ! pid_of "$name" >/dev/null; then
      tail -n 10 "$STATE/logs/$name.log" >&2
      die "$name exited while waiting for $desc; see $STATE/logs/$name.log"
    fi
    if [ $SECONDS -ge $deadline ]; then
      [ -z "$name" ] || tail -n 10 "$STATE/logs/$name.log" >&2
      die "timed out after ${timeout}s waiting for $desc"
    fi
    sleep 0.2
  done
}

# http_ok URL [CURL_ARGS...] succeeds when URL answers 2xx.
http_ok() {
  local url=$1
  shift
  curl -fsS -o /dev/null --max-time 2 "$@" "$url"
}

# free_port prints a TCP port that nothing listens on at the moment. It
# is taken below Linux's default ephemeral range (32768-60999), so an
# outgoing connection cannot take it before the server binds it.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# port_in_use PORT succeeds when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# require_free_ports VAR... fails, naming the setting, when the port a
# variable holds is already in use on 127.0.0.1.
require_free_ports() {
  local v
  for v in "$@"; do
    if port_in_use "${!v}"; then
      die "port ${!v} on 127.0.0.1 is in use; stop what uses it or choose another port: $v=PORT"
    fi
  done
}
