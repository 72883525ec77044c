//! The tar reader reads archives as Go's `archive/tar` does (containerd, Docker, umoci and crane
//! unpack layers with it). The first part restates what Go's own test suite expects of its
//! test archives (`src/archive/tar/reader_test.go`: which archives it reads, with which names,
//! fields and contents, and which it refuses), each archive written here byte by byte; the
//! second part takes the cases where readers differ one at a time. Whole builds of such
//! archives, judged by e2fsck and a kernel mount, are in `tests/tar_conformance.rs`.

use std::fs;
use std::io::Read;
use std::process::Command;

use super::raw_tar::{record, Tar, H, T0};
use super::{Entry, EntryKind, TarReader};
use crate::entry::Timestamp;
use crate::error::ErrorKind;

/// Prints why a check is skipped; the test goes on with what it can check.
fn skip(what: &str, why: &str) {
    eprintln!("SKIP {what}: {why}");
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("oci2ext4-test")
        .tempdir()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Reading them.

/// Every entry with its content (holes of sparse files filled with zeros).
fn read(data: &[u8]) -> crate::error::Result<Vec<(Entry, Vec<u8>)>> {
    let mut r = TarReader::new(data);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut raw = Vec::new();
        r.data().read_to_end(&mut raw)?;
        let content = match &e.sparse {
            None => raw,
            Some(map) => {
                let mut c = vec![0u8; e.size as usize];
                let mut at = 0usize;
                for &(off, len) in map {
                    let (off, len) = (off as usize, len as usize);
                    c[off..off + len].copy_from_slice(&raw[at..at + len]);
                    at += len;
                }
                c
            }
        };
        out.push((e, content));
    }
    Ok(out)
}

fn names(entries: &[(Entry, Vec<u8>)]) -> Vec<String> {
    entries
        .iter()
        .map(|(e, _)| String::from_utf8_lossy(&e.path).into_owned())
        .collect()
}

/// The archive is refused as corrupt input, with a message holding `needle`.
fn refused(data: &[u8], needle: &str) {
    match read(data) {
        Ok(entries) => panic!("read, want refused: {:?}", names(&entries)),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::CorruptInput, "{e}");
            assert!(e.to_string().contains(needle), "{e:#} lacks {needle:?}");
        }
    }
}

fn ts(sec: i64, nsec: u32) -> Timestamp {
    Timestamp { sec, nsec }
}

// ---------------------------------------------------------------------------------------------
// Go's expectations, archive by archive (named after Go's testdata files).

/// gnu.tar: GNU headers; v7.tar: no magic, type `\0`.
#[test]
fn go_gnu_and_v7() {
    for (label, make) in [
        ("gnu", (|h: H| h.gnu()) as fn(H) -> H),
        ("v7", |h: H| h.v7().put(156, b"\0")),
    ] {
        let mut t = Tar::default();
        t.h(make(
            H::new(b"small.txt", b'0', 5)
                .mode(0o640)
                .owner(73025, 5000)
                .mtime(1244428340),
        ))
        .data(b"Kilts");
        t.h(make(
            H::new(b"small2.txt", b'0', 11)
                .mode(0o640)
                .owner(73025, 5000)
                .mtime(1244436044),
        ))
        .data(b"Google.com\n");
        let got = read(&t.end()).unwrap();
        assert_eq!(names(&got), ["small.txt", "small2.txt"], "{label}");
        let (e, c) = &got[0];
        assert_eq!(
            (e.kind, e.mode & 0o7777, e.uid, e.gid),
            (EntryKind::File, 0o640, 73025, 5000)
        );
        assert_eq!((e.size, e.mtime), (5, ts(1244428340, 0)));
        assert_eq!(c, b"Kilts");
        assert_eq!(got[1].1, b"Google.com\n");
    }
}

/// star.tar: a 131-byte prefix, then access and change times.
#[test]
fn go_star() {
    let mut t = Tar::default();
    t.h(H::new(b"small.txt", b'0', 5)
        .star()
        .put(345, b"dir")
        .octal(476, 12, 1244592783)
        .octal(488, 12, 1244592784))
        .data(b"Kilts");
    let got = read(&t.end()).unwrap();
    assert_eq!(names(&got), ["dir/small.txt"]);
    assert_eq!(got[0].0.atime, Some(ts(1244592783, 0)));
    assert_eq!(got[0].0.ctime, Some(ts(1244592784, 0)));
}

/// pax.tar: a long path and nanosecond times; a symlink with a long `linkpath` (mode 0777).
#[test]
fn go_pax() {
    let long: String = (1..=100).map(|i| i.to_string()).collect();
    let path = format!("a/{long}");
    let mut t = Tar::default();
    t.pax(
        b'x',
        &[
            ("path", path.as_bytes()),
            ("mtime", b"1350244992.023960108"),
            ("atime", b"1350244992.023960108"),
            ("ctime", b"1350244992.023960108"),
        ],
    )
    .h(H::new(
        b"a/1234567891011121314151617181920212223242526272829303132333435363738394041424344454647",
        b'0',
        7,
    )
    .mode(0o664))
    .data(b"shaneQ\n");
    t.pax(
        b'x',
        &[
            ("linkpath", long.as_bytes()),
            ("mtime", b"1350266320.910238425"),
        ],
    )
    .h(H::new(b"a/b", b'2', 0)
        .mode(0o777)
        .link(b"1234567891011121314151617181920"));
    let got = read(&t.end()).unwrap();
    assert_eq!(names(&got), [path.as_str(), "a/b"]);
    assert_eq!(got[0].0.mtime, ts(1350244992, 23960108));
    assert_eq!(got[0].0.atime, Some(ts(1350244992, 23960108)));
    assert_eq!(got[0].1, b"shaneQ\n");
    assert_eq!(got[1].0.kind, EntryKind::Symlink);
    assert_eq!(got[1].0.link_name, long.as_bytes());
    assert_eq!(got[1].0.mtime, ts(1350266320, 910238425));
}

