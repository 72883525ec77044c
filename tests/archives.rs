//! Sources recognised by their content: image archives written by skopeo and buildah
//! (docker-archive, oci-archive), Docker 25-style and classic `docker save` archives, the same
//! compressed, and root filesystem tars, from files, through standard input (`-`) and through a
//! FIFO. Each image is checked with e2fsck and, as root, mounted and compared with the model
//! of its layers and with what `umoci raw unpack` makes of the same image.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::layers::{expected, gzip, zstd, LayerGen, Op};
use common::model::Tree;
use common::oci::{write_docker_archive, write_image, write_layout, ImageSpec};
use common::tars::Attrs;
use common::{
    can_mount, check_image, scratch, skip, snapshot, umoci_comparable, umoci_tree, Check, Mounted,
};

const NO_RW: Check = Check { read_write: false };
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How the source reaches the build.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Its path.
    File,
    /// `-`, standard input being a pipe.
    Stdin,
    /// A FIFO's path (as process substitution gives).
    Fifo,
}

/// Runs `oci2ext4 build SOURCE -o out --json` with `source` given as `via` says; `suffix` (a
/// `:TAG` or `@sha256:…`) follows the source's path.
fn build(source: &Path, suffix: &str, via: Via, out: &Path) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.arg("build");
    let data = || fs::read(source).unwrap();
    let feed = |mut w: Box<dyn Write + Send>, data: Vec<u8>| {
        std::thread::spawn(move || {
            // The build may stop reading early (an error); that is its to report.
            let _ = w.write_all(&data);
        })
    };
    let fifo = source.with_extension("fifo");
    let writer = match via {
        Via::File => {
            cmd.arg(format!("{}{suffix}", source.display()));
            None
        }
        Via::Stdin => {
            assert!(suffix.is_empty());
            cmd.arg("-").stdin(Stdio::piped());
            None
        }
        Via::Fifo => {
            let _ = fs::remove_file(&fifo);
            let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
            assert!(ok.success());
            cmd.arg(format!("{}{suffix}", fifo.display()));
            let (path, data) = (fifo.clone(), data());
            Some(std::thread::spawn(move || {
                let w = fs::OpenOptions::new().write(true).open(path).unwrap();
                feed(Box::new(w), data).join().unwrap();
            }))
        }
    };
    cmd.arg("-o").arg(out).arg("--json");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdin_writer = child
        .stdin
        .take()
        .map(|s| feed(Box::new(s) as Box<dyn Write + Send>, data()));
    let output = child.wait_with_output().unwrap();
    if let Some(w) = stdin_writer {
        w.join().unwrap();
    }
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let _ = fs::remove_file(&fifo);
    output
}

/// The JSON summary of a build that succeeded.
fn ok(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Files in `dir` besides `keep`: none may be left by a build (spool files, partial images).
fn leftovers(dir: &Path, keep: &[&Path]) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !keep.contains(&p.as_path()))
        .collect()
}

fn layer(build: impl FnOnce(&mut LayerGen)) -> (Vec<u8>, Vec<Op>) {
    let mut g = LayerGen::new();
    build(&mut g);
    g.finish()
}

/// Three layers with an entry of every kind, whiteouts and an opaque directory.
fn three_layers() -> Vec<(Vec<u8>, Vec<Op>)> {
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let l1 = layer(|g| {
        g.dir("etc", Attrs::new(0o755))
            .file("etc/passwd", Attrs::new(0o644), b"root:x:0:0\n")
            .file("etc/shadow", Attrs::new(0o600).owner(0, 42), b"secret")
            .dir("var/cache", Attrs::new(0o755))
            .file("var/cache/a", Attrs::new(0o644), b"a")
            .file(
                "bin/ping",
                Attrs::new(0o4755).xattr(b"security.capability", &cap),
                b"ping",
            )
            .hardlink("bin/ping6", "bin/ping")
            .symlink("bin/sh", "busybox")
            .device("dev/null", Attrs::new(0o666), 1, 3)
            .fifo("run/fifo", Attrs::new(0o600))
            .file(
                "home/u/f",
                Attrs::new(0o640).owner(1000, 1000).mtime(1_600_000_000, 5),
                &[9u8; 100_000],
            );
    });
    let l2 = layer(|g| {
        g.file(
            "etc/passwd",
            Attrs::new(0o644),
            b"root:x:0:0\nu:x:1000:1000\n",
        )
        .whiteout("etc/shadow")
        .opaque("var/cache")
        .file("var/cache/c", Attrs::new(0o644), b"c")
        .whiteout("home/u")
        .file("home/u/g", Attrs::new(0o600), b"new");
    });
    let l3 = layer(|g| {
        g.whiteout("bin/ping6")
            .file("etc/added", Attrs::new(0o644), b"3");
    });
    vec![l1, l2, l3]
}

