#!/usr/bin/env bash
# Times `oci2ext4 build` beside its floors and peers on generated images, in one run.
#
#   benches/compare.sh                 # all three images, 3 repetitions
#   SCALE=0.1 REPS=1 benches/compare.sh
#
# Images, generated at run time by examples/bench_gen.rs (nothing large is committed):
#   node    a node_modules-like tree of about 40,000 entries, mostly small JS files, 2 gzip layers
#   large   about 1.3 GB in 200 binary-like files, 1 gzip layer
#   debian  a Debian-like tree of about 5,800 entries in 5 gzip layers with whiteouts and
#           opaque directories
# and two of real files (SCALE does not apply to them):
#   distro    a Debian bookworm minbase tree, 1 gzip layer: $OCI2EXT4_VM_ROOTFS or
#             target/vm/debian.tar if there (as .ci/run makes it), else made here with
#             debootstrap the same way (as root, with network access to deb.debian.org)
#   binaries  the files of 5 MiB and more of the Rust toolchain that runs this script (its
#             `rustc --print sysroot`: shared libraries, executables, rlibs, about 1 GB), 1 gzip
#             layer
# Each is written as an OCI layout (gzip by pigz -6). Then, alternating, REPS times each:
#   oci2ext4 build LAYOUT:bench        (the release binary; default mode, no sync)
#   oci2ext4 build LAYOUT:bench --fsync (durable before it exits)
#   pigz -dc / gzip -dc of the layers to /dev/null (the decompression floor)
#   umoci raw unpack + mkfs.ext4 -d    (as root; the image sized and given inodes and block
#                                       size like ours)
#   cat of the flattened tar to a file (the copy floor)
#   oci2ext4 build FLAT.tar [--fsync]  (the flattened uncompressed tar, both modes)
#   tar2ext4 -i FLAT.tar               (only when tar2ext4 is on PATH)
#   mkfs.erofs --tar=f IMG FLAT.tar    (only when mkfs.erofs on PATH has --tar, erofs-utils 1.7+)
# Before the images, the disk's write speed is measured (dd of 1 GiB with fsync into BENCH_DIR)
# and printed beside each image's rows with the time its data takes at that speed.
# Every image oci2ext4 makes is checked with e2fsck -fn; as root, the last of each kind is
# loop-mounted and compared with the tree umoci unpacked (type, mode, owner, size, link count,
# file mtime, symlink target of every entry, and a sha256 of every regular file).
# The flattened tar is made from umoci's unpacked tree with GNU tar, in the POSIX (PAX) format
# so that times keep their nanoseconds.
#
# Environment: BENCH_DIR (default target/bench-compare, keep it on the disk you care about),
# REPS (3), WARMUP (1: rounds of every command run first and not counted), SCALE (1; e.g. 0.1
# for a quick run), IMAGES ("node large debian distro binaries"), KEEP=1 to
# keep the inputs and outputs. Prints a Markdown report on stdout, progress on stderr.
set -euo pipefail

# shellcheck source=benches/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

BENCH_DIR=${BENCH_DIR:-$ROOT/target/bench-compare}
REPS=${REPS:-3}
WARMUP=${WARMUP:-1}
SCALE=${SCALE:-1}
IMAGES=${IMAGES:-node large debian distro binaries}
KEEP=${KEEP:-0}

need pigz gzip e2fsck mkfs.ext4 dumpe2fs sha256sum findmnt
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time)"
ROOTLY=0
if is_root; then
    need umoci tar mount
    ROOTLY=1
else
    log "not root: unpack + mkfs.ext4 -d, the flattened tar rows and the mount comparison are skipped"
fi
TAR2EXT4=$(command -v tar2ext4 || true)
EROFS=$(command -v mkfs.erofs || true)
EROFS_NOTE=""
if [ -n "$EROFS" ] && ! "$EROFS" --help 2>&1 | grep -q -- '--tar'; then
    EROFS_NOTE="$EROFS has no --tar (erofs-utils 1.7 or later has): its row is left out"
    EROFS=""