/// pax-bad-hdr-file.tar, pax-bad-mtime-file.tar, issue11169.tar and `parsePAX`'s vectors: a
/// malformed record or value is refused.
#[test]
fn go_malformed_pax_records_are_refused() {
    let file = |t: &mut Tar| -> Vec<u8> { t.file("foo", b"x").end() };
    // A length that does not cover its record, one beyond the data, one below five.
    refused(
        &file(Tar::default().ext(b'x', b"3 somelongkey=\n")),
        "PAX record",
    );
    refused(
        &file(Tar::default().ext(b'x', b"50 tooshort=\n")),
        "PAX record",
    );
    refused(
        &file(Tar::default().ext(b'x', b"13 path=foo\n")),
        "PAX record",
    );
    refused(&file(Tar::default().ext(b'x', b"4 a=\n")), "PAX record");
    refused(&file(Tar::default().ext(b'x', b"x a=b\n")), "PAX record");
    refused(&file(Tar::default().ext(b'x', b"6 ab\nc")), "PAX record");
    // No key.
    refused(&file(Tar::default().ext(b'x', b"6 =ab\n")), "empty key");
    // A time and ids that are not numbers.
    refused(
        &file(Tar::default().pax(b'x', &[("mtime", b"1350244992.02396010x")])),
        "not a valid time",
    );
    refused(
        &file(Tar::default().pax(b'x', &[("gid", b"gtgergergersagersgers")])),
        "not a valid number",
    );
    refused(
        &file(Tar::default().pax(b'x', &[("size", b"-1")])),
        "negative entry size",
    );
    // Global headers' records must parse too.
    refused(
        &file(Tar::default().ext(b'g', b"50 tooshort=\n")),
        "PAX record",
    );
}

/// `parsePAX`'s good vectors: minimal records, and a key given twice takes its last value,
/// an empty one leaving the header's field.
#[test]
fn go_pax_record_forms() {
    let got = read(
        &Tar::default()
            .ext(b'x', b"6 k=1\n9 a=name\n")
            .file("f", b"")
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["f"]);
    let body = [
        record(b"path", b"first"),
        record(b"uid", b"5"),
        record(b"path", b"second"),
        record(b"uid", b""),
    ]
    .concat();
    let got = read(
        &Tar::default()
            .ext(b'x', &body)
            .h(H::new(b"hdr", b'0', 0).owner(9, 9))
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["second"]);
    assert_eq!(got[0].0.uid, 9, "an empty value keeps the header's uid");
    // pax-pos-size-file.tar: a size with leading zeros.
    let got = read(
        &Tar::default()
            .pax(b'x', &[("size", b"000000000000000000000999")])
            .h(H::new(b"foo", b'0', 0))
            .data(&[7u8; 999])
            .end(),
    )
    .unwrap();
    assert_eq!((got[0].0.size, got[0].1.len()), (999, 999));
}

/// pax-records.tar, pax-global-records.tar: records Go keeps but nothing reads are harmless;
/// global headers are entries of their own that unpackers skip, applying to no file.
#[test]
fn go_pax_global_records() {
    let mut t = Tar::default();
    t.pax(
        b'x',
        &[
            ("GOLANG.pkg", b"tar"),
            ("comment", "Hello, 世界".as_bytes()),
            ("uname", b"longlonglonglong"),
        ],
    )
    .file("file", b"");
    t.pax(b'g', &[("path", b"global1"), ("mtime", b"1500000000.0")])
        .h(H::new(b"file1", b'0', 0).mtime(0));
    t.pax(b'x', &[("path", b"file2")])
        .h(H::new(b"file2", b'0', 0).mtime(0));
    t.pax(b'g', &[("path", b"")])
        .h(H::new(b"file3", b'0', 0).mtime(0));
    t.pax(b'x', &[("mtime", b"1400000000")])
        .h(H::new(b"file4", b'0', 0).mtime(0));
    let got = read(&t.end()).unwrap();
    assert_eq!(names(&got), ["file", "file1", "file2", "file3", "file4"]);
    let mtimes: Vec<i64> = got.iter().map(|(e, _)| e.mtime.sec).collect();
    assert_eq!(mtimes, [T0, 0, 0, 0, 1400000000]);
}