/// Checks the image at `out` against the model and, when given, umoci's tree.
fn judge(out: &Path, want: &Tree, umoci: Option<&Tree>, what: &str) {
    eprintln!("checking {what}");
    check_image(out, want, NO_RW);
    if let Some(theirs) = umoci {
        let m = Mounted::new(out, true).unwrap();
        common::assert_same_tree(theirs, &umoci_comparable(snapshot(m.path())));
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

/// Archives written by skopeo (and buildah, as root, where installed) from a layout this test
/// writes: each form, from a file, compressed, through `-` and through a FIFO, gives the model's
/// tree and umoci's.
#[test]
fn archives_written_by_real_tools() {
    if !have("skopeo") {
        skip("skopeo archives", "needs skopeo");
        return;
    }
    let dir = scratch();
    let layers = three_layers();
    let want = expected(&layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>());
    let (t1, t2, t3) = (&layers[0].0, &layers[1].0, &layers[2].0);
    let spec = ImageSpec::new(vec![
        (gzip(t1), TGZ, t1.clone()),
        (t2.clone(), TAR, t2.clone()),
        (zstd(t3), TZST, t3.clone()),
    ]);
    let layout = dir.path().join("layout");
    write_layout(&layout, &[("latest", &spec)]);
    // umoci 0.4 reads no zstd layers: its reference is the same image with gzip instead.
    let gzip_layout = dir.path().join("gzip-layout");
    let gzip_spec = ImageSpec::new(vec![
        (gzip(t1), TGZ, t1.clone()),
        (t2.clone(), TAR, t2.clone()),
        (gzip(t3), TGZ, t3.clone()),
    ]);
    write_layout(&gzip_layout, &[("latest", &gzip_spec)]);
    let umoci = umoci_tree(&gzip_layout, "latest", dir.path());
    let mut archives: Vec<(String, PathBuf, &str)> = Vec::new();
    // Docker images have no zstd layers: the docker-archive is written from the gzip layout.
    for (form, file, reading, from) in [
        (
            "docker-archive",
            "skopeo-docker.tar",
            "docker-archive",
            &gzip_layout,
        ),
        ("oci-archive", "skopeo-oci.tar", "oci-archive", &layout),
    ] {
        let path = dir.path().join(file);
        let o = Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:latest", from.display()))
            .arg(format!("{form}:{}:example/app:1.0", path.display()))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        archives.push((format!("skopeo {form}"), path, reading));
    }
    if have("buildah") && can_mount() {
        let store = dir.path().join("buildah");
        let buildah = |args: &[&str]| {
            let o = Command::new("buildah")
                .arg("--root")
                .arg(store.join("root"))
                .arg("--runroot")
                .arg(store.join("run"))
                .args(["--storage-driver", "vfs"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "buildah: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8(o.stdout).unwrap().trim().to_string()
        };
        // buildah names a pulled layout after its path, which must then be lowercase.
        let lower = std::env::temp_dir().join(format!("oci2ext4-layout-{}", std::process::id()));
        let _ = fs::remove_file(&lower);
        std::os::unix::fs::symlink(&gzip_layout, &lower).unwrap();
        let id = buildah(&["pull", "-q", &format!("oci:{}:latest", lower.display())]);
        fs::remove_file(&lower).unwrap();
        for (form, file, reading) in [
            ("docker-archive", "buildah-docker.tar", "docker-archive"),
            ("oci-archive", "buildah-oci.tar", "oci-archive"),
        ] {
            let path = dir.path().join(file);
            buildah(&[
                "push",
                "-q",
                &id,
                &format!("{form}:{}:example/app:1.0", path.display()),
            ]);
            archives.push((format!("buildah {form}"), path, reading));
        }
    } else {
        skip("buildah archives", "needs buildah and root");
    }
    let out = dir.path().join("out.ext4");
    for (what, archive, reading) in &archives {
        // skopeo's docker-archive puts every layer before manifest.json.
        let gz = archive.with_extension("tar.gz");
        fs::write(&gz, gzip(&fs::read(archive).unwrap())).unwrap();
        for (source, suffix, via) in [
            (archive, "", Via::File),
            (archive, ":1.0", Via::File),
            (archive, "", Via::Stdin),
            (archive, "", Via::Fifo),
            (&gz, "", Via::File),
            (&gz, "", Via::Stdin),
        ] {
            let _ = fs::remove_file(&out);
            let v = ok(&build(source, suffix, via, &out));
            assert_eq!(v["source"]["reading"], *reading, "{what} {via:?}");
            assert_eq!(v["platform"], "linux/amd64", "{what}");
            assert_eq!(v["layers"].as_array().unwrap().len(), 3, "{what}");
            judge(
                &out,
                &want,
                umoci.as_ref(),
                &format!("{what}{suffix} {via:?}"),
            );
        }
        fs::remove_file(&gz).unwrap();
    }
    // An OCI archive by manifest digest (skopeo writes the manifest anew).
    let oci = dir.path().join("skopeo-oci.tar");
    let mut index = None;
    for e in tar::Archive::new(fs::File::open(&oci).unwrap())
        .entries()
        .unwrap()
    {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            index = Some(serde_json::from_reader::<_, serde_json::Value>(&mut e).unwrap());
        }
    }
    let index = index.expect("no index.json in the OCI archive");
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = fs::remove_file(&out);
    let v = ok(&build(&oci, &format!("@{manifest}"), Via::File, &out));
    assert_eq!(v["image_digest"], manifest.as_str());
    judge(&out, &want, umoci.as_ref(), "oci-archive by digest");
    // A tag no image has: refused, nothing left behind.
    let _ = fs::remove_file(&out);
    let o = build(&oci, ":nope", Via::File, &out);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut keep: Vec<&Path> = archives.iter().map(|a| a.1.as_path()).collect();
    let store = dir.path().join("buildah");
    keep.extend([layout.as_path(), &gzip_layout, &store]);
    assert_eq!(leftovers(dir.path(), &keep), Vec::<PathBuf>::new());
}

/// Writes what `docker save` writes since Docker 25: an OCI layout (uncompressed layers,
/// `index.json` naming the image as containerd does) plus `manifest.json` and `repositories`,
/// blobs first.
fn write_docker25(path: &Path, dir: &Path, layers: &[Vec<u8>]) -> String {
    let layout = dir.join("docker25-layout");
    let spec = ImageSpec::new(layers.iter().map(|t| (t.clone(), TAR, t.clone())).collect());
    let (manifest, size) = write_image(&layout, &spec);
    let m: serde_json::Value = serde_json::from_slice(
        &fs::read(layout.join("blobs/sha256").join(&manifest[7..])).unwrap(),
    )
    .unwrap();
    let blob = |d: &serde_json::Value| format!("blobs/sha256/{}", &d.as_str().unwrap()[7..]);
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest, "size": size,
        "annotations": {"io.containerd.image.name": "docker.io/library/example:1.0", "org.opencontainers.image.ref.name": "1.0"},
    }]});
    let docker_manifest = serde_json::json!([{
        "Config": blob(&m["config"]["digest"]),
        "RepoTags": ["example:1.0"],
        "Layers": m["layers"].as_array().unwrap().iter().map(|l| blob(&l["digest"])).collect::<Vec<_>>(),
    }]);
    let mut tar = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append(&h, data).unwrap();
    };
    let mut blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    blobs.sort();
    for b in blobs {
        let name = format!("blobs/sha256/{}", b.file_name().unwrap().to_str().unwrap());
        add(&name, &fs::read(&b).unwrap());
    }
    add("index.json", &serde_json::to_vec(&index).unwrap());
    add(
        "manifest.json",
        &serde_json::to_vec(&docker_manifest).unwrap(),
    );
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("repositories", br#"{"example":{"1.0":"x"}}"#);
    tar.into_inner().unwrap();
    fs::remove_dir_all(&layout).unwrap();
    manifest
}

