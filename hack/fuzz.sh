#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (func FuzzXxx in a _test.go
# file), one after the other, each for the same time or number of inputs.
#
#   hack/fuzz.sh [FUZZTIME]     FUZZTIME: 1m (default), 5s, 90s, 1h30m, or 5000x
#
# `make fuzz` runs it for a minute per target (FUZZTIME=10m make fuzz for
# longer); `make test` for 4,000 inputs each. A count, not a time: when
# -fuzztime is a time, Go 1.26's coordinator (internal/fuzz, CoordinateFuzzing)
# compares the deadline's error with its workers' context before that context
# is cancelled, and can then fail a target that found nothing, printing only
# "context deadline exceeded" and writing no input. A count has no deadline.
# Every target runs even when one fails; the script fails when any did. An
# input that fails is written by go test to the package's
# testdata/fuzz/FuzzXxx/: commit it with the fix, so that it runs in every
# `go test` from then on.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${1:-${FUZZTIME:-1m}}

# seconds_of prints the seconds of a Go duration made of h, m and s parts
# (e.g. 1h30m, 90s), or nothing for another form (5000x).
seconds_of() {
  local d=$1 total=0 n unit
  [[ $d =~ ^([0-9]+[hms])+$ ]] || return 0
  while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
    case $unit in
    h) total=$((total + n * 3600)) ;;
    m) total=$((total + n * 60)) ;;
    s) total=$((total + n)) ;;
    esac
  done
  echo "$total"
}

# go test's own timeout bounds each run: the fuzzing time plus building
# and running the seeds.
secs=$(seconds_of "$fuzztime")
timeout="$(( ${secs:-600} + 600 ))s"

# Targets as "package-dir FuzzName", from tracked and new (not ignored) files.
mapfile -t targets < <(
  git ls-files --cached --others --exclude-standard -- '*_test.go' |
    xargs -r grep -H -o -E '^func Fuzz[A-Za-z0-9_]+\(' |
    sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\($#\1 \2#; s#^[^/ ]+_test\.go:func (Fuzz[A-Za-z0-9_]+)\($#. \1#' |
    sort -u
)
if [ ${#targets[@]} -eq 0 ]; then
  echo "no fuzz targets found" >&2
  exit 1
fi

failed=()
for t in "${targets[@]}"; do
  read -r dir name <<<"$t"
  printf '%s fuzzing %s in ./%s for %s\n' "$(date +%H:%M:%S)" "$name" "$dir" "$fuzztime" >&2
  if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" -timeout="$timeout" "./$dir"; then
    failed+=("./$dir $name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz targets that failed (inputs in their testdata/fuzz/):\n' >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '%d fuzz targets ran %s each without a failure\n' "${#targets[@]}" "$fuzztime" >&2
