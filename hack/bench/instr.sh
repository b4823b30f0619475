# shellcheck shell=bash
# The instr section of hack/bench.sh (sourced by it): instructions per
# request, counted by valgrind, for the same scenarios as the http section.
#
# Wall-clock and CPU-time figures move by several percent on a shared
# machine; an instruction count does not. Each server runs under
# `valgrind --tool=cachegrind --cache-sim=no` with GOMAXPROCS=1, answers
# INSTR_N1 and then, in a second run, INSTR_N2 identical requests sent one
# after the other over one keep-alive connection (hack/bench/sequential);
# (I(N2) - I(N1)) / (N2 - N1) is the server's own user-space work per
# request, garbage collection included, start-up and enrolment excluded.
# The kernel's work (the socket calls, the same for both servers) is not
# counted, so the ratios are larger than the CPU-time ratios of the http
# section.
#
# The front-door dialects are counted the same way: /ext-authz on the HTTP
# listener (against the same empty handler), and the gRPC Check (over one
# HTTP/2 connection) against an empty Check answered by the same kind of
# grpc.Server (emptyserver -grpc-addr). These are the figures of the goal
# "within 10% of /auth": each dialect's ratio to its own empty handler,
# beside /auth's.
#
# Settings: INSTR_N1 [1000], INSTR_N2 [5000]. Runs of the same commit usually
# differ by 2-5% and once by 10% (when the garbage collector runs, timers):
# compare several runs, not single digits.

INSTR_N1=${INSTR_N1:-1000}
INSTR_N2=${INSTR_N2:-5000}

# instr_total N STATUS URL CMD...: total instructions of CMD (a server on
# INSTR_PORT) while it answers N requests of URL with the headers of
# INSTR_HEADERS, each with STATUS; INSTR_CLIENT are more flags of
# hack/bench/sequential (-grpc...).
instr_total() {
  local n=$1 status=$2 url=$3 out=$work/cachegrind.out pid h args=("${INSTR_CLIENT[@]}")
  shift 3
  for h in "${INSTR_HEADERS[@]}"; do args+=(-H "$h"); done
  rm -f "$out"
  # (valgrind cannot run RDTSCP, which the Go runtime uses, when the CPU
  # has it, to time its spinning on a lock: turned off.)
  GOMAXPROCS=1 GODEBUG=cpu.rdtscp=off valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" "$@" >>"$work/logs/instr-valgrind.log" 2>&1 &
  pid=$!
  if ! wait_http "http://127.0.0.1:$INSTR_PORT/readyz" 200 300; then
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    return 1
  fi
  if ! "$TOOLS/sequential" -n "$n" -status "$status" "${args[@]}" "$url" 2>>"$work/logs/instr.log"; then
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    return 1
  fi
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  awk '/^summary:/ { print $2 }' "$out"
}

# instr_per_request KEY STATUS URL CMD...: sets R[instr_KEY].
instr_per_request() {
  local key=$1 status=$2 url=$3 a b
  shift 3
  a=$(instr_total "$INSTR_N1" "$status" "$url" "$@") && b=$(instr_total "$INSTR_N2" "$status" "$url" "$@") &&
    [ -n "$a" ] && [ -n "$b" ] || {
    fail_section "instr: the $key run failed (see $work/logs/instr.log)"
    return 1
  }
  R[instr_$key]=$(awk -v a="$a" -v b="$b" -v n=$((INSTR_N2 - INSTR_N1)) 'BEGIN { printf "%.0f", (b - a) / n }')
  log "instr: $key ${R[instr_$key]} instructions per request"
}