/// `docker save` as Docker 25 and later write it and in the classic form (layer directories
/// before `manifest.json`), from files, compressed and through pipes, with tags and digests.
#[test]
fn docker_save_archives_of_both_eras() {
    let dir = scratch();
    let layers = three_layers();
    let want = expected(&layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>());
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| l.0.clone()).collect();
    let layout = dir.path().join("layout");
    let spec = ImageSpec::new(tars.iter().map(|t| (t.clone(), TAR, t.clone())).collect());
    write_layout(&layout, &[("latest", &spec)]);
    let umoci = umoci_tree(&layout, "latest", dir.path());
    let modern = dir.path().join("docker25.tar");
    let manifest = write_docker25(&modern, dir.path(), &tars);
    let classic = dir.path().join("classic.tar");
    write_docker_archive(&classic, "example:1.0", &tars);
    let out = dir.path().join("out.ext4");
    for (archive, suffix, via, reading) in [
        (&modern, "", Via::File, "docker-archive"),
        (&modern, ":1.0", Via::File, "docker-archive"),
        (&modern, ":example:1.0", Via::File, "docker-archive"),
        (&modern, &*format!("@{manifest}"), Via::File, "oci-archive"),
        (&modern, "", Via::Stdin, "docker-archive"),
        (&modern, "", Via::Fifo, "docker-archive"),
        (&classic, "", Via::File, "docker-archive"),
        (&classic, ":example:1.0", Via::File, "docker-archive"),
        (&classic, "", Via::Stdin, "docker-archive"),
        (&classic, "", Via::Fifo, "docker-archive"),
    ] {
        let _ = fs::remove_file(&out);
        let what = format!("{}{suffix} {via:?}", archive.display());
        let v = ok(&build(archive, suffix, via, &out));
        assert_eq!(v["source"]["reading"], reading, "{what}");
        judge(&out, &want, umoci.as_ref(), &what);
    }
    // The same archives zstd-compressed: decompressed beside the output, never a rootfs.
    for archive in [&modern, &classic] {
        let z = archive.with_extension("tar.zst");
        fs::write(&z, zstd(&fs::read(archive).unwrap())).unwrap();
        let _ = fs::remove_file(&out);
        let v = ok(&build(&z, "", Via::File, &out));
        assert_eq!(v["source"]["reading"], "docker-archive");
        judge(&out, &want, umoci.as_ref(), &z.display().to_string());
        fs::remove_file(&z).unwrap();
    }
    // A layer that does not match its diff_id, through a pipe: refused after spooling, and
    // neither the spool nor the output is left.
    let bad = dir.path().join("bad.tar");
    let mut data = fs::read(&classic).unwrap();
    let at = data.windows(9).position(|w| w == b"secret\0\0\0").unwrap();
    data[at] = b'S';
    fs::write(&bad, &data).unwrap();
    let _ = fs::remove_file(&out);
    for via in [Via::File, Via::Stdin, Via::Fifo] {
        let o = build(&bad, "", via, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(4), "{via:?}: {err}");
        assert!(
            err.contains("diff_id") && err.contains("layer 1/3"),
            "{err}"
        );
        assert!(!out.exists());
    }
    fs::remove_file(&bad).unwrap();
    assert_eq!(
        leftovers(dir.path(), &[&modern, &classic, &layout]),
        Vec::<PathBuf>::new()
    );
}

