#!/usr/bin/env bash
# How `oci2ext4 build` grows: wall time and peak RSS at 10k, 100k and 1M entries and at 0.1, 1
# and 10 GB of file data, from generated tars (examples/bench_gen.rs).
#
#   benches/growth.sh
#   ENTRIES="10000 100000" BYTES="100000000 1000000000" benches/growth.sh   # a quicker run
#
# Entry points: a tar of N entries (directories of 100; files of 0 to 2 KiB, a quarter empty)
# is written to BENCH_DIR, then built with `oci2ext4 build --layer TAR`. Bytes per entry is
# given two ways: (peak RSS - peak RSS of a 100-entry tar) / N, which at small N still holds
# the I/O buffers that fill as data flows, and the slope from the previous point,
# (peak RSS - previous peak RSS) / (N - previous N), which is what each entry adds. At the
# largest N, `oci2ext4 build TAR` (which first reads the tar's headers to tell a docker archive
# from a root filesystem tar) is timed too.
# Data points: files of 64 MiB of binary-like data, streamed from the generator through a pipe
# into `oci2ext4 build --layer /dev/stdin` (no tar file on disk: 10 GB would need 20 GB with
# the image); the generator alone into /dev/null is timed beside it. The 10 GB point is skipped,
# with the reason printed, when BENCH_DIR's filesystem has not room for the image.
# Every image is checked with e2fsck -fn. Outputs are deleted unless KEEP=1.
#
# Environment: BENCH_DIR (default target/bench-growth), ENTRIES, BYTES, REPS (1), KEEP.
set -euo pipefail

# shellcheck source=benches/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench-growth}
ENTRIES=${ENTRIES:-10000 100000 1000000}
BYTES=${BYTES:-100000000 1000000000 10000000000}
REPS=${REPS:-1}
KEEP=${KEEP:-0}

need e2fsck findmnt df
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
build_tools
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
WORK=$BENCH_DIR/work
TIMES=$WORK/times
rm -rf "$WORK"
mkdir -p "$TIMES"
MACHINE=$(machine)

free_bytes() { df -B1 --output=avail "$BENCH_DIR" | tail -1 | tr -d ' '; }

# build_image NAME ARGS...: REPS timed builds into $WORK/img.ext4, each checked by e2fsck.
build_image() {
    local name=$1 r
    shift
    for ((r = 0; r < REPS; r++)); do
        rm -f "$WORK/img.ext4"
        run_timed "$name" "$BIN" build "$@" -o "$WORK/img.ext4" --quiet
        fsck_clean "$WORK/img.ext4"
        log "   $name: $(tail -1 "$TIMES/$name" | awk '{ printf "%.3f s, %.1f MiB", $1, $2 / 1024 }')"
    done
    rm -f "$WORK/img.ext4"
}

# piped NAME BYTES: the generator's tar of BYTES through a pipe into oci2ext4, REPS times.
piped() {
    local name=$1 bytes=$2 r t0 t1 rss
    for ((r = 0; r < REPS; r++)); do
        rm -f "$WORK/img.ext4"
        sync
        t0=$EPOCHREALTIME
        if ! "$GEN" data "$bytes" - 2>/dev/null |
            /usr/bin/time -v -o "$TIMES/$name.time" "$BIN" build --layer /dev/stdin -o "$WORK/img.ext4" --quiet 2>"$TIMES/$name.err"; then
            cat "$TIMES/$name.err" "$TIMES/$name.time" >&2
            die "$name failed"
        fi
        t1=$EPOCHREALTIME
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TIMES/$name.time")
        awk -v a="$t0" -v b="$t1" -v r="$rss" 'BEGIN { printf "%.3f %d\n", b - a, r }' >>"$TIMES/$name"
        fsck_clean "$WORK/img.ext4"
        log "   $name: $(tail -1 "$TIMES/$name" | awk '{ printf "%.3f s, %.1f MiB", $1, $2 / 1024 }')"
        rm -f "$WORK/img.ext4"
        # the generator alone, for reference
        run_timed "$name.gen" "$GEN" data "$bytes" - >/dev/null
    done
}