section_instr() {
  command -v valgrind >/dev/null || {
    fail_section "instr: valgrind is missing; run: make deps"
    return
  }
  local cfg=$work/instr-config data=$work/instr-data port gport pid cookie answer=()
  write_config "$cfg" 1
  mkdir -p "$data"
  port=$(free_port)
  gport=$(free_port)
  INSTR_PORT=$port
  INSTR_CLIENT=()
  local -a server=("$BIN" webhook --config-dir "$cfg" --data-dir "$data" --listen "127.0.0.1:$port" --metrics-addr 0
    --trusted-proxies 127.0.0.1/32 --insecure-cookies)
  start_bg webhook-instr "${server[@]}"
  pid=$STARTED_PID
  wait_http "http://127.0.0.1:$port/readyz" 200 60 || {
    fail_section "instr: the challenge server did not become ready"
    return
  }
  # A real remembered-browser cookie, kept by the data directory for the
  # measured runs.
  cookie=$("$TOOLS/enroll" -server "http://127.0.0.1:$port" -policy apps/bench -user "$USER_EMAIL" \
    -client-ip "$CLIENT_IP" -rd "$ORIGINAL_URL" 2>"$work/logs/instr-enroll.log") || {
    fail_section "instr: enrolment failed"
    stop_bg "$pid"
    return
  }
  local hdr args=()
  while IFS= read -r hdr; do args+=(-H "$hdr"); done < <(auth_headers "$cookie")
  mapfile -t answer < <(curl -s -o /dev/null -D - --max-time 5 "${args[@]}" "http://127.0.0.1:$port$POLICY_PATH" |
    tr -d '\r' | grep -i '^x-mfa-' | sed 's/^/-header\n/')
  stop_bg "$pid"

  log "instr: $INSTR_N1 and $INSTR_N2 requests per scenario under valgrind"
  mapfile -t INSTR_HEADERS < <(auth_headers "$cookie")
  instr_per_request A 200 "http://127.0.0.1:$port$POLICY_PATH" "$TOOLS/emptyserver" --listen "127.0.0.1:$port" || return
  instr_per_request H 200 "http://127.0.0.1:$port$POLICY_PATH" "$TOOLS/emptyserver" --listen "127.0.0.1:$port" "${answer[@]}" || return
  instr_per_request B 200 "http://127.0.0.1:$port$POLICY_PATH" "${server[@]}" || return
  mapfile -t INSTR_HEADERS < <(auth_headers "")
  instr_per_request C 401 "http://127.0.0.1:$port$POLICY_PATH" "${server[@]}" || return
  R[instr_ran]=true

  # The Envoy dialects, for the same remembered browser: what Envoy sends
  # (the original Host and path, the client in X-Forwarded-For; for a
  # Check, the client as attributes.source as well).
  local host=${ORIGINAL_URL#*://} path
  path=/${host#*/}
  host=${host%%/*}
  INSTR_HEADERS=("Host: $host" "X-Forwarded-For: $CLIENT_IP" "X-Forwarded-Proto: ${ORIGINAL_URL%%://*}"
    "X-Auth-Request-Email: $USER_EMAIL" "Cookie: _ga=GA1.2.3; theme=dark; $cookie")
  instr_per_request E 200 "http://127.0.0.1:$port/ext-authz/apps/bench$path" "${server[@]}" || return
  INSTR_HEADERS=("X-Forwarded-For: $CLIENT_IP" "X-Auth-Request-Email: $USER_EMAIL" "Cookie: _ga=GA1.2.3; theme=dark; $cookie")
  INSTR_CLIENT=(-grpc -original "$ORIGINAL_URL" -policy apps/bench -source "$CLIENT_IP")
  instr_per_request G0 200 "127.0.0.1:$gport" "$TOOLS/emptyserver" --listen "127.0.0.1:$port" --grpc-addr "127.0.0.1:$gport" || return
  instr_per_request G 200 "127.0.0.1:$gport" "${server[@]}" --grpc-addr "127.0.0.1:$gport" || return
  INSTR_CLIENT=()
}

# instr_yardstick S: the scenario S is compared with (its empty handler).
instr_yardstick() {
  case $1 in
  G) echo G0 ;;
  *) echo A ;;
  esac
}

# instr_dialect_line: the goal of the front-door dialects, in instructions.
instr_dialect_line() {
  [ -n "${R[instr_B]:-}" ] && [ -n "${R[instr_E]:-}" ] && [ -n "${R[instr_G]:-}" ] || return 0
  awk -v a="${R[instr_A]}" -v b="${R[instr_B]}" -v e="${R[instr_E]}" -v g0="${R[instr_G0]}" -v g="${R[instr_G]}" 'BEGIN {
    rb = b / a; re = e / a; rg = g / g0
    printf "goal /ext-authz and gRPC Check within 10%% of /auth (instructions, each against its empty handler): /ext-authz %s (%.2f against %.2f), Check %s (%.2f against %.2f)\n",
      (re <= rb * 1.1 ? "met" : "NOT met"), re, rb, (rg <= rb * 1.1 ? "met" : "NOT met"), rg, rb }'
}

# instr_rows FORMAT (plain or markdown): the instr section's table rows.
instr_rows() {
  local s y
  for s in A H B C E G0 G; do
    [ -n "${R[instr_$s]:-}" ] || continue
    y=$(instr_yardstick $s)
    if [ "$1" = plain ]; then
      printf '%-28s %14s %10s\n' "$(scenario_name $s)" "${R[instr_$s]}" "$(ratio "${R[instr_$s]}" "${R[instr_$y]}")"
    else
      printf '| %s | %s | %s |\n' "$(scenario_name $s)" "${R[instr_$s]}" "$(ratio "${R[instr_$s]}" "${R[instr_$y]}")"
    fi
  done
}