/// A root filesystem tar, plain, gzip and zstd, gives the same tree from a file, through `-`
/// and through a FIFO; a zstd stream that starts with a skippable frame too.
#[test]
fn rootfs_tars_from_files_and_pipes() {
    let dir = scratch();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (tar, ops) = layer(|g| {
        g.dir("etc", Attrs::new(0o755))
            .file("etc/hostname", Attrs::new(0o644), b"vm\n")
            .file("srv/big", Attrs::new(0o644), &big)
            .symlink("bin/sh", "busybox")
            .device("dev/null", Attrs::new(0o666), 1, 3)
            // An image archive's names deeper in a rootfs do not make it an archive.
            .file("srv/manifest.json", Attrs::new(0o644), b"[]")
            .file("srv/oci-layout", Attrs::new(0o644), b"{}");
    });
    let want = expected(&[ops]);
    let mut skippable = vec![0x5E, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
    skippable.extend(zstd(&tar));
    let out = dir.path().join("out.ext4");
    for (name, data) in [
        ("rootfs.tar", tar.clone()),
        ("rootfs.tar.gz", gzip(&tar)),
        ("rootfs.tar.zst", zstd(&tar)),
        ("skippable.tar.zst", skippable),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, &data).unwrap();
        for via in [Via::File, Via::Stdin, Via::Fifo] {
            let _ = fs::remove_file(&out);
            let v = ok(&build(&path, "", via, &out));
            assert_eq!(v["source"]["reading"], "rootfs-tar", "{name} {via:?}");
            assert_eq!(v["platform"], serde_json::Value::Null);
            judge(&out, &want, None, &format!("{name} {via:?}"));
        }
        fs::remove_file(&path).unwrap();
    }
    assert_eq!(leftovers(dir.path(), &[&out]), Vec::<PathBuf>::new());
}