human_n() { awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%gM", n / 1e6; else if (n >= 1e3) printf "%gk", n / 1e3; else print n }'; }
human_b() { awk -v n="$1" 'BEGIN { printf "%g GB", n / 1e9 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

log "== baseline: 100 entries"
"$GEN" entries 100 "$WORK/base.tar" 2>/dev/null
build_image base --layer "$WORK/base.tar"
base_rss=$(rss_of base)

for n in $ENTRIES; do
    log "== $(human_n "$n") entries"
    "$GEN" entries "$n" "$WORK/entries.tar" 2>/dev/null
    build_image "entries-$n" --layer "$WORK/entries.tar"
    if [ "$n" = "${ENTRIES##* }" ]; then
        build_image "entries-$n-sniff" "$WORK/entries.tar"
    fi
    rm -f "$WORK/entries.tar"
done

skipped=""
for b in $BYTES; do
    need_bytes=$((b + b / 4 + (2 << 30)))
    if [ "$(free_bytes)" -lt "$need_bytes" ]; then
        skipped="$skipped- $(human_b "$b") skipped: $(free_bytes) bytes free on $BENCH_DIR, $need_bytes needed (the image and a margin)"$'\n'
        log "   skipping $(human_b "$b"): not enough free space"
        continue
    fi
    log "== $(human_b "$b") of file data"
    piped "data-$b" "$b"
done

{
    echo "## oci2ext4 growth ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "$MACHINE"
    echo "- repetitions: $REPS (median); \`sync\` before every run; every image passed e2fsck -fn"
    echo "- baseline: a 100-entry tar, peak RSS $(mib "$base_rss") MiB, $(wall_of base) s"
    echo
    echo "| input | via | wall (s) | µs per entry | peak RSS (MiB) | bytes per entry over baseline | bytes per entry, slope from the previous point |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    prev_n="" prev_r=""
    for n in $ENTRIES; do
        for v in "" -sniff; do
            [ -f "$TIMES/entries-$n$v" ] || continue
            w=$(wall_of "entries-$n$v")
            r=$(rss_of "entries-$n$v")
            via="\`build --layer TAR\`" pn=$prev_n
            [ -z "$v" ] || { via="\`build TAR\`" && pn=""; }
            awk -v n="$n" -v w="$w" -v r="$r" -v b="$base_rss" -v via="$via" -v label="$(human_n "$n") entries" \
                -v pn="$pn" -v pr="$prev_r" \
                'BEGIN { slope = (pn == "") ? "–" : sprintf("%.0f", (r - pr) * 1024 / (n - pn))
                         printf "| %s | %s | %.2f | %.1f | %.1f | %.0f | %s |\n", label, via, w, w * 1e6 / n, r / 1024, (r - b) * 1024 / n, slope }'
        done
        if [ -f "$TIMES/entries-$n" ]; then
            prev_n=$n
            prev_r=$(rss_of "entries-$n")
        fi
    done
    echo
    echo "| file data | via | wall (s) | generator alone (s) | s per GB | peak RSS (MiB) |"
    echo "|---|---|---:|---:|---:|---:|"
    for b in $BYTES; do
        [ -f "$TIMES/data-$b" ] || continue
        w=$(wall_of "data-$b")
        awk -v b="$b" -v w="$w" -v g="$(wall_of "data-$b.gen")" -v r="$(rss_of "data-$b")" -v label="$(human_b "$b")" \
            'BEGIN { printf "| %s | pipe, `build --layer /dev/stdin` | %.2f | %.2f | %.2f | %.1f |\n", label, w, g, w * 1e9 / b, r / 1024 }'
    done
    if [ -n "$skipped" ]; then
        echo
        printf '%s' "$skipped"
    fi
} >"$WORK/report.md"

cat "$WORK/report.md"
if [ "$KEEP" != 1 ]; then
    cp "$WORK/report.md" "$BENCH_DIR/report.md"
    rm -rf "$WORK"
fi
