//! Tests of the tar reader against archives written by the `tar` crate and by hand.

use super::*;

fn header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(1000);
    h.set_gid(100);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

/// Entries with their data, and the warnings.
type ReadAll = (Vec<(Entry, Vec<u8>)>, Vec<String>);

fn read_all(data: &[u8]) -> Result<ReadAll> {
    let mut r = TarReader::new(data);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry()? {
        let mut buf = Vec::new();
        r.data().read_to_end(&mut buf)?;
        out.push((e, buf));
    }
    Ok((out, r.take_warnings()))
}

#[test]
fn reads_common_entry_types() {
    let data = archive(|b| {
        b.append(&header("dir/", tar::EntryType::Directory, 0), &[][..])
            .unwrap();
        b.append(
            &header("dir/file", tar::EntryType::Regular, 5),
            &b"hello"[..],
        )
        .unwrap();
        let mut l = header("dir/link", tar::EntryType::Symlink, 0);
        l.set_link_name("file").unwrap();
        l.set_cksum();
        b.append(&l, &[][..]).unwrap();
        let mut h = header("dir/hard", tar::EntryType::Link, 0);
        h.set_link_name("dir/file").unwrap();
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let mut c = header("dev/null", tar::EntryType::Char, 0);
        c.set_device_major(1).unwrap();
        c.set_device_minor(3).unwrap();
        c.set_cksum();
        b.append(&c, &[][..]).unwrap();
    });
    let (entries, warnings) = read_all(&data).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let kinds: Vec<EntryKind> = entries.iter().map(|(e, _)| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EntryKind::Dir,
            EntryKind::File,
            EntryKind::Symlink,
            EntryKind::HardLink,
            EntryKind::CharDevice
        ]
    );
    let (file, body) = &entries[1];
    assert_eq!(body, b"hello");
    assert_eq!((file.uid, file.gid, file.mode & 0o7777), (1000, 100, 0o644));
    assert_eq!(file.mtime, Timestamp::from_secs(1_700_000_000));
    assert_eq!(entries[2].0.link_name, b"file");
    assert_eq!(entries[3].0.link_name, b"dir/file");
    assert_eq!((entries[4].0.dev_major, entries[4].0.dev_minor), (1, 3));
}

#[test]
fn long_names_gnu_and_pax() {
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(200));
    let data = archive(|b| {
        // The tar crate writes a GNU long-name entry for this.
        b.append_data(
            &mut header("x", tar::EntryType::Regular, 2),
            &long,
            &b"ab"[..],
        )
        .unwrap();
        b.append_pax_extensions([("path", long.as_bytes()), ("mtime", b"1.5".as_slice())])
            .unwrap();
        b.append(&header("short", tar::EntryType::Regular, 1), &b"c"[..])
            .unwrap();
    });
    let (entries, _) = read_all(&data).unwrap();
    assert_eq!(entries[0].0.path, long.as_bytes());
    assert_eq!(entries[1].0.path, long.as_bytes());
    assert_eq!(
        entries[1].0.mtime,
        Timestamp {
            sec: 1,
            nsec: 500_000_000
        }
    );
    assert_eq!(entries[1].1, b"c");
}

#[test]
fn pax_overrides_ids_times_and_xattrs() {
    let data = archive(|b| {
        b.append_pax_extensions([
            ("uid", b"4294967294".as_slice()),
            ("gid", b"65534".as_slice()),
            ("atime", b"1700000001.000000001".as_slice()),
            ("ctime", b"1700000002.5".as_slice()),
            (
                "SCHILY.xattr.security.capability",
                &[1u8, 0, 0, 2, 0xFF][..],
            ),
        ])
        .unwrap();
        b.append(&header("f", tar::EntryType::Regular, 0), &[][..])
            .unwrap();
    });
    let (entries, _) = read_all(&data).unwrap();
    let e = &entries[0].0;
    assert_eq!((e.uid, e.gid), (4_294_967_294, 65534));
    assert_eq!(
        e.atime,
        Some(Timestamp {
            sec: 1_700_000_001,
            nsec: 1
        })
    );
    assert_eq!(
        e.ctime,
        Some(Timestamp {
            sec: 1_700_000_002,
            nsec: 500_000_000
        })
    );
    assert_eq!(
        e.xattrs,
        vec![Xattr {
            name: b"security.capability".to_vec(),
            value: vec![1, 0, 0, 2, 0xFF]
        }]
    );
}