/// A tar that is a docker archive and also holds root filesystem entries: read as the image,
/// and the summary says so; a broken one says how to build it as a root filesystem.
#[test]
fn ambiguous_tars_read_as_images_and_say_so() {
    let dir = scratch();
    let layers = three_layers();
    let want = expected(&layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>());
    let tars: Vec<Vec<u8>> = layers.iter().map(|l| l.0.clone()).collect();
    let archive = dir.path().join("saved.tar");
    write_docker_archive(&archive, "example:1.0", &tars);
    // Append a rootfs entry before the end-of-archive blocks.
    let mut data = fs::read(&archive).unwrap();
    let end = data.len() - 1024;
    data.truncate(end);
    let (extra, _) = layer(|g| {
        g.file("etc/motd", Attrs::new(0o644), b"hello");
    });
    data.extend_from_slice(&extra);
    fs::write(&archive, &data).unwrap();
    let out = dir.path().join("out.ext4");
    let v = ok(&build(&archive, "", Via::File, &out));
    assert_eq!(v["source"]["reading"], "docker-archive");
    let notes = v["source"]["notes"].to_string();
    assert!(
        notes.contains("etc/motd") && notes.contains("--layer"),
        "{notes}"
    );
    judge(&out, &want, None, "ambiguous archive");
    // Its manifest names a layer that is not there: refused, with the other reading named.
    let mut broken = data.clone();
    let at = broken
        .windows(11)
        .position(|w| w == b"/layer.tar\"")
        .unwrap();
    broken[at..at + 11].copy_from_slice(b"/lay3r.tar\"");
    let broken_path = dir.path().join("broken.tar");
    fs::write(&broken_path, &broken).unwrap();
    let bad_out = dir.path().join("bad.ext4");
    let o = build(&broken_path, "", Via::File, &bad_out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("lay3r.tar") && err.contains("--layer"),
        "{err}"
    );
    assert!(!bad_out.exists());
    // With --layer it is a root filesystem tar: the archive's members are its files.
    let _ = fs::remove_file(&out);
    let o = Command::new(common::bin())
        .args(["build", "--json", "-o"])
        .arg(&out)
        .arg("--layer")
        .arg(&archive)
        .output()
        .unwrap();
    let v = ok(&o);
    assert_eq!(v["source"]["reading"], "layers");
    common::e2fsck(&out);
    if let Some(s) = common::debugfs(&out, "ls -l /") {
        assert!(s.contains("manifest.json") && s.contains("etc"), "{s}");
    }
}