elif [ -z "$EROFS" ]; then
    EROFS_NOTE="mkfs.erofs is not on PATH (apt-get install erofs-utils): its row is left out"
fi

# The real distribution tree: an existing tar, or one made as .ci/run makes it.
distro_tar() {
    local vm=$ROOT/target/vm
    if [ -n "${OCI2EXT4_VM_ROOTFS:-}" ] && [ -s "$OCI2EXT4_VM_ROOTFS" ]; then
        echo "$OCI2EXT4_VM_ROOTFS"
        return
    fi
    if [ ! -s "$vm/debian.tar" ]; then
        is_root && command -v debootstrap >/dev/null ||
            die "distro: no target/vm/debian.tar and no debootstrap (as root) to make one"
        log "   making a Debian bookworm minbase tree with debootstrap"
        mkdir -p "$vm"
        rm -rf "$vm/rootfs"
        debootstrap --variant=minbase --include=iputils-ping,libcap2-bin,acl bookworm \
            "$vm/rootfs" http://deb.debian.org/debian >"$vm/debootstrap.log" 2>&1 ||
            die "debootstrap failed; see $vm/debootstrap.log"
        tar --xattrs --xattrs-include='*' --acls -C "$vm/rootfs" -cpf "$vm/debian.tar.tmp" .
        mv "$vm/debian.tar.tmp" "$vm/debian.tar"
        rm -rf "$vm/rootfs"
    fi
    echo "$vm/debian.tar"
}

# Measures the write speed of BENCH_DIR's disk: 1 GiB with dd, through the page cache and
# synced (as mkfs.ext4 writes) when $1 is "sync", past it (O_DIRECT, as oci2ext4 writes file
# data by default) when $1 is "direct". Prints MB/s.
disk_speed() {
    local probe=$BENCH_DIR/disk-speed.probe t0 t1 flags=(conv=fsync)
    [ "$1" = direct ] && flags=(oflag=direct)
    sync
    t0=$EPOCHREALTIME
    dd if=/dev/zero of="$probe" bs=1M count=1024 "${flags[@]}" status=none
    t1=$EPOCHREALTIME
    rm -f "$probe"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 1073.741824 / (b - a) }'
}

build_tools
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
MNT=""
cleanup() {
    if [ -n "$MNT" ] && mountpoint -q "$MNT"; then umount "$MNT" || true; fi
}
trap cleanup EXIT

# make_layout DIR TAR...: an OCI layout in DIR whose image `bench` has the TARs as gzip layers
# (the TARs are removed once compressed). Prints nothing.
make_layout() {
    local dir=$1 t diff blob size layers="" diffs="" sep="" config manifest c_digest m_digest
    shift
    mkdir -p "$dir/blobs/sha256"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
    for t in "$@"; do
        diff=$(sha256sum <"$t" | cut -d' ' -f1)
        pigz -6 -n -c "$t" >"$dir/blob.tmp"
        rm -f "$t"
        blob=$(sha256sum <"$dir/blob.tmp" | cut -d' ' -f1)
        size=$(stat -c %s "$dir/blob.tmp")
        mv "$dir/blob.tmp" "$dir/blobs/sha256/$blob"
        layers="$layers$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$blob\",\"size\":$size}"
        diffs="$diffs$sep\"sha256:$diff\""
        sep=","
    done
    config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diffs]}}"
    c_digest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
    printf '%s' "$config" >"$dir/blobs/sha256/$c_digest"
    manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$c_digest\",\"size\":${#config}},\"layers\":[$layers]}"
    m_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
    printf '%s' "$manifest" >"$dir/blobs/sha256/$m_digest"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' \
        "$m_digest" "${#manifest}" >"$dir/index.json"
}