/// nil-uid.tar: an all-NUL uid field is 0. ustar-file-devs.tar: device numbers on a file.
/// gnu-utf8.tar, gnu-not-utf8.tar: names are bytes.
#[test]
fn go_fields_as_they_come() {
    let mut t = Tar::default();
    t.h(H::new(b"P1050238.JPG.log", b'0', 14)
        .gnu()
        .put(108, &[0; 8]))
        .data(b"Hello, world!\n");
    t.h(H::new(b"file", b'0', 0).dev(1, 1));
    let utf8 = "☺☻☹".repeat(10);
    t.h(H::new(utf8.as_bytes(), b'0', 0).gnu());
    t.h(H::new(b"hi\x80\x81\x82\x83bye", b'0', 0).gnu());
    let got = read(&t.end()).unwrap();
    assert_eq!(got[0].0.uid, 0);
    assert_eq!(got[1].0.kind, EntryKind::File);
    assert_eq!(got[2].0.path, utf8.as_bytes());
    assert_eq!(got[3].0.path, b"hi\x80\x81\x82\x83bye");
}

/// xattrs.tar: `SCHILY.xattr.*` records, a value with a NUL kept whole, times with fewer than
/// nine decimals.
#[test]
fn go_xattrs() {
    let got = read(
        &Tar::default()
            .pax(
                b'x',
                &[
                    ("mtime", b"1386065770.44825232"),
                    ("atime", b"1389782991.41987522"),
                    ("SCHILY.xattr.user.key", b"value"),
                    ("SCHILY.xattr.user.key2", b"value2"),
                    (
                        "SCHILY.xattr.security.selinux",
                        b"unconfined_u:object_r:default_t:s0\0",
                    ),
                ],
            )
            .file("small.txt", b"Kilts")
            .end(),
    )
    .unwrap();
    let e = &got[0].0;
    assert_eq!(e.mtime, ts(1386065770, 448252320));
    assert_eq!(e.atime, Some(ts(1389782991, 419875220)));
    let x: Vec<(&[u8], &[u8])> = e
        .xattrs
        .iter()
        .map(|x| (&x.name[..], &x.value[..]))
        .collect();
    assert_eq!(
        x,
        [
            (&b"user.key"[..], &b"value"[..]),
            (b"user.key2", b"value2"),
            (b"security.selinux", b"unconfined_u:object_r:default_t:s0\0"),
        ]
    );
}

/// gnu-multi-hdrs.tar: of several GNU long names and links, the last of each.
/// pax-multi-hdrs.tar: of several PAX headers, the last alone (its `linkpath`; the `path` of
/// the earlier ones is dropped, so the header's name stays).
#[test]
fn go_multiple_extended_headers() {
    let got = read(
        &Tar::default()
            .long(b'L', b"GNU1/GNU1/long-path-name")
            .long(b'L', b"GNU2/GNU2/long-path-name")
            .long(b'K', b"GNU3/GNU3/long-linkpath-name")
            .long(b'K', b"GNU4/GNU4/long-linkpath-name")
            .h(H::new(b"bar", b'2', 0).gnu().link(b"foo"))
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["GNU2/GNU2/long-path-name"]);
    assert_eq!(got[0].0.link_name, b"GNU4/GNU4/long-linkpath-name");
    let got = read(
        &Tar::default()
            .pax(b'x', &[("path", b"PAX1/PAX1/long-path-name")])
            .pax(b'x', &[("path", b"PAX2/PAX2/long-path-name")])
            .pax(b'x', &[("linkpath", b"PAX3/PAX3/long-linkpath-name")])
            .pax(b'x', &[("linkpath", b"PAX4/PAX4/long-linkpath-name")])
            .h(H::new(b"bar", b'2', 0).link(b"foo"))
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["bar"]);
    assert_eq!(got[0].0.link_name, b"PAX4/PAX4/long-linkpath-name");
}

/// gnu-incremental.tar: GNU access and change times; a dump directory's data is skipped.
#[test]
fn go_gnu_incremental() {
    let times = |h: H| {
        h.gnu()
            .octal(345, 12, 1441974501)
            .octal(357, 12, 1441973436)
    };
    let got = read(
        &Tar::default()
            .h(times(H::new(b"test2/", b'D', 14).mode(0o40755)))
            .data(b"Yfoo\0Ysparse\0\0")
            .h(times(H::new(b"test2/foo", b'0', 4).mode(0o100644)))
            .data(b"abcd")
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["test2/", "test2/foo"]);
    assert_eq!(got[0].0.kind, EntryKind::Dir);
    assert_eq!(got[1].0.atime, Some(ts(1441974501, 0)));
    assert_eq!(got[1].0.ctime, Some(ts(1441973436, 0)));
    assert_eq!(got[1].1, b"abcd");
}

/// gnu-long-nul.tar: a GNU long name is cut at its first NUL, whatever follows (GNU tar and
/// bsdtar do the same).
#[test]
fn go_gnu_long_name_cut_at_nul() {
    let got = read(
        &Tar::default()
            .long(b'L', b"0123456789\0garbage after the NUL")
            .h(H::new(b"short", b'0', 0).gnu())
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["0123456789"]);
}

/// pax-nul-xattrs.tar, pax-nul-path.tar: a NUL in a key, or in a path, is refused (bsdtar
/// refuses both; GNU tar cuts the path at the NUL, so the two do not agree).
#[test]
fn go_nuls_in_pax_records_are_refused() {
    refused(
        &Tar::default()
            .pax(b'x', &[("SCHILY.xattr.null\0null", b"fizzbuzz")])
            .file("f", b"")
            .end(),
        "holds a NUL",
    );
    refused(
        &Tar::default()
            .pax(b'x', &[("path", b"null\0null")])
            .file("f", b"")
            .end(),
        "holds a NUL",
    );
    // A NUL in another value is kept (Go keeps it, and xattr values may hold them).
    let got = read(
        &Tar::default()
            .pax(b'x', &[("SCHILY.xattr.user.n", b"a\0b")])
            .file("f", b"")
            .end(),
    )
    .unwrap();
    assert_eq!(got[0].0.xattrs[0].value, b"a\0b");
}