#[test]
fn missing_end_blocks_are_tolerated() {
    let mut data = archive(|b| {
        b.append(&header("f", tar::EntryType::Regular, 3), &b"abc"[..])
            .unwrap()
    });
    data.truncate(1024); // header + one data block, no end-of-archive blocks
    let (entries, warnings) = read_all(&data).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn padding_cut_short_is_tolerated() {
    let mut data = archive(|b| {
        b.append(&header("f", tar::EntryType::Regular, 3), &b"abc"[..])
            .unwrap()
    });
    data.truncate(512 + 100);
    let (entries, warnings) = read_all(&data).unwrap();
    assert_eq!(entries[0].1, b"abc");
    assert!(warnings[0].contains("padding"), "{warnings:?}");
}

#[test]
fn one_end_block_is_tolerated() {
    let mut data = archive(|b| {
        b.append(&header("f", tar::EntryType::Regular, 3), &b"abc"[..])
            .unwrap()
    });
    data.truncate(1024 + 512);
    let (entries, _) = read_all(&data).unwrap();
    assert_eq!(entries.len(), 1);
}

#[test]
fn data_cut_short_is_an_error() {
    let mut data = archive(|b| {
        b.append(
            &header("f", tar::EntryType::Regular, 1000),
            &[7u8; 1000][..],
        )
        .unwrap()
    });
    data.truncate(512 + 600);
    let err = read_all(&data).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::CorruptInput);
    assert!(
        err.to_string().contains("before the end of the entry"),
        "{err}"
    );
}

#[test]
fn unread_data_is_skipped_and_truncation_found() {
    let mut data = archive(|b| {
        b.append(
            &header("a", tar::EntryType::Regular, 1000),
            &[7u8; 1000][..],
        )
        .unwrap();
        b.append(&header("b", tar::EntryType::Regular, 1), &b"z"[..])
            .unwrap();
    });
    let mut r = TarReader::new(&data[..]);
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"a");
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"b");
    data.truncate(512 + 700);
    let mut r = TarReader::new(&data[..]);
    r.next_entry().unwrap();
    assert!(r.next_entry().is_err());
}

#[test]
fn bad_checksum_and_garbage_are_errors() {
    let mut data = archive(|b| {
        b.append(&header("f", tar::EntryType::Regular, 0), &[][..])
            .unwrap()
    });
    data[0] ^= 1;
    let err = read_all(&data).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    let err = read_all(&[0x42u8; 700]).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::CorruptInput);
    let err = read_all(&[0x42u8; 300]).unwrap_err();
    assert!(err.to_string().contains("inside a header"), "{err}");
}

#[test]
fn empty_input_is_an_empty_archive() {
    let (entries, _) = read_all(&[]).unwrap();
    assert!(entries.is_empty());
    let (entries, warnings) = read_all(&[0u8; 1024]).unwrap();
    assert!(entries.is_empty() && warnings.is_empty());
}

