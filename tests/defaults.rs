//! What an image built with default options gives a guest: 4 KiB blocks (no per-entry limits
//! from small blocks), free space and free inodes to live with, directories that take new
//! names, an output file other users may read, and `-o` paths that cannot destroy anything.
//! Every image goes through e2fsck and, as root, a kernel mount compared with the input.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirEntryExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::tars::{Attrs, TarGen};
use common::{can_mount, check_image, dumpe2fs, e2fsck, scratch, skip, Check, Mounted, Rng};

/// Runs the command-line tool under `umask`; returns its exit status and stderr.
fn run_umask(umask: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask \"$1\"; shift; exec \"$@\"")
        .arg("sh")
        .arg(umask)
        .arg(common::bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(args: &[&str]) -> (i32, String) {
    run_umask("022", args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A `dumpe2fs -h` field as a number.
fn num(header: &str, name: &str) -> u64 {
    header
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name:?} in\n{header}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn long_symlinks_and_large_xattrs_build_with_default_options() {
    let dir = scratch();
    let tar = dir.path().join("tricky.tar");
    let mut g = TarGen::new(fs::File::create(&tar).unwrap());
    g.dir("etc", Attrs::new(0o755));
    let target: String = (0..400).map(|i| format!("dir{i:06}/")).collect();
    assert_eq!(target.len(), 4000);
    g.symlink("etc/long-link", Attrs::new(0o777), target.as_bytes());
    let attrs = Attrs::new(0o644)
        .xattr(b"user.one", &[b'a'; 1500])
        .xattr(b"user.two", &[b'b'; 1500]);
    g.file("etc/labelled", attrs, b"content\n");
    let (_, model) = g.finish();

    let image = dir.path().join("default.ext4");
    let (code, err) = run(&["build", s(&tar), "-o", s(&image), "-q"]);
    assert_eq!(code, 0, "{err}");
    if let Some(h) = dumpe2fs(&image) {
        assert_eq!(num(&h, "Block size"), 4096);
    }
    check_image(&image, &model.tree, Check::default());

    // Asked for, small blocks keep their limits, as errors naming the entry, and no output.
    for bs in ["1024", "2048"] {
        let small = dir.path().join(format!("small-{bs}.ext4"));
        let (code, err) = run(&["build", s(&tar), "-o", s(&small), "-q", "--block-size", bs]);
        assert_eq!(code, 5, "{err}");
        assert!(
            err.contains("etc/long-link") || err.contains("etc/labelled"),
            "{err}"
        );
        assert!(!small.exists());
    }
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "left behind: {names:?}");
}

#[test]
fn default_images_have_room_at_no_cost_in_disk_space() {
    let dir = scratch();
    let tar = dir.path().join("files.tar");
    let mut g = TarGen::new(fs::File::create(&tar).unwrap());
    let mut rng = Rng::new(13);
    for i in 0..3000u32 {
        let mut data = vec![0u8; rng.below(20_000) as usize];
        rng.fill(&mut data);
        g.file(&format!("d{}/f{i}", i % 40), Attrs::new(0o644), &data);
    }
    let (_, model) = g.finish();
    let image = dir.path().join("default.ext4");
    let (code, err) = run(&["build", s(&tar), "-o", s(&image), "-q"]);
    assert_eq!(code, 0, "{err}");
    check_image(&image, &model.tree, Check { read_write: false });
    let Some(h) = dumpe2fs(&image) else { return };
    let (bs, blocks, free) = (
        num(&h, "Block size"),
        num(&h, "Block count"),
        num(&h, "Free blocks"),
    );
    let (inodes, free_inodes) = (num(&h, "Inode count"), num(&h, "Free inodes"));
    assert_eq!(bs, 4096);
    let used = blocks - free;
    assert!(free * bs >= 256 << 20, "{free} free blocks");
    assert!(free * 5 >= used, "{free} free of {blocks}");
    assert_eq!(num(&h, "Reserved block count"), 0);
    let used_inodes = inodes - free_inodes;
    assert!(used_inodes > 3000);
    assert!(
        free_inodes >= blocks * bs / 16384,
        "{free_inodes} free inodes"
    );
    assert!(free_inodes * 5 >= used_inodes);
    // Free blocks and unused inode tables are holes: the file takes no more disk than the used
    // blocks (the journal, counted as used, is a hole too).
    let du = fs::metadata(&image).unwrap().blocks() * 512;
    assert!(du <= used * bs, "du {du} bytes, {used} blocks used");
    assert!(du < 128 << 20, "du {du} bytes");

    // The options override the defaults; --size stays exact.
    let custom = dir.path().join("custom.ext4");
    let (code, err) = run(&[
        "build",
        s(&tar),
        "-o",
        s(&custom),
        "-q",
        "--headroom",
        "8M",
        "--inodes",
        "4000",
    ]);
    assert_eq!(code, 0, "{err}");
    e2fsck(&custom);
    if let Some(h) = dumpe2fs(&custom) {
        let free = num(&h, "Free blocks") * 4096;
        assert!((8 << 20..64 << 20).contains(&free), "{free} bytes free");
        let inodes = num(&h, "Inode count");
        assert!((4000..4000 + 8192).contains(&inodes), "{inodes} inodes");
    }
    let sized = dir.path().join("sized.ext4");
    let (code, err) = run(&["build", s(&tar), "-o", s(&sized), "-q", "--size", "300M"]);
    assert_eq!(code, 0, "{err}");
    e2fsck(&sized);
    assert_eq!(fs::metadata(&sized).unwrap().len(), 300 << 20);
}

#[test]
fn the_output_file_mode_follows_the_umask() {
    let dir = scratch();
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"a\n").unwrap();
    for (umask, want) in [("022", 0o644), ("027", 0o640), ("002", 0o664)] {
        let image = dir.path().join(format!("img-{umask}.ext4"));
        let (code, err) = run_umask(umask, &["build", s(&src), "-o", s(&image), "-q"]);
        assert_eq!(code, 0, "{err}");
        let mode = fs::metadata(&image).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, want, "umask {umask}: mode {mode:o}");
        e2fsck(&image);
    }
    // Nothing but the images was left in the destination's directory.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["img-002.ext4", "img-022.ext4", "img-027.ext4", "src"]
    );
}