/// neg-size.tar, issue10968.tar, issue12435.tar, and checksums: numbers must be numbers.
#[test]
fn go_bad_numbers_are_refused() {
    let mut neg = H::new(b"neg", b'0', 0);
    neg.0[124..136].copy_from_slice(&[0xFF; 12]);
    refused(&Tar::default().h(neg).end(), "negative entry size");
    refused(
        &Tar::default()
            .h(H::new(b"f", b'0', 0).put(100, b"0064x\0\0\0"))
            .end(),
        "mode",
    );
    refused(
        &Tar::default()
            .h(H::new(b"f", b'0', 0).put(124, b"0 000000001\0"))
            .end(),
        "size",
    );
    // A checksum that does not match, or is not octal.
    let mut bad = Tar::default().file("f", b"x").end();
    bad[0] ^= 1;
    refused(&bad, "checksum");
    // Old GNU sparse header with a map entry that is not a number.
    refused(
        &Tar::default()
            .h(H::new(b"s", b'S', 0)
                .gnu()
                .put(386, b"0000000000x\0")
                .octal(483, 12, 10))
            .end(),
        "sparse",
    );
    // Devices' numbers are read for every ustar header, as Go reads them.
    refused(
        &Tar::default()
            .h(H::new(b"f", b'0', 0).put(329, b"zz\0"))
            .end(),
        "devmajor",
    );
}

/// invalid-go17.tar: a GNU header whose time fields hold a ustar prefix (Go's writer before
/// 1.8 wrote those) is read with that prefix.
#[test]
fn go_gnu_header_with_a_prefix_from_old_go() {
    let prefix = "a".repeat(99);
    let got = read(
        &Tar::default()
            .h(H::new(b"foo", b'0', 0)
                .gnu()
                .put(108, &[0x80, 0, 0, 0, 0, 0x20, 0, 0])
                .put(345, prefix.as_bytes()))
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), [format!("{prefix}/foo")]);
    assert_eq!(got[0].0.uid, 0o10000000);
    assert_eq!((got[0].0.atime, got[0].0.ctime), (None, None));
}