/// A PAX 1.0 sparse entry written by hand: map "2\n0\n5\n8192\n3\n" then 8 data bytes.
#[test]
fn pax_sparse_1_0() {
    let mut map = b"2\n0\n5\n8192\n3\n".to_vec();
    map.resize(512, 0);
    let mut body = map.clone();
    body.extend_from_slice(b"hello");
    body.extend_from_slice(b"xyz");
    let data = archive(|b| {
        b.append_pax_extensions([
            ("GNU.sparse.major", b"1".as_slice()),
            ("GNU.sparse.minor", b"0".as_slice()),
            ("GNU.sparse.name", b"sparse.bin".as_slice()),
            ("GNU.sparse.realsize", b"10000".as_slice()),
        ])
        .unwrap();
        b.append(
            &header(
                "GNUSparseFile.0/sparse.bin",
                tar::EntryType::Regular,
                body.len() as u64,
            ),
            &body[..],
        )
        .unwrap();
    });
    let (entries, _) = read_all(&data).unwrap();
    let (e, d) = &entries[0];
    assert_eq!(e.path, b"sparse.bin");
    assert_eq!(e.size, 10000);
    assert_eq!(e.sparse, Some(vec![(0, 5), (8192, 3)]));
    assert_eq!(d, b"helloxyz");
}

#[test]
fn sparse_maps_are_validated() {
    let data = archive(|b| {
        b.append_pax_extensions([
            ("GNU.sparse.map", b"0,5,2,3".as_slice()),
            ("GNU.sparse.numblocks", b"2".as_slice()),
            ("GNU.sparse.size", b"100".as_slice()),
        ])
        .unwrap();
        b.append(&header("s", tar::EntryType::Regular, 8), &[1u8; 8][..])
            .unwrap();
    });
    assert!(read_all(&data).is_err(), "overlapping segments");
}

#[test]
fn pax_global_headers_are_ignored() {
    let data = archive(|b| {
        let mut g = tar::Header::new_ustar();
        g.set_path("pax_global_header").unwrap();
        g.set_entry_type(tar::EntryType::XGlobalHeader);
        let records = b"30 mtime=1000000000.123456789\n";
        g.set_size(records.len() as u64);
        g.set_cksum();
        b.append(&g, &records[..]).unwrap();
        b.append(&header("f", tar::EntryType::Regular, 1), &b"x"[..])
            .unwrap();
    });
    let (entries, _) = read_all(&data).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0.path, b"f");
    assert_eq!(entries[0].0.mtime, Timestamp::from_secs(1_700_000_000));
}

// Memory bounded by what is kept: each limit is an error naming the entry, and floods of what
// is not kept stay within the limits.

/// A header block written by hand (ustar, or GNU when `gnu`), with its checksum.
fn raw_header(name: &[u8], typeflag: u8, size: u64, gnu: bool) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name);
    b[100..108].copy_from_slice(b"0000644\0");
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = typeflag;
    b[257..265].copy_from_slice(if gnu { b"ustar  \0" } else { b"ustar\x0000" });
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

fn padded(mut d: Vec<u8>) -> Vec<u8> {
    d.resize(d.len().div_ceil(512) * 512, 0);
    d
}

/// One PAX record.
fn record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = [b" ", key, b"=", value, b"\n"].concat();
    let mut n = body.len() + 1;
    while n.to_string().len() + body.len() != n {
        n += 1;
    }
    [n.to_string().as_bytes(), &body].concat()
}

/// A stream made of `count` copies of `unit` between `head` and `tail`, produced as it is
/// read: the test itself never holds the whole stream.
struct Repeat {
    parts: Vec<Vec<u8>>,
    order: Vec<usize>,
    at: usize,
    off: usize,
}

impl Repeat {
    fn new(head: Vec<u8>, unit: Vec<u8>, count: usize, tail: Vec<u8>) -> Self {
        let mut order = vec![0];
        order.extend(std::iter::repeat_n(1, count));
        order.push(2);
        Repeat {
            parts: vec![head, unit, tail],
            order,
            at: 0,
            off: 0,
        }
    }
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at < self.order.len() {
            let part = &self.parts[self.order[self.at]];
            if self.off < part.len() {
                let n = buf.len().min(part.len() - self.off);
                buf[..n].copy_from_slice(&part[self.off..self.off + n]);
                self.off += n;
                return Ok(n);
            }
            self.at += 1;
            self.off = 0;
        }
        Ok(0)
    }
}