# The layer blobs of the layout in DIR, in manifest order.
layer_blobs() {
    local m
    m=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$1/index.json" | sed -n 1p | sed 's/.*sha256:\([0-9a-f]*\)"/\1/')
    grep -o '"layers":\[.*\]' "$1/blobs/sha256/$m" | grep -o 'sha256:[0-9a-f]*' | sed "s|sha256:|$1/blobs/sha256/|"
}

# Every entry below DIR (lost+found left out), one sorted line each.
listing() {
    (cd "$1" && find . -mindepth 1 \( -path ./lost+found -prune \) -o \
        \( -type l -printf 'l %m %U:%G -> %l %p\n' \) -o \
        \( -type d -printf 'd %m %U:%G %p\n' \) -o \
        \( -type f -printf 'f %m %U:%G %s n%n %T@ %p\n' \) -o \
        -printf '%y %m %U:%G %p\n') | sort
}

contents() {
    (cd "$1" && find . \( -path ./lost+found -prune \) -o -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# compare_mounted IMAGE REFDIR: loop-mounts IMAGE read-only and compares it with REFDIR. (It
# runs in a command substitution, whose exit the EXIT trap does not see: it unmounts itself.)
compare_mounted() {
    local img=$1 ref=$2 n
    MNT=$WORK/mnt
    mkdir -p "$MNT"
    mount -o ro,loop "$img" "$MNT"
    listing "$ref" >"$WORK/ref.list"
    listing "$MNT" >"$WORK/img.list"
    if ! diff "$WORK/ref.list" "$WORK/img.list" >"$WORK/list.diff"; then
        head -40 "$WORK/list.diff" >&2
        umount "$MNT"
        die "$img differs from the unpacked tree $ref (entries)"
    fi
    contents "$ref" >"$WORK/ref.sums"
    contents "$MNT" >"$WORK/img.sums"
    if ! diff "$WORK/ref.sums" "$WORK/img.sums" >"$WORK/sums.diff"; then
        head -40 "$WORK/sums.diff" >&2
        umount "$MNT"
        die "$img differs from the unpacked tree $ref (file contents)"
    fi
    umount "$MNT"
    n=$(wc -l <"$WORK/ref.list")
    log "  $img: same $n entries and $(wc -l <"$WORK/ref.sums") file hashes as the unpacked tree"
    echo "$n"
}

fmt() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "–"; else printf "%.2f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "nan") printf "%.2f", a / b; else print "–" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# block_size_of IMAGE: its block size in bytes, from the superblock.
block_size_of() { dumpe2fs -h "$1" 2>/dev/null | awk -F': *' '/^Block size/ { print $2 }'; }

log "measuring the disk's write speed"
DISK_MBS=$(disk_speed sync)
DIRECT_MBS=$(disk_speed direct)
log "   $DISK_MBS MB/s synced, $DIRECT_MBS MB/s with O_DIRECT"
REPORT=$BENCH_DIR/report.md
{
    echo "## oci2ext4 compare ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    machine
    echo "- repetitions: $REPS, alternating, after $WARMUP warm-up round(s) of every command, not counted; SCALE=$SCALE; inputs warm in the page cache; \`sync\` before every run"
    echo "- disk write speed: $DISK_MBS MB/s through the page cache and synced, $DIRECT_MBS MB/s with O_DIRECT (dd of 1 GiB of zeros into BENCH_DIR, before the runs)"
    echo "- oci2ext4 by default writes file data with O_DIRECT (through the page cache on a device slower than 1 GiB/s) and metadata through the page cache, and does not sync (like umoci, cat, tar2ext4 and mkfs.erofs); the \`--fsync\` rows make the image durable before exiting, as mkfs.ext4 does"
    echo "- tools: $(pigz --version 2>&1 | sed -n 1p), $(gzip --version | sed -n 1p), $(mkfs.ext4 -V 2>&1 | sed -n 1p)$([ "$ROOTLY" = 1 ] && echo ", $(umoci --version)")${TAR2EXT4:+, tar2ext4 at $TAR2EXT4}"
    [ -n "$TAR2EXT4" ] || echo "- tar2ext4 is not on PATH: its row is left out"
    [ -z "$EROFS_NOTE" ] || echo "- $EROFS_NOTE"
    echo
} >"$REPORT"

# The real binaries: the toolchain's files of 5 MiB and more, as one tar in $1.
binaries_tar() {
    local sysroot
    sysroot=$(rustc --print sysroot) || die "binaries: rustc is not on PATH"
    (cd "$sysroot" && find . -type f -size +5M -print0 | sort -z |
        tar --null --no-recursion -T - -cf "$1")
}

for img in $IMAGES; do
    WORK=$BENCH_DIR/$img
    TIMES=$WORK/times
    OUT=$WORK/out
    rm -rf "$WORK"
    mkdir -p "$WORK/gen" "$TIMES" "$OUT"
    if [ "$img" = distro ]; then
        src_tar=$(distro_tar)
        log "== $img: $src_tar"
        cp "$src_tar" "$WORK/gen/layer1.tar"
    elif [ "$img" = binaries ]; then
        log "== $img: the Rust toolchain's files of 5 MiB and more"
        binaries_tar "$WORK/gen/layer1.tar"
    else
        log "== $img: generating (SCALE=$SCALE)"
        "$GEN" "$img" "$WORK/gen" "$SCALE"
    fi
    mapfile -t tars < <(find "$WORK/gen" -name 'layer*.tar' | sort -V)
    make_layout "$WORK/oci" "${tars[@]}"
    mapfile -t blobs < <(layer_blobs "$WORK/oci")
    blob_bytes=$(cat "${blobs[@]}" | wc -c)

    tools=(oci2ext4 oci2ext4_fsync pigz gzip)
    if [ "$ROOTLY" = 1 ]; then
        log "   unpacking with umoci (the reference tree) and flattening it"
        umoci raw unpack --image "$WORK/oci:bench" "$WORK/ref" 2>"$WORK/umoci.err" ||
            { cat "$WORK/umoci.err" >&2; die "umoci raw unpack failed"; }
        tar -C "$WORK/ref" --format=posix --numeric-owner -cf "$WORK/flat.tar" .
        tools+=(unpack_mkfs cat oci2ext4_flat oci2ext4_flat_fsync)
        [ -n "$TAR2EXT4" ] && tools+=(tar2ext4)
        [ -n "$EROFS" ] && tools+=(erofs)
    fi
    sized=""
    ours_bs="?"
    mkfs_bs="?"
    mkfs_bytes=""
    mkfs_note=""

    # Rounds below 0 are warm-up rounds, their times dropped: the first command after the
    # set-up (generating, unpacking and flattening gigabytes) ran slower than its later runs,
    # whichever command it was.
    for ((rep = -WARMUP; rep < REPS; rep++)); do
        n=${#tools[@]}
        if [ "$rep" -eq 0 ]; then rm -f "$TIMES"/*; fi
        for ((k = 0; k < n; k++)); do
            tool=${tools[$(((k + rep + n * WARMUP) % n))]}
            rm -rf "${OUT:?}"/*
            case $tool in
            oci2ext4)
                run_timed oci2ext4 "$BIN" build "$WORK/oci:bench" -o "$OUT/ours.ext4" --quiet
                fsck_clean "$OUT/ours.ext4"
                if [ -z "$sized" ]; then
                    img_bytes=$(stat -c %s "$OUT/ours.ext4")
                    inodes=$(dumpe2fs -h "$OUT/ours.ext4" 2>/dev/null | awk -F': *' '/^Inode count/ { print $2 }')
                    ours_bs=$(block_size_of "$OUT/ours.ext4")
                    sized=1
                fi
                du -k "$OUT/ours.ext4" | cut -f1 >"$TIMES/oci2ext4.du"
                cp --sparse=always "$OUT/ours.ext4" "$WORK/ours-last.ext4"
                ;;
            oci2ext4_fsync)
                run_timed oci2ext4_fsync "$BIN" build "$WORK/oci:bench" -o "$OUT/ours.ext4" --quiet --fsync
                fsck_clean "$OUT/ours.ext4"
                ;;
            oci2ext4_flat_fsync)
                run_timed oci2ext4_flat_fsync "$BIN" build "$WORK/flat.tar" -o "$OUT/ours-flat.ext4" --quiet --fsync
                fsck_clean "$OUT/ours-flat.ext4"
                ;;
            erofs) run_timed erofs "$EROFS" --quiet --tar=f "$OUT/erofs.img" "$WORK/flat.tar" >/dev/null ;;
            oci2ext4_flat)
                run_timed oci2ext4_flat "$BIN" build "$WORK/flat.tar" -o "$OUT/ours-flat.ext4" --quiet
                fsck_clean "$OUT/ours-flat.ext4"
                du -k "$OUT/ours-flat.ext4" | cut -f1 >"$TIMES/oci2ext4_flat.du"
                cp --sparse=always "$OUT/ours-flat.ext4" "$WORK/ours-flat-last.ext4"
                ;;
            pigz) run_timed pigz pigz -dc "${blobs[@]}" >/dev/null ;;
            gzip) run_timed gzip gzip -dc "${blobs[@]}" >/dev/null ;;
            cat) run_timed cat cat "$WORK/flat.tar" >"$OUT/flat.copy" ;;
            tar2ext4) run_timed tar2ext4 "$TAR2EXT4" -i "$WORK/flat.tar" -o "$OUT/tar2ext4.img" ;;
            unpack_mkfs)
                if [ -z "$mkfs_bytes" ]; then
                    # Size the mkfs image like ours; grow it (noted) only if mkfs cannot fit the tree.
                    [ -n "$sized" ] || die "internal: oci2ext4 must run first"
                    mkfs_bytes=$img_bytes
                    until mkfs.ext4 -q -F -b "$ours_bs" -N "$inodes" -d "$WORK/ref" "$OUT/probe.img" $((mkfs_bytes / 1024))k >/dev/null 2>&1; do
                        mkfs_bytes=$((mkfs_bytes + mkfs_bytes / 10))
                        mkfs_note=" (needed $mkfs_bytes bytes, more than ours)"
                        rm -f "$OUT/probe.img"
                    done
                    rm -f "$OUT/probe.img"
                fi
                # shellcheck disable=SC2016 # expanded by the inner bash
                run_timed unpack_mkfs bash -c 'umoci raw unpack --image "$1" "$2" && mkfs.ext4 -q -F -b "$6" -N "$3" -d "$2" "$4" "$5"' \
                    _ "$WORK/oci:bench" "$OUT/rootfs" "$inodes" "$OUT/mkfs.ext4" "$((mkfs_bytes / 1024))k" "$ours_bs" >/dev/null
                du -k "$OUT/mkfs.ext4" | cut -f1 >"$TIMES/unpack_mkfs.du"
                mkfs_bs=$(block_size_of "$OUT/mkfs.ext4")
                ;;
            esac
            log "   $([ "$rep" -lt 0 ] && echo "warm-up" || echo "rep $((rep + 1))") $tool: $(tail -1 "$TIMES/$tool" | awk '{ printf "%.3f s, %.1f MiB", $1, $2 / 1024 }')"
        done
    done
    rm -rf "${OUT:?}"/*

    verified=""
    blocks_note=""
    if [ "$ROOTLY" = 1 ]; then
        log "   comparing the images with the unpacked tree through loop mounts"
        n1=$(compare_mounted "$WORK/ours-last.ext4" "$WORK/ref")
        n2=$(compare_mounted "$WORK/ours-flat-last.ext4" "$WORK/ref")
        verified="; both oci2ext4 images loop-mounted and equal to umoci's unpacked tree ($n1 and $n2 entries, every file's sha256)"
        # mkfs.ext4 is given the block size of our image (4 KiB by default), so that disk
        # usage is compared at the same block size.
        blocks_note=" Block size: oci2ext4 $ours_bs bytes, mkfs.ext4 $mkfs_bs."
    fi
    layer_count=${#blobs[@]}
    tar_bytes=0 ref_entries="?"
    if [ -f "$WORK/flat.tar" ]; then tar_bytes=$(stat -c %s "$WORK/flat.tar"); fi
    if [ -d "$WORK/ref" ]; then ref_entries=$(find "$WORK/ref" -mindepth 1 | wc -l); fi
    pigz_s=$(wall_of pigz)
    cat_s=nan
    if [ -f "$TIMES/cat" ]; then cat_s=$(wall_of cat); fi
    {
        echo "### $img: $ref_entries entries, $layer_count gzip layer(s) of $(mib $((blob_bytes / 1024))) MiB, flattened tar $(mib $((tar_bytes / 1024))) MiB"
        echo
        echo "| command | median wall (s) | ÷ pigz -dc | ÷ cat | peak RSS (MiB) | image du (MiB) | runs (s) |"
        echo "|---|---:|---:|---:|---:|---:|---|"
        for tool in "${tools[@]}"; do
            case $tool in
            oci2ext4) label="\`oci2ext4 build\` (OCI layout)" ;;
            oci2ext4_fsync) label="\`oci2ext4 build --fsync\` (OCI layout)" ;;
            oci2ext4_flat_fsync) label="\`oci2ext4 build --fsync\` flat tar" ;;
            erofs) label="\`mkfs.erofs --tar=f\` flat tar" ;;
            pigz) label="\`pigz -dc\` layers > /dev/null" ;;
            gzip) label="\`gzip -dc\` layers > /dev/null" ;;
            unpack_mkfs) label="\`umoci raw unpack\` + \`mkfs.ext4 -d\`$mkfs_note" ;;
            cat) label="\`cat\` flat tar > file" ;;
            oci2ext4_flat) label="\`oci2ext4 build\` flat tar" ;;
            tar2ext4) label="\`tar2ext4\` flat tar" ;;
            esac
            w=$(wall_of "$tool")
            du_col="–"
            [ -f "$TIMES/$tool.du" ] && du_col=$(mib "$(cat "$TIMES/$tool.du")")
            echo "| $label | $(fmt "$w") | $(ratio "$w" "$pigz_s") | $(ratio "$w" "$cat_s") | $(mib "$(rss_of "$tool")") | $du_col | $(runs_of "$tool") |"
        done
        echo
        img_mb=$(awk -v k="$(cat "$TIMES/oci2ext4.du")" 'BEGIN { printf "%.0f", k * 1.024 / 1000 }')
        echo "Disk: the image's $img_mb MB on disk take $(awk -v m="$img_mb" -v s="$DIRECT_MBS" 'BEGIN { printf "%.2f", m / s }') s at the $DIRECT_MBS MB/s measured with O_DIRECT, $(awk -v m="$img_mb" -v s="$DISK_MBS" 'BEGIN { printf "%.2f", m / s }') s at the $DISK_MBS MB/s measured synced; rows near those times are disk-bound."
        echo
        if [ -f "$TIMES/unpack_mkfs" ]; then
            echo "oci2ext4 build is $(ratio "$(wall_of unpack_mkfs)" "$(wall_of oci2ext4)") times as fast as unpack + mkfs.ext4 -d; every oci2ext4 image passed e2fsck -fn$verified.$blocks_note"
        else
            echo "Every oci2ext4 image passed e2fsck -fn."
        fi
        echo
    } >>"$REPORT"
    if [ "$KEEP" != 1 ]; then
        rm -rf "$WORK"
    fi
done

cat "$REPORT"