/// The 200-byte sparse file of sparse-formats.tar in each format, and gnu-/pax-nil-sparse-
/// data/hole.tar: the same content whatever the encoding.
#[test]
fn go_sparse_formats() {
    // 95 data bytes at the odd offsets 1..=189 of a 200-byte file.
    let segments: Vec<(u64, u64)> = (0..95).map(|i| (2 * i + 1, 1)).collect();
    let data: Vec<u8> = (0..95)
        .map(|i| if i % 2 == 0 { b'G' } else { b'o' })
        .collect();
    let mut want = vec![0u8; 200];
    for (i, &(off, _)) in segments.iter().enumerate() {
        want[off as usize] = data[i];
    }
    let map_01: Vec<u8> = segments
        .iter()
        .map(|(o, l)| format!("{o},{l}"))
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    let mut t = Tar::default();
    // Old GNU: four pairs in the header, the rest in extension blocks of 21.
    let field = |v: u64| format!("{v:011o}\0");
    let mut h = H::new(b"sparse-gnu", b'S', 95)
        .gnu()
        .octal(483, 12, 200)
        .put(482, &[1]);
    for (i, &(o, l)) in segments.iter().take(4).enumerate() {
        h = h
            .put(386 + 24 * i, field(o).as_bytes())
            .put(398 + 24 * i, field(l).as_bytes());
    }
    t.h(h);
    let rest: Vec<&(u64, u64)> = segments.iter().skip(4).collect();
    for (n, chunk) in rest.chunks(21).enumerate() {
        let mut b = [0u8; 512];
        for (i, &&(o, l)) in chunk.iter().enumerate() {
            b[24 * i..24 * i + 12].copy_from_slice(field(o).as_bytes());
            b[24 * i + 12..24 * i + 24].copy_from_slice(field(l).as_bytes());
        }
        b[504] = u8::from(n + 1 < rest.len().div_ceil(21));
        t.0.extend_from_slice(&b);
    }
    t.data(&data);
    // PAX 0.0: offset and numbytes records in turn.
    let mut records: Vec<u8> = [
        record(b"GNU.sparse.size", b"200"),
        record(b"GNU.sparse.numblocks", b"95"),
    ]
    .concat();
    for &(o, l) in &segments {
        records.extend(record(b"GNU.sparse.offset", o.to_string().as_bytes()));
        records.extend(record(b"GNU.sparse.numbytes", l.to_string().as_bytes()));
    }
    t.ext(b'x', &records).file("sparse-posix-0.0", &data);
    // PAX 0.1: one map record and the real name.
    t.pax(
        b'x',
        &[
            ("GNU.sparse.size", b"200"),
            ("GNU.sparse.numblocks", b"95"),
            ("GNU.sparse.map", &map_01),
            ("GNU.sparse.name", b"sparse-posix-0.1"),
        ],
    )
    .file("GNUSparseFile.1/sparse-posix-0.1", &data);
    // PAX 1.0: the map starts the data, in decimal lines padded to a block.
    let mut body = format!("{}\n", segments.len());
    for (o, l) in &segments {
        body += &format!("{o}\n{l}\n");
    }
    let mut body = body.into_bytes();
    body.resize(body.len().div_ceil(512) * 512, 0);
    body.extend_from_slice(&data);
    t.pax(
        b'x',
        &[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.realsize", b"200"),
            ("GNU.sparse.name", b"sparse-posix-1.0"),
        ],
    )
    .file("GNUSparseFile.1/sparse-posix-1.0", &body);
    t.file("end", b"end\n");
    // gnu-nil-sparse-data/-hole: one segment of all the data, or none at all.
    t.h(H::new(b"gnu-nil-data", b'S', 1000)
        .gnu()
        .octal(483, 12, 1000)
        .put(386, field(0).as_bytes())
        .put(398, field(1000).as_bytes()))
        .data(&[b'x'; 1000]);
    t.h(H::new(b"gnu-nil-hole", b'S', 0)
        .gnu()
        .octal(483, 12, 1000)
        .put(386, field(1000).as_bytes())
        .put(398, field(0).as_bytes()));
    let nil = |map: &str| {
        let mut b = map.as_bytes().to_vec();
        b.resize(512, 0);
        b
    };
    let sparse10 = [
        ("GNU.sparse.major", &b"1"[..]),
        ("GNU.sparse.minor", b"0"),
        ("GNU.sparse.realsize", b"1000"),
    ];
    t.pax(
        b'x',
        &[
            sparse10[0],
            sparse10[1],
            sparse10[2],
            ("GNU.sparse.name", b"pax-nil-data"),
        ],
    )
    .file(
        "GNUSparseFile.0/x",
        &[nil("1\n0\n1000\n"), vec![b'x'; 1000]].concat(),
    );
    t.pax(
        b'x',
        &[
            sparse10[0],
            sparse10[1],
            sparse10[2],
            ("GNU.sparse.name", b"pax-nil-hole"),
        ],
    )
    .file("GNUSparseFile.0/y", &nil("1\n1000\n0\n"));
    let got = read(&t.end()).unwrap();
    assert_eq!(
        names(&got),
        [
            "sparse-gnu",
            "sparse-posix-0.0",
            "sparse-posix-0.1",
            "sparse-posix-1.0",
            "end",
            "gnu-nil-data",
            "gnu-nil-hole",
            "pax-nil-data",
            "pax-nil-hole"
        ]
    );
    for (e, c) in &got[..4] {
        assert_eq!(e.size, 200);
        assert_eq!(e.sparse.as_deref(), Some(&segments[..]));
        assert_eq!(c, &want, "{}", String::from_utf8_lossy(&e.path));
    }
    assert_eq!(got[4].1, b"end\n");
    for (i, (e, c)) in got[5..].iter().enumerate() {
        assert_eq!(e.size, 1000);
        let fill = if i % 2 == 0 { b'x' } else { 0 };
        assert!(c.iter().all(|&b| b == fill) && c.len() == 1000);
    }
}

/// `readGNUSparsePAXHeaders`' vectors: 0.x maps need `numblocks` pairs of numbers; 1.0 maps
/// are decimal lines (leading zeros allowed), and a map that never ends is refused.
#[test]
fn go_sparse_map_forms() {
    let sparse01 = |numblocks: &[u8], map: &[u8], data: &[u8]| {
        Tar::default()
            .pax(
                b'x',
                &[
                    ("GNU.sparse.size", b"100"),
                    ("GNU.sparse.numblocks", numblocks),
                    ("GNU.sparse.map", map),
                ],
            )
            .file("s", data)
            .end()
    };
    assert_eq!(
        read(&sparse01(b"2", b"0,1,02,3", b"abcd")).unwrap()[0]
            .0
            .sparse,
        Some(vec![(0, 1), (2, 3)])
    );
    refused(&sparse01(b"4", b"0,1,2,3", b"abcd"), "numblocks");
    refused(&sparse01(b"2", b"0, 1,2,3", b"abcd"), "not a number");
    refused(&sparse01(b"2", b"0,one1,2,3", b"abcd"), "not a number");
    refused(
        &sparse01(b"9223372036854775807", b"0,1,2,3", b"abcd"),
        "numblocks",
    );
    // Without numblocks.
    refused(
        &Tar::default()
            .pax(
                b'x',
                &[("GNU.sparse.size", b"100"), ("GNU.sparse.map", b"0,1")],
            )
            .file("s", b"a")
            .end(),
        "numblocks",
    );
    // 0.0 pairs out of order.
    refused(
        &Tar::default()
            .pax(
                b'x',
                &[
                    ("GNU.sparse.numblocks", b"1"),
                    ("GNU.sparse.numbytes", b"2"),
                    ("GNU.sparse.offset", b"1"),
                ],
            )
            .file("s", b"ab")
            .end(),
        "out of order",
    );
    let sparse10 = |map: &[u8], data: &[u8]| {
        let mut body = map.to_vec();
        body.resize(body.len().div_ceil(512).max(1) * 512, 0);
        body.extend_from_slice(data);
        Tar::default()
            .pax(
                b'x',
                &[
                    ("GNU.sparse.major", b"1"),
                    ("GNU.sparse.minor", b"0"),
                    ("GNU.sparse.realsize", b"100"),
                ],
            )
            .file("s", &body)
            .end()
    };
    assert_eq!(
        read(&sparse10(b"0\n", b"")).unwrap()[0].0.sparse,
        Some(vec![])
    );
    assert_eq!(
        read(&sparse10(b"1\n2\n3\n", b"abc")).unwrap()[0].0.sparse,
        Some(vec![(2, 3)])
    );
    let zeros = format!(
        "{}1\n{}5\n{}2\n",
        "0".repeat(300),
        "0".repeat(1000),
        "0".repeat(800)
    );
    assert_eq!(
        read(&sparse10(zeros.as_bytes(), b"ab")).unwrap()[0]
            .0
            .sparse,
        Some(vec![(5, 2)])
    );
    refused(&sparse10(b"ab\n", b""), "not a number");
    refused(&sparse10(b"1\n2\n\n", b""), "not a number");
    refused(
        &sparse10(&[&[0u8; 512][..], b"0\n"].concat(), b""),
        "not a number",
    );
    refused(&sparse10(b"1\n2\n", b""), "sparse map");
    // A segment past the real size, segments that overlap.
    refused(&sparse01(b"1", b"99,2", b"ab"), "pass the file size");
    refused(&sparse01(b"2", b"0,2,1,2", b"abcd"), "overlap");
    // Old GNU sparse maps are GNU headers only.
    refused(
        &Tar::default()
            .h(H::new(b"s", b'S', 0).octal(483, 12, 10))
            .end(),
        "not GNU",
    );
}