fn file_and_end(name: &[u8]) -> Vec<u8> {
    let mut t = raw_header(name, b'0', 0, false).to_vec();
    t.extend_from_slice(&[0; 1024]);
    t
}

/// The shape of the reported flood: PAX headers of ignored 1 MiB records before one entry.
/// Only the last header is kept and at most 32 may come before one entry, so 300 of them are
/// a limit error naming the entry, found after reading 32 MiB, not 300.
#[test]
fn pax_header_flood_before_one_entry_is_a_limit() {
    let rec = record(b"comment", &vec![b'c'; (1 << 20) - 20]);
    assert!(rec.len() <= 1 << 20);
    let mut unit = raw_header(b"PaxHeaders/f", b'x', rec.len() as u64, false).to_vec();
    unit.extend(padded(rec));
    let mut first = record(b"path", b"the/entry").to_vec();
    first = [
        raw_header(b"PaxHeaders/f", b'x', first.len() as u64, false).to_vec(),
        padded(first),
    ]
    .concat();
    let mut r = TarReader::new(Repeat::new(first, unit.clone(), 299, file_and_end(b"f")));
    let err = r.next_entry().unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded, "{err}");
    let text = err.to_string();
    assert!(text.contains("more than 32 extended headers"), "{text}");
    assert!(text.contains("the/entry"), "names the entry: {text}");
    assert!(
        r.position() <= 33 * (unit.len() as u64 + 512),
        "read on to {}",
        r.position()
    );
    // Below the limit, the entry reads, with the last header's records only.
    let mut r = TarReader::new(Repeat::new(Vec::new(), unit, 31, file_and_end(b"f")));
    let e = r.next_entry().unwrap().unwrap();
    assert_eq!(e.path, b"f");
    assert!(r.next_entry().unwrap().is_none());
}

/// Global headers are entries of their own to Go: a flood of them is read through, each
/// dropped as soon as it is read, and the warnings about their unknown records are capped and
/// counted, never holding the records' bytes.
#[test]
fn global_header_flood_keeps_nothing() {
    let key = vec![b'k'; 1 << 19];
    let rec = [record(&key, b"v"), record(b"other", b"v")].concat();
    let mut unit = raw_header(b"PaxHeaders/g", b'x', rec.len() as u64, false).to_vec();
    unit.extend(padded(rec.clone()));
    let mut g = raw_header(b"PaxHeaders/g", b'g', rec.len() as u64, false).to_vec();
    g.extend(padded(rec));
    // Each global header is followed by a PAX header of unknown records and a file.
    let unit = [g, unit, file_and_end(b"f")[..512].to_vec()].concat();
    let mut r = TarReader::new(Repeat::new(Vec::new(), unit, 100, vec![0; 1024]));
    let mut n = 0;
    while r.next_entry().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 100);
    let w = r.take_warnings();
    assert_eq!(w.len(), MAX_WARNINGS + 1, "{:?}", &w[w.len() - 1]);
    assert!(
        w.last().unwrap().contains("184 more tar warnings"),
        "{:?}",
        w.last()
    );
    assert!(w.iter().all(|w| w.len() < 200), "warnings hold input bytes");
}

#[test]
fn too_many_long_names_are_a_limit() {
    let mut unit = raw_header(b"././@LongLink", b'L', 4, true).to_vec();
    unit.extend(padded(b"name".to_vec()));
    let mut r = TarReader::new(Repeat::new(
        Vec::new(),
        unit.clone(),
        33,
        file_and_end(b"f"),
    ));
    let err = r.next_entry().unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded);
    assert!(err.to_string().contains("\"name\""), "{err}");
    let mut r = TarReader::new(Repeat::new(Vec::new(), unit, 32, file_and_end(b"f")));
    assert_eq!(r.next_entry().unwrap().unwrap().path, b"name");
}