/// Mode (with the type), size, inode, device number, mtime and content hash of an entry.
type EntryState = (u32, u64, u64, u64, i64, Option<[u8; 32]>);

/// The state of everything under `root`.
fn state(root: &Path) -> BTreeMap<PathBuf, EntryState> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let hash = md.is_file().then(|| common::sha256_file(&p));
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(
            p,
            (md.mode(), md.size(), md.ino(), md.rdev(), md.mtime(), hash),
        );
    }
    out
}

#[test]
fn outputs_that_would_destroy_something_are_refused() {
    let dir = scratch();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file"), b"data\n").unwrap();
    let tar = dir.path().join("rootfs.tar");
    let mut g = TarGen::new(fs::File::create(&tar).unwrap());
    g.file("etc/hostname", Attrs::new(0o644), b"vm\n");
    g.finish();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut cases: Vec<(Vec<String>, &str)> = Vec::new();
    let build = |source: &Path, out: &Path| {
        vec![
            "build".to_string(),
            s(source).to_string(),
            "-o".to_string(),
            s(out).to_string(),
        ]
    };
    cases.push((build(&src, &fifo), "FIFO"));
    cases.push((build(&src, dir.path()), "directory"));
    cases.push((build(&src, &src.join("sub")), "directory"));
    cases.push((build(&src, &src.join("image.ext4")), "inside the input"));
    cases.push((build(&src, &src.join("sub/file")), "inside the input"));
    cases.push((build(&tar, &tar), "is the input"));
    cases.push((
        build(Path::new(&format!("{}:latest", s(&tar))), &tar),
        "is the input",
    ));
    cases.push((
        vec![
            "build".into(),
            "--layer".into(),
            s(&tar).into(),
            "-o".into(),
            s(&tar).into(),
        ],
        "is the input",
    ));
    if rustix::process::geteuid().is_root() {
        // Device nodes made here, never aimed at /dev.
        for (kind, name, what) in [
            ("c", "null-like", "character device"),
            (
                "b",
                "disk-like",
                "block device; writing an image straight to a block device is not supported yet",
            ),
        ] {
            let node = dir.path().join(name);
            let ok = Command::new("mknod")
                .arg(&node)
                .args([kind, "7", "250"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "mknod {kind}");
            cases.push((build(&src, &node), what));
        }
    } else {
        skip("-o at device nodes", "mknod needs root");
    }
    let before = state(dir.path());
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(state(dir.path()), before, "{args:?} changed something");
    }
    // A symbolic link at -o is replaced by the image, not followed.
    let kept = dir.path().join("kept.txt");
    fs::write(&kept, b"keep me\n").unwrap();
    let link = dir.path().join("link.ext4");
    std::os::unix::fs::symlink(&kept, &link).unwrap();
    let (code, err) = run(&["build", s(&src), "-o", s(&link), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(fs::read(&kept).unwrap(), b"keep me\n");
    e2fsck(&link);
    // An existing regular file is replaced whole: a new file under the name.
    let ino = fs::metadata(&link).unwrap().ino();
    let (code, err) = run(&["build", s(&tar), "-o", s(&link), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(fs::metadata(&link).unwrap().ino(), ino);
    e2fsck(&link);
}

/// A name of 64 to 80 bytes.
fn long_name(prefix: &str, i: u32, rng: &mut Rng) -> String {
    let len = 64 + rng.below(17) as usize;
    let mut name = format!("{prefix}{i:07}-");
    while name.len() < len {
        name.push((b'a' + rng.below(26) as u8) as char);
    }
    name
}

/// Mounts `image` read-write, creates `n` new files in `dir` (a path in the image) and checks
/// that it then holds `before + n` names; e2fsck after.
fn add_names(image: &Path, dir: &str, before: usize, n: u32) {
    {
        let m = Mounted::new(image, false).unwrap_or_else(|e| panic!("{e}"));
        let d = m.path().join(dir);
        let mut rng = Rng::new(u64::from(n) + before as u64);
        for i in 0..n {
            let p = d.join(long_name("new-", i, &mut rng));
            if let Err(e) = fs::File::create(&p) {
                panic!(
                    "{}: creating new name {i} in {dir} ({before} entries): {e}",
                    image.display()
                );
            }
        }
        assert_eq!(fs::read_dir(&d).unwrap().count(), before + n as usize);
        rustix::fs::sync();
    }
    e2fsck(image);
}

#[test]
fn a_hundred_thousand_entry_directory_takes_ten_thousand_new_names() {
    const N: u32 = 100_000;
    let dir = scratch();
    let tar = dir.path().join("big-dir.tar");
    let mut g = TarGen::new(std::io::BufWriter::new(fs::File::create(&tar).unwrap()));
    g.dir("big", Attrs::new(0o755));
    let mut rng = Rng::new(100);
    for i in 0..N {
        g.file(
            &format!("big/{}", long_name("f", i, &mut rng)),
            Attrs::new(0o644),
            b"",
        );
    }
    let (_, model) = g.finish();
    // The default (4 KiB), and the small block sizes on request.
    for bs in [None, Some("2048"), Some("1024")] {
        let image = dir
            .path()
            .join(format!("big-{}.ext4", bs.unwrap_or("default")));
        let mut args = vec!["build", s(&tar), "-o", s(&image), "-q"];
        args.extend(bs.iter().flat_map(|b| ["--block-size", b]));
        let (code, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        check_image(&image, &model.tree, Check { read_write: false });
        if can_mount() {
            add_names(&image, "big", N as usize, 10_000);
        }
        fs::remove_file(&image).unwrap();
    }
    if !can_mount() {
        skip(
            "inserting names in the guest",
            "needs root and loop devices",
        );
    }
}

#[test]
fn a_million_entry_directory_takes_ten_thousand_new_names() {
    // A million names for 16 files (62,500 links each, under ext4's 65,000): a directory of a
    // million entries without a million inodes to write and check.
    const N: u32 = 1_000_000;
    let dir = scratch();
    let image = dir.path().join("million.ext4");
    let mut b = oci2ext4::ImageBuilder::create(&image, oci2ext4::BuildOptions::default()).unwrap();
    b.add_dir("big", common::meta(0o755)).unwrap();
    for f in 0..16 {
        b.add_file(
            format!("file{f}"),
            common::meta(0o644),
            &mut format!("{f}\n").as_bytes(),
        )
        .unwrap();
    }
    let mut rng = Rng::new(1_000_000);
    let mut names = Vec::with_capacity(N as usize);
    for i in 0..N {
        let name = long_name("m", i, &mut rng);
        b.add_hard_link(format!("big/{name}"), format!("file{}", i % 16))
            .unwrap();
        names.push(name);
    }
    b.finish().unwrap();
    e2fsck(&image);
    if !can_mount() {
        skip(
            "million-entry directory in the kernel",
            "needs root and loop devices",
        );
        return;
    }
    {
        // Every name is there and names its file.
        let m = Mounted::new(&image, true).unwrap_or_else(|e| panic!("{e}"));
        let inos: Vec<u64> = (0..16)
            .map(|f| {
                fs::metadata(m.path().join(format!("file{f}")))
                    .unwrap()
                    .ino()
            })
            .collect();
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for e in fs::read_dir(m.path().join("big")).unwrap() {
            let e = e.unwrap();
            got.insert(e.file_name().to_string_lossy().into_owned(), e.ino());
        }
        assert_eq!(got.len(), N as usize);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(got.get(name), Some(&inos[i % 16]), "{name}");
        }
        for (f, ino) in inos.iter().enumerate() {
            let md = fs::metadata(m.path().join(format!("file{f}"))).unwrap();
            assert_eq!((md.ino(), md.nlink()), (*ino, 62_501));
        }
    }
    add_names(&image, "big", N as usize, 10_000);
}