/// hdr-only.tar: header-only types take no data, whatever their size says; trailing-slash.tar:
/// a long PAX path ending in `/` on a directory.
#[test]
fn go_header_only_types_and_trailing_slash() {
    let mut t = Tar::default();
    for (name, tf) in [
        ("dir", b'5'),
        ("sym", b'2'),
        ("hard", b'1'),
        ("chr", b'3'),
        ("blk", b'4'),
        ("fifo", b'6'),
    ] {
        let h = H::new(name.as_bytes(), tf, 0).link(b"file");
        t.h(h.clone());
        t.h(h.octal(124, 12, 1 << 20));
    }
    let path = "123456789/".repeat(30);
    t.pax(b'x', &[("path", path.as_bytes())])
        .h(H::new(b"1234", b'5', 0));
    let got = read(&t.end()).unwrap();
    assert_eq!(got.len(), 13);
    for (e, c) in &got {
        assert_eq!((e.data_size, e.size, c.len()), (0, 0, 0));
    }
    assert_eq!(got[12].0.path, path.as_bytes());
    assert_eq!(got[12].0.kind, EntryKind::Dir);
}

/// `TestReadTruncation`'s vectors: where an archive may end, and where it may not.
#[test]
fn go_truncation() {
    let gnu = |t: &mut Tar| {
        t.h(H::new(b"small.txt", b'0', 5).gnu()).data(b"Kilts");
        t.h(H::new(b"small2.txt", b'0', 11).gnu())
            .data(b"Google.com\n");
        t.end()
    };
    let data = gnu(&mut Tar::default());
    let count = |d: &[u8]| read(d).map(|e| e.len());
    assert_eq!(count(b"").unwrap(), 0);
    assert!(count(&data[..511]).is_err());
    assert!(count(&data[..512]).is_err());
    assert_eq!(count(&data[..1024]).unwrap(), 1);
    assert!(count(&data[..1536]).is_err());
    assert_eq!(count(&data[..2048]).unwrap(), 2);
    assert_eq!(count(&data).unwrap(), 2);
    // Cut in the data, at its end, inside the padding.
    let one = Tar::default().file("f", &[1; 300]).end();
    assert!(count(&one[..512 + 299]).is_err());
    assert_eq!(count(&one[..512 + 300]).unwrap(), 1);
    assert_eq!(count(&one[..1000]).unwrap(), 1);
    // One zero block, then part of a header or a header.
    let trash = b"garbage ".repeat(64);
    assert_eq!(count(&one[..1536]).unwrap(), 1);
    assert!(count(&[&one[..1536], &trash[..1]].concat()).is_err());
    assert!(count(&[&one[..1536], &trash[..]].concat()).is_err());
    // Anything after the two zero blocks is not read.
    assert_eq!(count(&[&one[..2048], &trash[..]].concat()).unwrap(), 1);
    // pax-path-hdr.tar: a PAX header alone is an empty archive; a partial block after it is not.
    let pax = Tar::default()
        .pax(b'x', &[("path", b"a/long/path")])
        .bytes();
    assert_eq!(count(&pax).unwrap(), 0);
    assert!(count(&[&pax[..], &trash[..1]].concat()).is_err());
    assert!(count(&[&pax[..], &trash[..511]].concat()).is_err());
}

// ---------------------------------------------------------------------------------------------
// The cases where readers part, one at a time.

