#!/bin/sh
# Mutation check of the virtio-blk driver's host tests.
#
# Each NN-name.patch in this directory plants one plausible driver bug. For every patch
# the script makes a fresh copy of the source tree (tracked and untracked, non-ignored
# files, as they are in the working tree), applies the patch there, runs
# `cargo test -p frond-virtio-blk`, and reports "caught" (some test failed) or
# "NOT caught" (all passed). The unpatched copy runs first and must pass. The working
# tree is never modified.
#
#   drivers/virtio-blk/mutants/run.sh [NAME...]    # default: every patch
#
# Environment: JOBS (cargo -j, default 1), MUTANT_TIMEOUT (seconds per test run, default
# 900; a run that times out counts as caught), CARGO_TARGET_DIR (default
# target/mutants in the tree, kept between runs so only the driver crates rebuild).
# Exit status: 0 if every mutant was caught — by, among others, the test the crate docs'
# mutant table names for it — and 1 otherwise.

set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
jobs=${JOBS:-1}
limit=${MUTANT_TIMEOUT:-900}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/mutants}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/frond-mutants.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# The pristine copy: every file git would track, minus deleted ones.
mkdir "$tmp/pristine"
(cd "$root" && git ls-files -co --exclude-standard | while IFS= read -r f; do
    [ -f "$f" ] && printf '%s\n' "$f"
done) >"$tmp/files"
(cd "$root" && tar -cf - -T "$tmp/files") | (cd "$tmp/pristine" && tar -xf -)

# A fresh working copy at the same path every time (so cargo reuses its build of the
# dependencies), with the driver crates' sources touched: a restored file is older than
# the last build of a mutant, and cargo would otherwise keep that build.
fresh() {
    rm -rf "$tmp/work"
    cp -a "$tmp/pristine" "$tmp/work"
}
touch_drivers() {
    find "$tmp/work/drivers/virtio" "$tmp/work/drivers/virtio-model" "$tmp/work/drivers/virtio-blk" \
        -name '*.rs' -exec touch {} +
}
run_tests() {
    (cd "$tmp/work" && timeout "$limit" cargo test -q -j "$jobs" -p frond-virtio-blk) >"$tmp/log" 2>&1
}
failed_tests() {
    sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p; s/^---- \(.*\) stdout ----$/\1/p' "$tmp/log" | sort -u | tr '\n' ' '
}

if [ $# -gt 0 ]; then
    patches=""
    for n in "$@"; do patches="$patches $here/${n%.patch}.patch"; done
else
    patches=$(ls "$here"/*.patch)
fi

echo "mutants: baseline (no mutant) ..."
fresh
touch_drivers
if ! run_tests; then
    echo "mutants: the unpatched tests fail; fix them first:" >&2
    tail -n 40 "$tmp/log" >&2
    exit 1
fi

status=0
caught=0
total=0
for p in $patches; do
    name=$(basename "$p" .patch)
    total=$((total + 1))
    fresh
    if ! (cd "$tmp/work" && patch -s -p1 --no-backup-if-mismatch <"$p") >"$tmp/log" 2>&1; then
        echo "$name: PATCH DOES NOT APPLY"
        status=1
        continue
    fi
    touch_drivers
    if run_tests; then
        echo "$name: NOT caught"
        status=1
    else
        rc=$?
        caught=$((caught + 1))
        if [ "$rc" = 124 ]; then
            echo "$name: caught (timeout after ${limit}s)"
        elif grep -q '^error\(\[E[0-9]*\]\)\?:' "$tmp/log" && ! grep -q '^test result' "$tmp/log"; then
            echo "$name: caught?? it does not compile:"
            grep -m 3 -A 3 '^error' "$tmp/log"
            caught=$((caught - 1))
            status=1
        else
            failing=$(failed_tests)
            echo "$name: caught; failing tests: $failing"
            # The crate docs name the test meant to catch each mutant: it must be among them.
            meant=$(sed -n "s/^.*| \`$name\` |.*| \`\([a-z0-9_]*\)\` |\$/\1/p" "$root/drivers/virtio-blk/src/lib.rs")
            case " $failing" in
            *" $meant "*) ;;
            *)
                echo "$name: the docs say \`${meant:-?}\` catches it, but that test passed"
                status=1
                ;;
            esac
        fi
    fi
done
echo "mutants: $caught of $total caught"
exit $status
