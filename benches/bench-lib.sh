# Shared by benches/compare.sh and benches/growth.sh (sourced, not run).
# shellcheck shell=bash

export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# Used by the scripts that source this file.
# shellcheck disable=SC2034
BIN=$TARGET/release/oci2ext4
# shellcheck disable=SC2034
GEN=$TARGET/release/examples/bench_gen

log() { printf '%s\n' "$*" >&2; }
die() {
    log "FAIL: $*"
    exit 1
}

need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t is not installed (apt-get install pigz time umoci e2fsprogs)"
    done
}

# Builds the release binary and the input generator.
build_tools() {
    log "building the release binary and the generator"
    (cd "$ROOT" && cargo build --release --quiet --bin oci2ext4 --example bench_gen) >&2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# run_timed NAME CMD...: runs CMD under /usr/bin/time -v after a `sync`, and appends
# "WALL_SECONDS PEAK_RSS_KIB" to $TIMES/NAME. Wall time is taken with $EPOCHREALTIME around
# the command (microseconds), peak RSS from time's report (the largest of the process and its
# waited-for children). Stdout of CMD goes wherever the caller's stdout goes; its stderr to
# $TIMES/NAME.err, shown if it fails.
run_timed() {
    local name=$1 t0 t1 rss
    shift
    sync
    t0=$EPOCHREALTIME
    if ! /usr/bin/time -v -o "$TIMES/$name.time" "$@" 2>"$TIMES/$name.err"; then
        cat "$TIMES/$name.err" "$TIMES/$name.time" >&2
        die "$name failed: $*"
    fi
    t1=$EPOCHREALTIME
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TIMES/$name.time")
    awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN { printf "%.3f %d\n", b - a, r }' >>"$TIMES/$name"
}

# Median wall seconds and median peak RSS (KiB) of NAME's runs; all wall times, comma-separated.
wall_of() { awk '{ print $1 }' "$TIMES/$1" | median; }
rss_of() { awk '{ print $2 }' "$TIMES/$1" | median; }
runs_of() { awk '{ printf "%s%s", sep, $1; sep = ", " } END { print "" }' "$TIMES/$1"; }

# e2fsck -fn IMAGE, failing loudly unless it is clean.
fsck_clean() {
    local out
    if ! out=$(e2fsck -fn "$1" 2>&1); then
        printf '%s\n' "$out" >&2
        die "e2fsck -fn $1 is not clean"
    fi
}

# Describes the machine and BENCH_DIR's filesystem, as Markdown.
machine() {
    local fs src cpu
    fs=$(findmnt -no FSTYPE -T "$BENCH_DIR" | sed -n 1p)
    src=$(findmnt -no SOURCE -T "$BENCH_DIR" | sed -n 1p)
    cpu=$(lscpu | awk -F': *' '/^Model name/ && !found { print $2; found = 1 }')
    echo "- machine: $cpu, $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM ($(awk '/MemAvailable/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) available), kernel $(uname -r)"
    if [ "$fs" = tmpfs ]; then
        echo "- BENCH_DIR: $BENCH_DIR on $fs ($src): **tmpfs, not a disk**"
    else
        echo "- BENCH_DIR: $BENCH_DIR on $fs ($src), a disk, not tmpfs"
    fi
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine add noise)"
    echo "- oci2ext4 $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown), release build"
}