/// A directory, symlink, hard link, device or fifo header whose size is not zero takes no data:
/// the next header follows. Blocks that another reader takes as data are entries here, as in
/// Go, GNU tar and bsdtar.
#[test]
fn header_only_types_never_consume_data() {
    for (tf, kind) in [
        (b'5', EntryKind::Dir),
        (b'2', EntryKind::Symlink),
        (b'1', EntryKind::HardLink),
        (b'3', EntryKind::CharDevice),
        (b'4', EntryKind::BlockDevice),
        (b'6', EntryKind::Fifo),
    ] {
        let smuggled = Tar::default().file("smuggled", b"bad").bytes();
        // Its size field covers the smuggled entry; a PAX size says more still.
        let t = Tar::default()
            .file("target", b"t")
            .h(H::new(b"first", tf, smuggled.len() as u64).link(b"target"))
            .raw_then(&smuggled)
            .pax(b'x', &[("size", b"4096")])
            .h(H::new(b"second", tf, 0).link(b"target"))
            .file("after", b"ok")
            .end();
        let got = read(&t).unwrap();
        assert_eq!(
            names(&got),
            ["target", "first", "smuggled", "second", "after"],
            "{}",
            tf as char
        );
        assert_eq!(got[1].0.kind, kind);
        assert_eq!(got[2].1, b"bad");
        assert_eq!(got[4].1, b"ok");
    }
}

/// A GNU long name wins over a PAX `path` in either order, and a long link over `linkpath`, as
/// Go reads them. (GNU tar takes the PAX name in both orders, bsdtar the later header's; Go is
/// what unpacks layers.)
#[test]
fn gnu_long_names_win_over_pax_paths() {
    let x = |t: &mut Tar| {
        t.pax(
            b'x',
            &[
                ("path", b"pax-name"),
                ("linkpath", b"pax-link"),
                ("uid", b"7"),
            ],
        );
    };
    let l = |t: &mut Tar| {
        t.long(b'L', b"gnu-name").long(b'K', b"gnu-link");
    };
    for order in 0..2 {
        let mut t = Tar::default();
        if order == 0 {
            x(&mut t);
            l(&mut t);
        } else {
            l(&mut t);
            x(&mut t);
        }
        let got = read(
            &t.h(H::new(b"hdr-name", b'2', 0).gnu().link(b"hdr-link"))
                .end(),
        )
        .unwrap();
        assert_eq!(names(&got), ["gnu-name"], "order {order}");
        assert_eq!(got[0].0.link_name, b"gnu-link");
        assert_eq!(
            got[0].0.uid, 7,
            "the PAX header's other records still apply"
        );
    }
    // An empty long name leaves the PAX path (or the header's name).
    let got = read(
        &Tar::default()
            .pax(b'x', &[("path", b"pax-name")])
            .long(b'L', b"\0")
            .file("hdr", b"")
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["pax-name"]);
}

/// Of consecutive PAX headers, the last alone applies: records of the earlier ones are dropped,
/// not merged (GNU tar reads it the same way).
#[test]
fn consecutive_pax_headers_last_wins() {
    let got = read(
        &Tar::default()
            .pax(
                b'x',
                &[
                    ("path", b"first"),
                    ("uid", b"7"),
                    ("SCHILY.xattr.user.a", b"1"),
                ],
            )
            .pax(b'x', &[("mtime", b"5.5"), ("SCHILY.xattr.user.b", b"2")])
            .h(H::new(b"hdrname", b'0', 0).owner(3, 4))
            .end(),
    )
    .unwrap();
    let e = &got[0].0;
    assert_eq!(e.path, b"hdrname");
    assert_eq!((e.uid, e.gid, e.mtime), (3, 4, ts(5, 500_000_000)));
    assert_eq!(e.xattrs.len(), 1);
    assert_eq!(e.xattrs[0].name, b"user.b");
    // An invalid record in a header that a later one replaces is not read (Go parses each
    // header's records but applies the last header's only).
    let got = read(
        &Tar::default()
            .pax(b'x', &[("uid", b"abc")])
            .pax(b'x', &[("gid", b"2")])
            .file("f", b"")
            .end(),
    )
    .unwrap();
    assert_eq!(got[0].0.gid, 2);
    // One xattr named twice in one header takes its last value.
    let got = read(
        &Tar::default()
            .pax(
                b'x',
                &[
                    ("SCHILY.xattr.user.a", b"1"),
                    ("LIBARCHIVE.xattr.user.a", b"Mg"),
                    ("SCHILY.xattr.user.a", b"3"),
                ],
            )
            .file("f", b"")
            .end(),
    )
    .unwrap();
    assert_eq!(got[0].0.xattrs.len(), 1);
    assert_eq!(got[0].0.xattrs[0].value, b"3");
}

/// Symlinks get mode 0777 whatever the header says, as the kernel and every unpacker create
/// them.
#[test]
fn symlinks_get_mode_0777() {
    let got = read(
        &Tar::default()
            .h(H::new(b"l", b'2', 0).mode(0o644).link(b"t"))
            .end(),
    )
    .unwrap();
    assert_eq!(got[0].0.mode & 0o7777, 0o777);
}

/// An archive of extended headers only, ending with or without zero blocks, is empty.
#[test]
fn only_extended_headers_is_empty() {
    let archives: Vec<Vec<u8>> = vec![
        Tar::default().pax(b'g', &[("comment", b"x")]).end(),
        Tar::default().pax(b'g', &[("comment", b"x")]).bytes(),
        Tar::default().pax(b'x', &[("path", b"p")]).end(),
        Tar::default().pax(b'x', &[("path", b"p")]).bytes(),
        Tar::default()
            .pax(b'g', &[("comment", b"x")])
            .pax(b'x', &[("path", b"p")])
            .end(),
        Tar::default().long(b'L', b"name").end(),
        Tar::default().long(b'K', b"link").bytes(),
        // Cut inside the padding of the PAX header: Go reads that as the end too.
        Tar::default().pax(b'x', &[("path", b"p")]).bytes()[..530].to_vec(),
    ];
    for (i, a) in archives.iter().enumerate() {
        assert_eq!(read(a).unwrap().len(), 0, "archive {i}");
    }
    // Cut inside the PAX header's data: an error.
    refused(
        &Tar::default().pax(b'x', &[("path", b"p")]).bytes()[..514],
        "ends inside",
    );
}

