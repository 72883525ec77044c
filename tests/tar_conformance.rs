//! The tar reader reads archives as Go's `archive/tar` does (containerd, Docker, umoci and crane
//! unpack layers with it); the reader itself is held to Go's expectations, archive by archive,
//! by the crate's own tests (`src/tar/conformance.rs`). Here the cases where readers differ go
//! through whole builds, judged by e2fsck and a kernel mount: the image holds what Go reads.

mod common;

use std::fs;
use std::process::Command;

use common::layers::{build_layers as build, expected, Op};
use common::model::Kind;
use common::raw_tar::{Tar, H};
use common::tars::Attrs;
use common::{check_image, scratch, Check};
use sha2::{Digest, Sha256};

const NO_RW: Check = Check { read_write: false };

fn file_op(path: &str, a: Attrs, content: &[u8]) -> Op {
    let kind = Kind::File {
        size: content.len() as u64,
        sha256: Sha256::digest(content).into(),
    };
    Op::Put(path.into(), a.to_node(kind))
}

/// The smuggling case end to end: every header-only type with a size that covers a whole
/// entry, and a directory whose PAX size does; the image holds the entries that follow them.
#[test]
fn build_header_only_types_with_sizes() {
    let dir = scratch();
    let smuggled = |name: &str| Tar::default().file(name, b"hidden").bytes();
    let mut t = Tar::default();
    t.file("target", b"t");
    let mut ops = vec![file_op("target", Attrs::new(0o644), b"t")];
    for (name, tf) in [
        ("d", b'5'),
        ("sym", b'2'),
        ("hard", b'1'),
        ("chr", b'3'),
        ("blk", b'4'),
        ("fifo", b'6'),
    ] {
        let inner = smuggled(&format!("after-{name}"));
        t.h(H::new(name.as_bytes(), tf, inner.len() as u64)
            .link(b"target")
            .dev(1, 3)
            .mode(0o640))
            .raw_then(&inner);
        let a = Attrs::new(0o640);
        ops.push(match tf {
            b'5' => Op::Put(name.into(), a.to_node(Kind::Dir)),
            b'2' => Op::Put(
                name.into(),
                Attrs::new(0o777).to_node(Kind::Symlink(b"target".to_vec())),
            ),
            b'1' => Op::Link(name.into(), b"target".to_vec()),
            b'3' => Op::Put(name.into(), a.to_node(Kind::Char(1, 3))),
            b'4' => Op::Put(name.into(), a.to_node(Kind::Block(1, 3))),
            _ => Op::Put(name.into(), a.to_node(Kind::Fifo)),
        });
        ops.push(file_op(
            &format!("after-{name}"),
            Attrs::new(0o644),
            b"hidden",
        ));
    }
    let inner = smuggled("after-pax-dir");
    t.pax(b'x', &[("size", inner.len().to_string().as_bytes())])
        .h(H::new(b"pax-dir", b'5', 0).mode(0o755))
        .raw_then(&inner);
    ops.push(Op::Put(
        "pax-dir".into(),
        Attrs::new(0o755).to_node(Kind::Dir),
    ));
    ops.push(file_op("after-pax-dir", Attrs::new(0o644), b"hidden"));
    let image = build(&dir, "header-only", &[t.end()]).unwrap();
    check_image(&image, &expected(&[ops]), NO_RW);
}

/// Names and fields as Go gives them, end to end: GNU long names over PAX paths, the last of
/// consecutive PAX headers, a long name cut at its NUL, symlinks at 0777, a layer of extended
/// headers only, and global headers between a PAX header and its entry.
#[test]
fn build_names_and_fields_as_go_reads_them() {
    let dir = scratch();
    let mut t = Tar::default();
    t.pax(b'x', &[("path", b"pax-path"), ("mtime", b"1700000001.5")])
        .long(b'L', b"gnu-name")
        .h(H::new(b"hdr-name", b'0', 2).gnu())
        .data(b"g1");
    t.pax(b'x', &[("path", b"dropped"), ("uid", b"5")])
        .pax(b'x', &[("SCHILY.xattr.user.kept", b"v")])
        .h(H::new(b"last-pax-wins", b'0', 2).owner(1, 2))
        .data(b"p2");
    t.long(b'L', b"cut-at-nul\0rest")
        .h(H::new(b"x", b'0', 0).gnu());
    t.h(H::new(b"link", b'2', 0).mode(0o600).link(b"gnu-name"));
    t.pax(b'x', &[("path", b"lost")])
        .pax(b'g', &[("comment", b"global")])
        .file("after-global", b"g");
    t.h(H::new(b"old-style-dir/", b'\0', 0).mode(0o750));
    t.h(H::new(b"file-with-slash/", b'0', 4)).data(b"data");
    let layer1 = t.end();
    let layer2 = Tar::default()
        .pax(b'g', &[("comment", b"only")])
        .pax(b'x', &[("path", b"p")])
        .end();
    let image = build(&dir, "names", &[layer1, layer2]).unwrap();
    let ops = vec![
        file_op(
            "gnu-name",
            Attrs::new(0o644).mtime(1_700_000_001, 500_000_000),
            b"g1",
        ),
        file_op(
            "last-pax-wins",
            Attrs::new(0o644).owner(1, 2).xattr(b"user.kept", b"v"),
            b"p2",
        ),
        file_op("cut-at-nul", Attrs::new(0o644), b""),
        Op::Put(
            "link".into(),
            Attrs::new(0o777).to_node(Kind::Symlink(b"gnu-name".to_vec())),
        ),
        file_op("after-global", Attrs::new(0o644), b"g"),
        Op::Put("old-style-dir".into(), Attrs::new(0o750).to_node(Kind::Dir)),
        file_op("file-with-slash", Attrs::new(0o644), b"data"),
    ];
    check_image(&image, &expected(&[ops, Vec::new()]), NO_RW);
}

/// Through the command line: a root filesystem tar with a smuggled entry builds what Go reads;
/// one Go refuses fails with exit 3, naming the problem, and leaves no image.
#[test]
fn cli_reads_as_go_and_refuses_as_go() {
    let dir = scratch();
    let inner = Tar::default().file("etc/smuggled", b"x").bytes();
    let t = Tar::default()
        .h(H::new(b"etc/", b'5', inner.len() as u64).mode(0o755))
        .raw_then(&inner)
        .end();
    let src = dir.path().join("rootfs.tar");
    fs::write(&src, &t).unwrap();
    let out = dir.path().join("rootfs.ext4");
    let run = Command::new(common::bin())
        .args(["build", "--quiet"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let ops = vec![
        Op::Put("etc".into(), Attrs::new(0o755).to_node(Kind::Dir)),
        file_op("etc/smuggled", Attrs::new(0o644), b"x"),
    ];
    check_image(&out, &expected(&[ops]), NO_RW);

    let bad = Tar::default()
        .pax(b'x', &[("path", b"a\0b")])
        .file("f", b"")
        .end();
    let src = dir.path().join("bad.tar");
    fs::write(&src, &bad).unwrap();
    let out = dir.path().join("bad.ext4");
    let run = Command::new(common::bin())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("NUL"));
    assert!(!out.exists());
}