fn one_pax_entry(records: &[u8], name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut t = raw_header(b"PaxHeaders/f", b'x', records.len() as u64, false).to_vec();
    t.extend(padded(records.to_vec()));
    t.extend(raw_header(name, b'0', data.len() as u64, false));
    t.extend(padded(data.to_vec()));
    t.extend_from_slice(&[0; 1024]);
    t
}

#[test]
fn xattr_floods_are_limits() {
    let many: Vec<u8> = (0..pax::MAX_XATTRS + 1)
        .flat_map(|i| record(format!("SCHILY.xattr.user.{i}").as_bytes(), b"v"))
        .collect();
    let err = read_all(&one_pax_entry(&many, b"many", b"")).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded);
    assert!(err.to_string().contains("many"), "{err}");
    let big = record(b"SCHILY.xattr.user.big", &vec![b'v'; pax::MAX_XATTR_BYTES]);
    let err = read_all(&one_pax_entry(&big, b"big", b"")).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded);
    // The same name again and again is one attribute, its last value.
    let same: Vec<u8> = (0..5000)
        .flat_map(|i| record(b"SCHILY.xattr.user.same", i.to_string().as_bytes()))
        .collect();
    let (entries, _) = read_all(&one_pax_entry(&same, b"same", b"")).unwrap();
    assert_eq!(entries[0].0.xattrs.len(), 1);
    assert_eq!(entries[0].0.xattrs[0].value, b"4999");
}

/// A PAX 1.0 sparse map whose newline never comes stops at the map limit, not at the end of
/// the data; its count is bounded too.
#[test]
fn sparse_1_0_maps_are_bounded() {
    let sparse = [
        record(b"GNU.sparse.major", b"1"),
        record(b"GNU.sparse.minor", b"0"),
        record(b"GNU.sparse.realsize", b"10"),
    ]
    .concat();
    let endless = vec![b'1'; 4 << 20];
    let err = read_all(&one_pax_entry(&sparse, b"endless", &endless)).unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded, "{err}");
    assert!(err.to_string().contains("endless"), "{err}");
    let err = read_all(&one_pax_entry(
        &sparse,
        b"count",
        &padded(b"99999999999\n".to_vec()),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded, "{err}");
    // Many small entries read in one pass.
    let n = 100_000;
    let mut map = format!("{n}\n");
    for i in 0..n {
        map += &format!("{}\n0\n", i * 2);
    }
    let sparse = [
        record(b"GNU.sparse.major", b"1"),
        record(b"GNU.sparse.minor", b"0"),
        record(b"GNU.sparse.realsize", b"1000000"),
    ]
    .concat();
    let (entries, _) =
        read_all(&one_pax_entry(&sparse, b"many", &padded(map.into_bytes()))).unwrap();
    assert_eq!(entries[0].0.sparse.as_ref().unwrap().len(), n);
}

/// Old GNU sparse extension blocks stop at the map limit (2048 blocks).
#[test]
fn old_gnu_sparse_extension_blocks_are_bounded() {
    let mut h = raw_header(b"s", b'S', 0, true);
    h[482] = 1;
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&x| u32::from(x)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut ext = [0u8; 512];
    ext[504] = 1;
    let mut r = TarReader::new(Repeat::new(h.to_vec(), ext.to_vec(), 5000, vec![0; 1024]));
    let err = r.next_entry().unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::LimitExceeded, "{err}");
    assert!(err.to_string().contains("entry \"s\""), "{err}");
    assert!(r.position() <= (2050 * 512) as u64);
}

#[test]
fn warnings_are_capped_and_counted() {
    let records: Vec<u8> = (0..100)
        .flat_map(|i| record(format!("X.unknown.{i}").as_bytes(), b"v"))
        .collect();
    let (_, warnings) = read_all(&one_pax_entry(&records, b"f", b"")).unwrap();
    assert_eq!(warnings.len(), MAX_WARNINGS + 1);
    assert_eq!(warnings[MAX_WARNINGS], "84 more tar warnings not shown");
}
