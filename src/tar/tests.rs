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