/// A type-`\0` entry whose name ends in `/` is a directory (with no data); a type-`0` entry
/// keeps its name, trailing slash and all, and its data, as Go reads it.
#[test]
fn trailing_slashes() {
    let got = read(
        &Tar::default()
            .h(H::new(b"old-dir/", b'\0', 3))
            .h(H::new(b"file/", b'0', 3))
            .data(b"abc")
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["old-dir/", "file/"]);
    assert_eq!((got[0].0.kind, got[0].0.data_size), (EntryKind::Dir, 0));
    assert_eq!(
        (got[1].0.kind, &got[1].1[..]),
        (EntryKind::File, &b"abc"[..])
    );
}

/// Go's tolerances in numbers: octal fields padded with spaces or NULs on either side and
/// anything after a NUL ignored, checksums of signed bytes, base-256.
#[test]
fn number_tolerances() {
    let mut h = H::new(b"f", b'0', 0)
        .put(100, b"  644 \0\0")
        .put(108, b"7\0junk\0\0")
        .put(116, &[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]);
    h.0[200] = 0xE9; // a byte that differs between signed and unsigned sums
    let mut b = h.block();
    let signed: i32 = b
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                i32::from(x as i8)
            }
        })
        .sum();
    b[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
    let mut data = b.to_vec();
    data.extend_from_slice(&[0; 1024]);
    let got = read(&data).unwrap();
    assert_eq!(
        (got[0].0.mode & 0o7777, got[0].0.uid, got[0].0.gid),
        (0o644, 7, 256)
    );
}

/// Where Go refuses and GNU tar and bsdtar part ways, the archive is refused: NUL padding
/// after the records of a PAX header (GNU tar reads its path, bsdtar drops the header with an
/// error exit). Where both tools agree with each other but not with Go, Go wins: a zero block
/// followed by a header (both stop at the zero block and read no further; Go refuses, so
/// would containerd, and entries behind the block would hide from one reader and not another).
#[test]
fn refused_where_go_refuses() {
    let mut body = record(b"path", b"paxname");
    body.extend_from_slice(&[0; 10]);
    let padded = Tar::default()
        .ext(b'x', &body)
        .h(H::new(b"hdrname", b'0', 3))
        .data(b"abc")
        .end();
    refused(&padded, "PAX record");
    let mut zero_then = Tar::default().file("a", b"abc").bytes();
    zero_then.extend_from_slice(&[0; 512]);
    zero_then.extend(Tar::default().file("b", b"xyz").end());
    refused(&zero_then, "zero block is followed by a header");
    // What the tools say, where they are installed.
    let dir = scratch();
    for (name, archive, want) in [
        ("padded", &padded, ["paxname", "hdrname"]),
        ("zero-then", &zero_then, ["a", "a"]),
    ] {
        let p = dir.path().join(format!("{name}.tar"));
        fs::write(&p, archive).unwrap();
        for (tool, want) in [("tar", want[0]), ("bsdtar", want[1])] {
            match Command::new(tool).arg("-tf").arg(&p).output() {
                Ok(out) => {
                    let listed = String::from_utf8_lossy(&out.stdout);
                    assert_eq!(
                        listed.lines().collect::<Vec<_>>(),
                        [want],
                        "{tool} on {name}"
                    );
                }
                Err(e) => skip(&format!("{tool} -tf {name}"), &e.to_string()),
            }
        }
    }
}

/// A GNU volume header is an entry of its own to Go, skipped by unpackers: the extended
/// headers before it apply to nothing, and its data is skipped.
#[test]
fn volume_headers_end_extended_headers() {
    let got = read(
        &Tar::default()
            .pax(b'x', &[("path", b"lost")])
            .h(H::new(b"volume", b'V', 5).gnu())
            .data(b"label")
            .file("f", b"data")
            .end(),
    )
    .unwrap();
    assert_eq!(names(&got), ["f"]);
    assert_eq!(got[0].1, b"data");
}

/// Refused where Go reads: types no image can hold, sparse versions not known, ids that do not
/// fit.
#[test]
fn refused_beyond_go() {
    let kind = |data: Vec<u8>| read(&data).map(|_| ()).unwrap_err().kind();
    assert_eq!(
        kind(Tar::default().h(H::new(b"z", b'Z', 0)).end()),
        ErrorKind::Unsupported
    );
    assert_eq!(
        kind(
            Tar::default()
                .pax(
                    b'x',
                    &[("GNU.sparse.major", b"2"), ("GNU.sparse.minor", b"0")]
                )
                .file("s", b"")
                .end()
        ),
        ErrorKind::Unsupported
    );
    for uid in [&b"4294967296"[..], b"-1"] {
        assert_eq!(
            kind(
                Tar::default()
                    .pax(b'x', &[("uid", uid)])
                    .file("f", b"")
                    .end()
            ),
            ErrorKind::CorruptInput
        );
    }
}