/// Ctrl-C while an image archive is being spooled from a pipe: exit 130, no spool file, no
/// output left.
#[test]
fn cancelling_a_spooled_stream_leaves_nothing() {
    let dir = scratch();
    let tars: Vec<Vec<u8>> = vec![vec![0u8; 24 << 20]];
    let archive = dir.path().join("saved.tar");
    write_docker_archive(&archive, "example:1.0", &tars);
    let data = fs::read(&archive).unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let out = work.join("out.ext4");
    let mut child = Command::new(common::bin())
        .args(["build", "-", "-q", "-o"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The layer (past the in-memory bound of the spool), not yet the manifest.
    stdin.write_all(&data[..(data.len() / 2)]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let spooling = leftovers(&work, &[]);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    // The process sees the signal when its next read returns.
    let _ = stdin.write_all(&data[(data.len() / 2)..]);
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert_eq!(leftovers(&work, &[]), Vec::<PathBuf>::new());
    // The spool was there while the stream came, and named as such.
    assert!(
        !spooling.is_empty()
            && spooling
                .iter()
                .all(|p| p.to_string_lossy().contains(".oci2ext4-spool-")),
        "{spooling:?}"
    );
}

/// The host's platform as Docker names it, for the architectures tests run on.
fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64/v8",
        other => panic!("no expectation for {other}"),
    }
}

/// A multi-platform OCI archive: the host's image by default, `--platform` picks another, and
/// the summary says which; a single-platform image for another platform is built with a note.
#[test]
fn platforms_default_to_the_host() {
    let dir = scratch();
    let layout = dir.path().join("multi");
    let mut specs = Vec::new();
    let mut models = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let l = layer(|g| {
            g.file(&format!("arch-{arch}"), Attrs::new(0o644), arch.as_bytes());
        });
        let mut s = ImageSpec::new(vec![(gzip(&l.0), TGZ, l.0.clone())]);
        s.arch = arch.into();
        s.variant = variant.map(Into::into);
        specs.push(s);
        models.push(expected(&[l.1]));
    }
    common::oci::write_multiplatform(&layout, "latest", &specs.iter().collect::<Vec<_>>());
    let archive = dir.path().join("multi.tar");
    let o = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("out.ext4");
    let host = host_platform();
    let which = usize::from(host != "linux/amd64");
    let v = ok(&build(&archive, "", Via::File, &out));
    assert_eq!(v["source"]["reading"], "oci-archive");
    assert_eq!(v["platform"], host);
    judge(&out, &models[which], None, "the host's platform");
    for (platform, which, named) in [
        ("linux/amd64", 0, "linux/amd64"),
        ("linux/arm64", 1, "linux/arm64/v8"),
    ] {
        let _ = fs::remove_file(&out);
        let o = Command::new(common::bin())
            .arg("build")
            .arg(&archive)
            .args(["--json", "--platform", platform, "-o"])
            .arg(&out)
            .output()
            .unwrap();
        let v = ok(&o);
        assert_eq!(v["platform"], named);
        judge(&out, &models[which], None, platform);
    }
    // A docker archive of one amd64 image, asked for arm64: built, with a note.
    let l = layer(|g| {
        g.file("only", Attrs::new(0o644), b"x");
    });
    let saved = dir.path().join("saved.tar");
    write_docker_archive(&saved, "one:1", std::slice::from_ref(&l.0));
    let _ = fs::remove_file(&out);
    let o = Command::new(common::bin())
        .arg("build")
        .arg(&saved)
        .args(["--platform", "linux/arm64", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("note: the image is for linux/amd64, not linux/arm64"),
        "{err}"
    );
    assert!(err.contains("docker archive for linux/amd64"), "{err}");
    judge(&out, &expected(&[l.1]), None, "a single-platform archive");
}
