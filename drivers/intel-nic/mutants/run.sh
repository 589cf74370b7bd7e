#!/usr/bin/env bash
# Deliberate driver bugs, each one patch against drivers/intel-nic: every patch is applied
# to a temporary copy of the workspace and the 82599 host tests (tests/ixgbe.rs, against
# the device model) run there. A mutant is "caught" when the tests fail; the script
# names the failing tests. It exits non-zero if a mutant is NOT caught or a patch no
# longer applies.
#
# usage: drivers/intel-nic/mutants/run.sh [PATCH...]   (default: every mutants/*.patch)
# Builds go to target/mutants (kept, so reruns only rebuild the crate).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
export CARGO_TARGET_DIR="$root/target/mutants"
patches=("$@")
[ ${#patches[@]} -eq 0 ] && patches=("$here"/*.patch)

work=$(mktemp -d "${TMPDIR:-/tmp}/frond-mutants.XXXXXX")
trap 'rm -rf "$work"' EXIT
status=0
printf '%-28s %-10s %s\n' mutant result "failing tests"
for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  copy="$work/$name"
  mkdir -p "$copy"
  # The workspace without build output or history.
  (cd "$root" && tar --exclude=./target --exclude=./.git -cf - .) | tar -xf - -C "$copy"
  if ! patch -s -p1 -d "$copy" <"$p" >/dev/null; then
    printf '%-28s %-10s %s\n' "$name" ERROR "patch does not apply"
    status=1
    continue
  fi
  out=$(cd "$copy" && timeout 600 cargo test -q -p frond-intel-nic --test ixgbe 2>&1)
  rc=$?
  failed=$(printf '%s\n' "$out" | sed -n 's/^    \([a-z0-9_]*\)$/\1/p' | sort -u | tr '\n' ' ')
  if [ $rc -eq 124 ]; then
    printf '%-28s %-10s %s\n' "$name" caught "(tests timed out)"
  elif [ $rc -ne 0 ] && [ -n "$failed" ]; then
    printf '%-28s %-10s %s\n' "$name" caught "$failed"
  elif [ $rc -ne 0 ]; then
    printf '%-28s %-10s %s\n' "$name" ERROR "the tests did not build or run:"
    printf '%s\n' "$out" | tail -20
    status=1
  else
    printf '%-28s %-10s %s\n' "$name" "NOT caught" ""
    status=1
  fi
  rm -rf "$copy"
done
exit $status
