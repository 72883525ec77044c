//! `oci2ext4 pull` against a real registry (Debian's docker-registry, the CNCF Distribution
//! registry) started for each test: compressions and media types, platforms, authentication,
//! the blob cache and offline builds, and faults (a connection cut mid-layer, a corrupt blob in
//! the registry, a wrong password, an unknown tag, a stalled download).

#![cfg(feature = "registry")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use common::layers::{expected, gzip, zstd, LayerGen, Op};
use common::model::Tree;
use common::oci::digest;
use common::registry::{Fault, Proxy, PushImage, Pusher, Registry, Setup, Tls, PASSWORD, USER};
use common::tars::Attrs;
use common::{check_image, scratch, Check, Rng};

const NO_RW: Check = Check { read_write: false };
const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_GZ: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// A test's scratch space: a home without credentials, a cache, an output directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = scratch();
        fs::create_dir_all(dir.path().join("home")).unwrap();
        fs::create_dir_all(dir.path().join("out")).unwrap();
        Scratch { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.path("out").join(name)
    }

    /// `oci2ext4 pull REFERENCE -o OUT --cache-dir CACHE EXTRA...` with a clean environment (no
    /// credentials of the machine's), `env` added and `stdin` as its input.
    fn pull_env(
        &self,
        reference: &str,
        out: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Output {
        let mut cmd = Command::new(common::bin());
        cmd.arg("pull")
            .arg(reference)
            .arg("-o")
            .arg(out)
            .arg("--cache-dir")
            .arg(self.cache())
            .args(extra)
            .env("HOME", self.path("home"))
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// `pull_env` with nothing added to the environment and no input.
    fn pull(&self, reference: &str, out: &Path, extra: &[&str]) -> Output {
        self.pull_env(reference, out, extra, &[], None)
    }

    /// `pull` over plain HTTP.
    fn pull_http(&self, reference: &str, out: &Path, extra: &[&str]) -> Output {
        self.pull(reference, out, &[&["--plain-http"], extra].concat())
    }

    /// Pulls `reference` into `out` through the cache, over plain HTTP; returns the JSON summary.
    fn pull_ok(&self, reference: &str, out: &str, extra: &[&str]) -> serde_json::Value {
        let o = self.pull_http(reference, &self.out(out), &[&["--json"], extra].concat());
        ok(&o);
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "pull failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Checks a failed run: the exit status, one line on stderr containing each of `words`, no
/// output file and nothing left beside it.
fn failed(o: &Output, code: i32, words: &[&str], out: &Path) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("expected failure: {}", err.trim_end());
    assert_eq!(o.status.code(), Some(code), "{err}");
    // Lines for the layers applied before the failure may come first (stderr is not a
    // terminal); the error itself is one line.
    assert_eq!(
        err.lines().filter(|l| !l.starts_with("layer ")).count(),
        1,
        "one line expected: {err}"
    );
    for w in words {
        assert!(err.contains(w), "{w:?} missing from: {err}");
    }
    assert!(!out.exists(), "{} was left behind", out.display());
    let left: Vec<_> = fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    err
}

/// The cache holds only complete blobs that match their names, and no partial downloads.
fn assert_cache_sound(cache: &Path) {
    let blobs = cache.join("blobs/sha256");
    if !blobs.exists() {
        return;
    }
    for e in fs::read_dir(&blobs).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let data = fs::read(e.path()).unwrap();
        assert_eq!(
            digest(&data),
            format!("sha256:{name}"),
            "bad blob {name} in the cache"
        );
    }
    if let Ok(entries) = fs::read_dir(cache.join("ingest")) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                !n.ends_with(".partial"),
                "partial download {n} left in the cache"
            );
        }
    }
}

/// The digest of a file's bytes (images are compared by it, not byte by byte in messages).
fn file_digest(path: &Path) -> String {
    digest(&fs::read(path).unwrap())
}

fn has_blob(cache: &Path, d: &str) -> bool {
    cache.join("blobs/sha256").join(&d[7..]).exists()
}

type Layer = (Vec<u8>, Vec<Op>);

fn layer(build: impl FnOnce(&mut LayerGen)) -> Layer {
    let mut g = LayerGen::new();
    build(&mut g);
    g.finish()
}

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    Rng::new(seed).fill(&mut v);
    v
}

/// Three layers: a large incompressible file first, then whiteouts, an opaque directory and
/// hard links; `tag` makes the content differ between images.
fn three_layers(tag: &str) -> (Vec<Layer>, Tree) {
    let big = random(3 << 20, tag.len() as u64 + 7);
    let l1 = layer(|g| {
        g.dir("etc", Attrs::new(0o755))
            .file("etc/a", Attrs::new(0o644), b"a1")
            .file("etc/b", Attrs::new(0o600).owner(1, 2), b"b1")
            .dir("usr", Attrs::new(0o755))
            .dir("usr/lib", Attrs::new(0o755))
            .file("usr/lib/big", Attrs::new(0o644), &big)
            .file("usr/lib/old", Attrs::new(0o644), b"old")
            .symlink("lib", "usr/lib");
    });
    let l2 = layer(|g| {
        g.whiteout("etc/b")
            .file("etc/c", Attrs::new(0o4755), b"c2")
            .opaque("usr/lib")
            .file("usr/lib/new", Attrs::new(0o644), b"new");
    });
    let l3 = layer(|g| {
        g.file("etc/tag", Attrs::new(0o644), tag.as_bytes())
            .hardlink("etc/tag2", "etc/tag")
            .fifo("etc/fifo", Attrs::new(0o600));
    });
    let want = expected(&[l1.1.clone(), l2.1.clone(), l3.1.clone()]);
    (vec![l1, l2, l3], want)
}

/// The three layers as gzip, zstd and uncompressed OCI layers.
fn oci_image(layers: &[Layer]) -> PushImage {
    PushImage::new(vec![
        (gzip(&layers[0].0), TGZ, layers[0].0.clone()),
        (zstd(&layers[1].0), TZST, layers[1].0.clone()),
        (layers[2].0.clone(), TAR, layers[2].0.clone()),
    ])
}

fn blob_digests(image: &PushImage) -> Vec<String> {
    image
        .spec
        .layers
        .iter()
        .map(|(b, _, _)| digest(b))
        .collect()
}

/// A registry started for a test, holding `three_layers(content)` as `repo:v1`.
struct Pushed {
    reg: Registry,
    image: PushImage,
    want: Tree,
    /// The manifest's digest.
    manifest: String,
}

impl Pushed {
    /// A registry as [`Setup::default`] starts it; `None` (the test is skipped) when there is
    /// none to start.
    fn start(what: &str, repo: &str, content: &str) -> Option<Pushed> {
        Pushed::start_with(what, Setup::default(), repo, content)
    }

    /// A registry set up as `setup` asks, pushed to with the credentials and CA it calls for.
    fn start_with(what: &str, setup: Setup, repo: &str, content: &str) -> Option<Pushed> {
        let ca = setup.tls.map(|tls| tls.ca.clone());
        let basic = setup.htpasswd;
        let reg = Registry::start(what, setup)?;
        let pusher = Pusher::new(&reg.addr, ca.as_deref(), basic);
        let (layers, want) = three_layers(content);
        let image = oci_image(&layers);
        let manifest = pusher.push(repo, "v1", &image);
        Some(Pushed {
            reg,
            image,
            want,
            manifest,
        })
    }
}

#[test]
fn pulls_every_compression_caches_blobs_and_builds_offline() {
    let Some(Pushed {
        reg,
        image,
        want,
        manifest,
    }) = Pushed::start("registry pull", "test/img", "one")
    else {
        return;
    };
    let proxy = Proxy::start(&reg.addr);
    let s = Scratch::new();
    let reference = format!("{}/test/img:v1", proxy.addr);

    let first = s.pull_ok(&reference, "a.ext4", &[]);
    assert_eq!(first["image_digest"], manifest.as_str());
    assert_eq!(first["reference"], reference.as_str());
    assert_eq!(first["index_digest"], serde_json::Value::Null);
    assert_eq!(first["platform"], "linux/amd64");
    assert_eq!(first["download"]["blobs"], 4, "{first}");
    assert_eq!(first["layers"][0]["compression"], "gzip");
    assert_eq!(first["layers"][1]["compression"], "zstd");
    assert_eq!(first["layers"][2]["compression"], "uncompressed");
    assert_eq!(proxy.blob_gets(), 4, "three layers and the config");
    // Kept before the read-write session below changes the image.
    let a = digest(&fs::read(s.out("a.ext4")).unwrap());
    check_image(&s.out("a.ext4"), &want, Check::default());

    // The cache is an OCI image layout naming the reference.
    let cache = s.cache();
    assert!(cache.join("oci-layout").is_file());
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(cache.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["digest"], manifest.as_str());
    assert_eq!(entries[0]["mediaType"], common::registry::OCI_MANIFEST);
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        reference.as_str()
    );
    for d in blob_digests(&image) {
        assert!(has_blob(&cache, &d), "{d} not cached");
    }
    assert_cache_sound(&cache);

    // A second pull downloads no blob, and makes the same bytes.
    let second = s.pull_ok(&reference, "b.ext4", &["--concurrency", "1"]);
    assert_eq!(proxy.blob_gets(), 4, "the second pull downloaded blobs");
    assert_eq!(second["download"]["blobs"], 0);
    assert_eq!(second["download"]["cached_blobs"], 4);
    assert_eq!(
        a,
        file_digest(&s.out("b.ext4")),
        "the second pull made other bytes"
    );

    // `build` from the cache (a layout) gives the same image.
    let built = s.out("built.ext4");
    let o = Command::new(common::bin())
        .arg("build")
        .arg(format!("{}:v1", cache.display()))
        .arg("-o")
        .arg(&built)
        .arg("-q")
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(a, file_digest(&built), "build from the cache differs");

    // With the registry gone, --offline builds from the cache alone, by tag or digest.
    drop(proxy);
    reg.stop();
    let by_digest = format!("{}@{manifest}", reference.rsplit_once(':').unwrap().0);
    for (r, name) in [
        (reference.as_str(), "c.ext4"),
        (by_digest.as_str(), "d.ext4"),
    ] {
        let out = s.out(name);
        ok(&s.pull(r, &out, &["--offline", "-q"]));
        assert_eq!(a, file_digest(&out), "offline pull of {r} differs");
    }
    // Offline, what was never pulled is a clear error.
    let out = s.out("e.ext4");
    let missing = reference.replace(":v1", ":v2");
    let o = s.pull(&missing, &out, &["--offline"]);
    failed(&o, 2, &[&missing, "not in the cache"], &out);
    // Online, the registry being gone is a registry error naming it.
    let o = s.pull_http(&reference, &out, &["--retries", "0"]);
    failed(&o, 8, &[&reference, "cannot reach"], &out);
}

#[test]
fn docker_media_types_and_platforms() {
    let Some(reg) = Registry::start("registry platforms", Setup::default()) else {
        return;
    };
    let pusher = Pusher::new(&reg.addr, None, false);
    let (l_amd, want_amd) = three_layers("amd64");
    let (l_arm64, want_arm64) = three_layers("arm64 v8");
    let (l_arm, want_arm) = three_layers("arm v7 image");
    let mut amd = PushImage::new(vec![
        (gzip(&l_amd[0].0), DOCKER_GZ, l_amd[0].0.clone()),
        (gzip(&l_amd[1].0), DOCKER_GZ, l_amd[1].0.clone()),
        (l_amd[2].0.clone(), DOCKER_TAR, l_amd[2].0.clone()),
    ]);
    amd.docker = true;
    let mut arm64 = oci_image(&l_arm64);
    arm64.spec.arch = "arm64".into();
    arm64.spec.variant = Some("v8".into());
    let mut arm = oci_image(&l_arm);
    arm.spec.arch = "arm".into();
    arm.spec.variant = Some("v7".into());
    let (list, manifests) = pusher.push_index("multi/app", "list", &[&amd, &arm64, &arm], true);
    let (index, _) = pusher.push_index("multi/app", "index", &[&amd, &arm64, &arm], false);
    let docker_only = pusher.push("multi/app", "docker", &amd);
    let s = Scratch::new();
    let base = format!("{}/multi/app", reg.addr);

    let j = s.pull_ok(&format!("{base}:list"), "amd.ext4", &[]);
    assert_eq!(j["image_digest"], manifests[0].as_str());
    assert_eq!(j["index_digest"], list.as_str());
    check_image(&s.out("amd.ext4"), &want_amd, NO_RW);
    let j = s.pull_ok(
        &format!("{base}:index"),
        "arm64.ext4",
        &["--platform", "linux/arm64"],
    );
    assert_eq!(j["image_digest"], manifests[1].as_str());
    assert_eq!(j["index_digest"], index.as_str());
    assert_eq!(j["platform"], "linux/arm64/v8");
    check_image(&s.out("arm64.ext4"), &want_arm64, NO_RW);
    let j = s.pull_ok(
        &format!("{base}:list"),
        "arm64v8.ext4",
        &["--platform", "linux/arm64/v8"],
    );
    assert_eq!(j["image_digest"], manifests[1].as_str());
    let j = s.pull_ok(
        &format!("{base}:index"),
        "arm.ext4",
        &["--platform", "linux/arm"],
    );
    assert_eq!(j["image_digest"], manifests[2].as_str());
    check_image(&s.out("arm.ext4"), &want_arm, NO_RW);
    let j = s.pull_ok(&format!("{base}:docker"), "docker.ext4", &[]);
    assert_eq!(j["image_digest"], docker_only.as_str());
    assert_eq!(
        file_digest(&s.out("docker.ext4")),
        file_digest(&s.out("amd.ext4"))
    );
    // By digest, straight to one platform's manifest.
    let j = s.pull_ok(&format!("{base}@{}", manifests[2]), "arm-digest.ext4", &[]);
    assert_eq!(j["image_digest"], manifests[2].as_str());

    // No match: the error lists what the index offers.
    let out = s.out("none.ext4");
    let o = s.pull_http(
        &format!("{base}:index"),
        &out,
        &["--platform", "linux/s390x"],
    );
    failed(
        &o,
        2,
        &[
            "linux/s390x",
            "linux/amd64, linux/arm64/v8, linux/arm/v7",
            &format!("{base}:index"),
        ],
        &out,
    );
    assert_cache_sound(&s.cache());
}

/// Writes a Docker config (or containers auth.json) file.
fn write_json(path: &Path, value: serde_json::Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, value.to_string()).unwrap();
}

#[test]
fn basic_auth_from_every_credential_source() {
    let htpasswd = Setup {
        htpasswd: true,
        tls: None,
    };
    let Some(Pushed { reg, want, .. }) =
        Pushed::start_with("registry auth", htpasswd, "private/img", "secret")
    else {
        return;
    };
    let s = Scratch::new();
    let reference = format!("{}/private/img:v1", reg.addr);
    let cache = s.cache();
    let run = |out: &Path, extra: &[&str], env: &[(&str, &str)], stdin: Option<&str>| {
        let args = [&["--plain-http", "-q"], extra].concat();
        s.pull_env(&reference, out, &args, env, stdin)
    };
    // Pulls into `name` with `env` added; the credentials found through it must be accepted.
    let logged_in = |name: &str, env: &[(&str, &str)]| -> PathBuf {
        let out = s.out(name);
        ok(&run(&out, &[], env, None));
        out
    };

    // Anonymous: refused, saying how to log in.
    let out = s.out("anon.ext4");
    let o = run(&out, &[], &[], None);
    failed(&o, 8, &[&reference, "requires authentication"], &out);

    // A wrong password: refused, and the password is not repeated.
    let wrong = "not-the-Password-123";
    let out = s.out("wrong.ext4");
    let o = run(
        &out,
        &["--username", USER, "--password-stdin"],
        &[],
        Some(&format!("{wrong}\n")),
    );
    let err = failed(&o, 8, &[&reference, "refused the credentials"], &out);
    assert!(!err.contains(wrong), "the password shows: {err}");
    assert_cache_sound(&cache);

    // --username with --password-stdin.
    let out = s.out("stdin.ext4");
    ok(&run(
        &out,
        &["--username", USER, "--password-stdin"],
        &[],
        Some(&format!("{PASSWORD}\n")),
    ));
    check_image(&out, &want, NO_RW);

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = b64(&format!("{USER}:{PASSWORD}"));

    // $DOCKER_CONFIG/config.json with an `auth` entry.
    let docker_dir = s.path("docker");
    write_json(
        &docker_dir.join("config.json"),
        serde_json::json!({"auths": {format!("http://{}", reg.addr): {"auth": good}}}),
    );
    logged_in(
        "docker-config.ext4",
        &[("DOCKER_CONFIG", docker_dir.to_str().unwrap())],
    );

    // ~/.docker/config.json with a credential store (a docker-credential-* program on PATH).
    let bin = s.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-oci2ext4test");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n[ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\necho '{{\"ServerURL\":\"'$server'\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n",
            reg.addr
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    write_json(
        &s.path("home/.docker/config.json"),
        serde_json::json!({"credsStore": "oci2ext4test"}),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    logged_in("helper.ext4", &[("PATH", &path)]);
    // The same helper named for this registry in credHelpers.
    write_json(
        &s.path("home/.docker/config.json"),
        serde_json::json!({"credHelpers": {reg.addr.clone(): "oci2ext4test"}}),
    );
    logged_in("cred-helpers.ext4", &[("PATH", &path)]);
    fs::remove_file(s.path("home/.docker/config.json")).unwrap();

    // $REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json, then
    // ~/.config/containers/auth.json.
    let auth_file = s.path("auth/auth.json");
    write_json(
        &auth_file,
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": good}}}),
    );
    logged_in(
        "auth-file.ext4",
        &[("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap())],
    );
    let runtime = s.path("run");
    write_json(
        &runtime.join("containers/auth.json"),
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": good}}}),
    );
    logged_in(
        "runtime.ext4",
        &[("XDG_RUNTIME_DIR", runtime.to_str().unwrap())],
    );
    write_json(
        &s.path("home/.config/containers/auth.json"),
        serde_json::json!({"auths": {reg.addr.clone(): {"username": USER, "password": PASSWORD}}}),
    );
    let out = logged_in("config-home.ext4", &[]);
    check_image(&out, &want, NO_RW);

    // A wrong password in a file: the error names the file, never the secret.
    write_json(
        &auth_file,
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": b64(&format!("{USER}:{wrong}"))}}}),
    );
    let out = s.out("wrong-file.ext4");
    let o = run(
        &out,
        &[],
        &[("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap())],
        None,
    );
    let err = failed(&o, 8, &["refused the credentials", "auth.json"], &out);
    assert!(
        !err.contains(wrong) && !err.contains(&b64(&format!("{USER}:{wrong}"))),
        "{err}"
    );
}

/// Each registry's credentials come from the file that has them (a Docker config that names
/// other registries no longer hides a `podman login`), and `--authfile` is the only file read.
#[test]
fn credentials_per_registry_and_authfile() {
    let htpasswd = Setup {
        htpasswd: true,
        tls: None,
    };
    let Some(Pushed { reg, want, .. }) =
        Pushed::start_with("registry authfile", htpasswd, "private/img", "per-registry")
    else {
        return;
    };
    let s = Scratch::new();
    let reference = format!("{}/private/img:v1", reg.addr);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good = b64(&format!("{USER}:{PASSWORD}"));
    let wrong = b64(&format!("{USER}:not-the-Password-456"));
    let pull = |name: &str, extra: &[&str]| {
        let out = s.out(name);
        let o = s.pull_http(&reference, &out, extra);
        (o, out)
    };
    // A docker login for another registry only, a podman login for this one.
    write_json(
        &s.path("home/.docker/config.json"),
        serde_json::json!({"auths": {"other.example": {"auth": wrong}}}),
    );
    let containers = s.path("home/.config/containers/auth.json");
    write_json(
        &containers,
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": good}}}),
    );
    let (o, out) = pull("fall-through.ext4", &["-v"]);
    ok(&o);
    check_image(&out, &want, NO_RW);
    // -v says which file the credentials came from, and never what they are.
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains(containers.to_str().unwrap()), "{log}");
    assert!(!log.contains(&good) && !log.contains(PASSWORD), "{log}");
    // stderr is a pipe: a plain line per layer, each downloaded this time, from the cache the
    // next.
    let layer_lines = |log: &str, whence: &str| {
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("layer "))
            .map(str::to_string)
            .collect();
        assert!(!lines.is_empty(), "{log}");
        for (i, l) in lines.iter().enumerate() {
            let n = format!("layer {}/{} ", i + 1, lines.len());
            assert!(l.starts_with(&n) && l.contains(whence), "{l}");
        }
    };
    layer_lines(&log, ", downloaded, ");
    let (o, _) = pull("again.ext4", &[]);
    ok(&o);
    layer_lines(&String::from_utf8_lossy(&o.stderr), ", from the cache, ");

    // --authfile is the only file read: one without this registry means anonymous (refused),
    // though ~/.config/containers/auth.json has it.
    let elsewhere = s.path("elsewhere.json");
    write_json(
        &elsewhere,
        serde_json::json!({"auths": {"other.example": {"auth": good}}}),
    );
    let (o, out) = pull(
        "authfile-other.ext4",
        &["--authfile", elsewhere.to_str().unwrap(), "--json"],
    );
    let err = failed(&o, 8, &[&reference, "requires authentication"], &out);
    // With --json, the same failure as an object on stdout.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], 1);
    assert_eq!(v["error"]["class"], "registry");
    assert_eq!(v["error"]["exit"], 8);
    assert_eq!(
        format!(
            "oci2ext4: error: {}",
            v["error"]["message"].as_str().unwrap()
        ),
        err.trim_end()
    );
    // One with it wins over a Docker config holding a wrong password for this registry.
    write_json(
        &s.path("home/.docker/config.json"),
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": wrong}}}),
    );
    let given = s.path("given.json");
    write_json(
        &given,
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": good}}}),
    );
    let (o, out) = pull(
        "authfile.ext4",
        &["-q", "--authfile", given.to_str().unwrap()],
    );
    ok(&o);
    check_image(&out, &want, NO_RW);
    // A missing --authfile is an invalid argument, not anonymous access.
    let missing = s.path("missing.json");
    let (o, out) = pull(
        "authfile-missing.ext4",
        &["-q", "--authfile", missing.to_str().unwrap()],
    );
    failed(&o, 2, &["missing.json"], &out);
}

#[test]
fn registry_stopped_mid_layer_leaves_nothing_behind() {
    let Some(Pushed { reg, image, .. }) = Pushed::start("registry cut", "cut/img", "big") else {
        return;
    };
    let big = blob_digests(&image)[0].clone();
    let proxy = Proxy::start(&reg.addr);
    proxy.set_fault(Fault::cut(&big, 1 << 20, 100).then(reg.stopper()));
    let s = Scratch::new();
    let reference = format!("{}/cut/img:v1", proxy.addr);
    let out = s.out("cut.ext4");
    let started = Instant::now();
    let o = s.pull_http(&reference, &out, &["--retries", "2"]);
    failed(&o, 8, &[&reference, "layer 1/3", &big[..19]], &out);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!has_blob(&s.cache(), &big), "the cut blob was kept");
    assert_cache_sound(&s.cache());
}

#[test]
fn a_cut_download_resumes() {
    let Some(Pushed {
        reg, image, want, ..
    }) = Pushed::start("registry resume", "resume/img", "big")
    else {
        return;
    };
    let big = blob_digests(&image)[0].clone();
    let proxy = Proxy::start(&reg.addr);
    proxy.set_fault(Fault::cut(&big, 1 << 20, 1));
    let s = Scratch::new();
    let j = s.pull_ok(&format!("{}/resume/img:v1", proxy.addr), "r.ext4", &[]);
    assert_eq!(
        proxy.blob_gets(),
        5,
        "one more request for the rest of the cut blob"
    );
    assert_eq!(j["download"]["blobs"], 4);
    check_image(&s.out("r.ext4"), &want, NO_RW);
    assert!(has_blob(&s.cache(), &big));
    assert_cache_sound(&s.cache());

    // HTTP 503 and 429 are retried too; a 404 is not.
    for (code, tries, ok_expected) in [(503, 2, true), (429, 1, true), (404, 1, false)] {
        let s = Scratch::new();
        let gets = proxy.blob_gets();
        proxy.set_fault(Fault::status(&big, code, tries));
        let reference = format!("{}/resume/img:v1", proxy.addr);
        if ok_expected {
            s.pull_ok(&reference, "s.ext4", &[]);
            assert_eq!(proxy.blob_gets() - gets, 4 + tries, "HTTP {code}");
            assert!(has_blob(&s.cache(), &big));
        } else {
            let out = s.out("s.ext4");
            let o = s.pull_http(&reference, &out, &[]);
            failed(&o, 8, &[&reference, "layer 1/3", "404"], &out);
            // Had the 404 been retried, the second request (passed on) would have succeeded.
            assert!(proxy.blob_gets() - gets <= 4);
        }
        assert_cache_sound(&s.cache());
    }
}

#[test]
fn a_corrupt_blob_in_the_registry_is_refused() {
    let Some(Pushed { reg, image, .. }) =
        Pushed::start("registry corrupt blob", "bad/img", "corrupt")
    else {
        return;
    };
    for (i, d) in blob_digests(&image).iter().enumerate() {
        // A cache of its own each time: the other layers of a failed pull are kept (they are
        // sound), and would hide the next corruption.
        let s = Scratch::new();
        // Damage one byte of the stored blob, keeping its size.
        let path = reg.blob_file(d);
        let mut data = fs::read(&path).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x5a;
        fs::write(&path, &data).unwrap();
        let reference = format!("{}/bad/img:v1", reg.addr);
        let out = s.out(&format!("bad{i}.ext4"));
        let o = s.pull_http(&reference, &out, &[]);
        let layer = format!("layer {}/3 ({})", i + 1, &d[..19]);
        failed(&o, 4, &[&reference, &layer, "digest"], &out);
        assert!(!has_blob(&s.cache(), d), "the corrupt blob was kept");
        assert_cache_sound(&s.cache());
        // Put it back for the next round.
        data[mid] ^= 0x5a;
        fs::write(&path, &data).unwrap();
    }
}

#[test]
fn unknown_tags_and_repositories_are_clear_errors() {
    let Some(Pushed { reg, .. }) = Pushed::start("registry unknown tag", "known/img", "x") else {
        return;
    };
    let s = Scratch::new();
    let cases = [
        (format!("{}/known/img:nope", reg.addr), "tag \"nope\""),
        (format!("{}/unknown/img:v1", reg.addr), "unknown/img"),
    ];
    for (i, (reference, word)) in cases.iter().enumerate() {
        let out = s.out(&format!("u{i}.ext4"));
        let o = s.pull_http(reference, &out, &[]);
        failed(&o, 8, &[reference, word], &out);
    }
    // A reference that is not one is an argument error.
    let out = s.out("bad.ext4");
    let o = s.pull("Not/Valid", &out, &[]);
    failed(&o, 2, &["invalid image reference"], &out);
    assert_cache_sound(&s.cache());
}

#[test]
fn a_stalled_download_times_out() {
    let Some(Pushed { reg, image, .. }) = Pushed::start("registry stall", "stall/img", "big")
    else {
        return;
    };
    let big = blob_digests(&image)[0].clone();
    let proxy = Proxy::start(&reg.addr);
    proxy.set_fault(Fault::stall(&big, 100 << 10, 100));
    let s = Scratch::new();
    let reference = format!("{}/stall/img:v1", proxy.addr);
    let out = s.out("stall.ext4");
    let started = Instant::now();
    let o = s.pull_http(&reference, &out, &["--layer-timeout", "2"]);
    failed(
        &o,
        8,
        &[&reference, "layer 1/3", "timed out after 2 s"],
        &out,
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_cache_sound(&s.cache());
}

#[test]
fn tls_with_a_private_ca() {
    let s = Scratch::new();
    let Some(tls) = Tls::make(s.dir.path()) else {
        common::skip("registry TLS", "openssl is not installed");
        return;
    };
    let setup = Setup {
        htpasswd: true,
        tls: Some(&tls),
    };
    let Some(Pushed { reg, want, .. }) =
        Pushed::start_with("registry TLS", setup, "tls/img", "tls")
    else {
        return;
    };
    let reference = format!("{}/tls/img:v1", reg.addr);
    let out = s.out("tls.ext4");
    let stdin = format!("{PASSWORD}\n");
    let login = ["-u", USER, "--password-stdin"];
    // Without the CA: a TLS error that says what to do.
    let o = s.pull_env(&reference, &out, &login, &[], Some(&stdin));
    failed(&o, 8, &[&reference, "--ca-cert"], &out);
    let with_ca = [&login[..], &["--ca-cert", tls.ca.to_str().unwrap()]].concat();
    let o = s.pull_env(&reference, &out, &with_ca, &[], Some(&stdin));
    ok(&o);
    check_image(&out, &want, NO_RW);
}

#[test]
fn concurrent_pulls_share_one_cache() {
    let Some(Pushed {
        reg, image, want, ..
    }) = Pushed::start("registry concurrent", "shared/img", "big")
    else {
        return;
    };
    let s = Scratch::new();
    let reference = format!("{}/shared/img:v1", reg.addr);
    let cache = s.cache();
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(common::bin())
                .args(["pull", &reference, "-o"])
                .arg(s.out(&format!("p{i}.ext4")))
                .arg("--cache-dir")
                .arg(&cache)
                .args(["--plain-http", "-q"])
                .env("HOME", s.path("home"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    let first = file_digest(&s.out("p0.ext4"));
    for i in 1..3 {
        assert_eq!(first, file_digest(&s.out(&format!("p{i}.ext4"))));
    }
    check_image(&s.out("p0.ext4"), &want, NO_RW);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(cache.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{index}");
    for d in blob_digests(&image) {
        assert!(has_blob(&cache, &d));
    }
    assert_cache_sound(&cache);
}

#[test]
fn the_library_pulls_too() {
    let Some(Pushed {
        reg,
        want,
        manifest,
        ..
    }) = Pushed::start("registry library", "lib/img", "lib")
    else {
        return;
    };
    let s = Scratch::new();
    let out = s.out("lib.ext4");
    let options = oci2ext4::registry::PullOptions::default()
        .with_cache_dir(s.cache())
        .with_transport(oci2ext4::registry::TransportOptions::default().with_plain_http(true))
        .with_auth_env(oci2ext4::registry::AuthEnv::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let summary = rt
        .block_on(oci2ext4::registry::pull(
            &format!("{}/lib/img:v1", reg.addr),
            &out,
            oci2ext4::BuildOptions::default(),
            options.clone(),
            None,
        ))
        .unwrap();
    assert_eq!(summary.manifest_digest, manifest);
    assert_eq!(summary.layers.len(), 3);
    assert_eq!(summary.stats.blobs_downloaded, 4);
    assert_eq!(summary.reference.repository(), "lib/img");
    check_image(&out, &want, NO_RW);
    // Offline through the library as well.
    reg.stop();
    let out2 = s.out("lib2.ext4");
    let summary = rt
        .block_on(oci2ext4::registry::pull(
            &format!("{}/lib/img:v1", reg.addr),
            &out2,
            oci2ext4::BuildOptions::default(),
            options.with_offline(true),
            None,
        ))
        .unwrap();
    assert_eq!(summary.stats.blobs_downloaded, 0);
    assert_eq!(file_digest(&out), file_digest(&out2));
}

#[test]
fn a_damaged_cache_blob_is_removed_and_fetched_again() {
    let Some(Pushed {
        reg, image, want, ..
    }) = Pushed::start("registry damaged cache", "cache/img", "damaged")
    else {
        return;
    };
    let s = Scratch::new();
    let reference = format!("{}/cache/img:v1", reg.addr);
    s.pull_ok(&reference, "first.ext4", &[]);
    let d = &blob_digests(&image)[1];
    let cached = s.cache().join("blobs/sha256").join(&d[7..]);
    let mut data = fs::read(&cached).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 1;
    fs::write(&cached, &data).unwrap();
    let out = s.out("second.ext4");
    let o = s.pull_http(&reference, &out, &[]);
    failed(
        &o,
        4,
        &[&reference, "layer 2/3", "removed from the cache"],
        &out,
    );
    assert!(!cached.exists(), "the damaged blob is still cached");
    assert_cache_sound(&s.cache());
    let j = s.pull_ok(&reference, "third.ext4", &[]);
    assert_eq!(j["download"]["blobs"], 1, "{j}");
    check_image(&s.out("third.ext4"), &want, NO_RW);
}

#[test]
fn plain_http_by_registry_name_or_by_default_on_loopback() {
    let Some(Pushed { reg, want, .. }) = Pushed::start("registry insecure", "plain/img", "plain")
    else {
        return;
    };
    let s = Scratch::new();
    let reference = format!("{}/plain/img:v1", reg.addr);
    // Named as an insecure registry.
    let out = s.out("named.ext4");
    let o = s.pull(&reference, &out, &["--insecure-registry", &reg.addr, "-q"]);
    ok(&o);
    check_image(&out, &want, NO_RW);
    // No flag at all: a registry on 127.0.0.1 that does not speak TLS is reached over HTTP.
    let out = s.out("default.ext4");
    let o = s.pull(&reference, &out, &["-q"]);
    ok(&o);
    assert_eq!(file_digest(&out), file_digest(&s.out("named.ext4")));
}

/// Whether skopeo is installed.
fn have_skopeo() -> bool {
    Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn images_pushed_by_skopeo_equal_local_builds() {
    if !have_skopeo() {
        common::skip("registry skopeo", "skopeo is not installed");
        return;
    }
    let Some(reg) = Registry::start("registry skopeo", Setup::default()) else {
        return;
    };
    let s = Scratch::new();
    // The bundled example (gzip, zstd and uncompressed layers) and a two-platform index.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example-oci");
    let multi = s.path("multi");
    let (l_amd, _) = three_layers("skopeo amd64");
    let (l_arm, want_arm) = three_layers("skopeo arm64");
    let amd = oci_image(&l_amd).spec;
    let mut arm = common::oci::ImageSpec::new(vec![
        (gzip(&l_arm[0].0), TGZ, l_arm[0].0.clone()),
        (gzip(&l_arm[1].0), TGZ, l_arm[1].0.clone()),
        (gzip(&l_arm[2].0), TGZ, l_arm[2].0.clone()),
    ]);
    arm.arch = "arm64".into();
    arm.variant = Some("v8".into());
    fs::create_dir_all(&multi).unwrap();
    common::oci::write_multiplatform(&multi, "v1", &[&amd, &arm]);
    let copy = |src: String, dest: String, all: bool| {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if all {
            cmd.arg("--all");
        }
        let o = cmd.arg(&src).arg(&dest).output().unwrap();
        assert!(
            o.status.success(),
            "skopeo copy {src} {dest}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    copy(
        format!("oci:{}:latest", fixture.display()),
        format!("docker://{}/example/app:latest", reg.addr),
        false,
    );
    copy(
        format!("oci:{}:v1", multi.display()),
        format!("docker://{}/example/multi:v1", reg.addr),
        true,
    );

    let build = |source: String, out: &Path, extra: &[&str]| {
        let started = Instant::now();
        let o = Command::new(common::bin())
            .arg("build")
            .arg(&source)
            .arg("-o")
            .arg(out)
            .arg("-q")
            .args(extra)
            .output()
            .unwrap();
        ok(&o);
        started.elapsed()
    };
    let cases = [
        (
            format!("{}", fixture.display()),
            "example/app:latest",
            "linux/amd64",
        ),
        (
            format!("{}:v1", multi.display()),
            "example/multi:v1",
            "linux/amd64",
        ),
        (
            format!("{}:v1", multi.display()),
            "example/multi:v1",
            "linux/arm64",
        ),
    ];
    for (i, (layout, repo, platform)) in cases.iter().enumerate() {
        let local = s.out(&format!("local{i}.ext4"));
        let local_time = build(layout.clone(), &local, &["--platform", platform]);
        let reference = format!("{}/{repo}", reg.addr);
        let started = Instant::now();
        s.pull_ok(
            &reference,
            &format!("cold{i}.ext4"),
            &["--platform", platform],
        );
        let cold = started.elapsed();
        let started = Instant::now();
        let warm = s.pull_ok(
            &reference,
            &format!("warm{i}.ext4"),
            &["--platform", platform],
        );
        let warm_time = started.elapsed();
        assert_eq!(warm["download"]["blobs"], 0);
        eprintln!(
            "{repo} {platform}: build {:.3} s, cold pull {:.3} s, warm pull {:.3} s",
            local_time.as_secs_f64(),
            cold.as_secs_f64(),
            warm_time.as_secs_f64()
        );
        let want = file_digest(&local);
        assert_eq!(
            file_digest(&s.out(&format!("cold{i}.ext4"))),
            want,
            "{repo} {platform}"
        );
        assert_eq!(
            file_digest(&s.out(&format!("warm{i}.ext4"))),
            want,
            "{repo} {platform}"
        );
        common::e2fsck(&local);
    }
    check_image(&s.out("warm2.ext4"), &want_arm, NO_RW);
}

#[test]
fn declared_layer_sizes_are_checked_before_the_download() {
    let Some(reg) = Registry::start("registry declared sizes", Setup::default()) else {
        return;
    };
    let pusher = Pusher::new(&reg.addr, None, false);
    let (layers, _) = three_layers("sizes");
    let image = oci_image(&layers);
    pusher.push_declaring("sizes/zero", "v1", &image, &|i, n| {
        if i == 1 {
            0
        } else {
            n
        }
    });
    pusher.push_declaring("sizes/huge", "v1", &image, &|i, n| {
        if i == 1 {
            10 << 30
        } else {
            n
        }
    });
    pusher.push_declaring("sizes/short", "v1", &image, &|i, n| {
        if i == 1 {
            n - 100
        } else {
            n
        }
    });
    let s = Scratch::new();
    let zero = format!("{}/sizes/zero:v1", reg.addr);
    let out = s.out("zero.ext4");
    failed(&s.pull_http(&zero, &out, &[]), 3, &["size of 0"], &out);
    let huge = format!("{}/sizes/huge:v1", reg.addr);
    let out = s.out("huge.ext4");
    let o = s.pull_http(&huge, &out, &["--max-size", "1G"]);
    failed(&o, 5, &["10737418240 bytes", "maximum image size"], &out);
    // A registry sending more than the descriptor says: read up to the declared size only,
    // and refused for its digest.
    let short = format!("{}/sizes/short:v1", reg.addr);
    let out = s.out("short.ext4");
    failed(
        &s.pull_http(&short, &out, &["--retries", "0"]),
        4,
        &[],
        &out,
    );
    assert_cache_sound(&s.cache());
}

/// A server that is no registry answers with bodies far larger than anything asked for, or
/// declares sizes that do not hold: each pull fails with an error naming what was too large
/// (or wrong), having read a bounded part of the answer (counted by the server), and asked
/// for no blob whose declared size is refused.
#[test]
fn hostile_answers_are_read_up_to_their_limits() {
    use common::registry::{Answer, Body, Hostile};
    const HUGE: usize = 64 << 20;
    // What the client may have taken in before it stopped: its limit, plus what the sockets
    // buffer.
    const READ_AT_MOST: usize = 16 << 20;
    let layer_bytes = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        b.append_data(&mut h, "hello", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let layer_digest = digest(&layer_bytes);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string()
    .into_bytes();
    let config_digest = digest(&config);
    let manifest = |config_size: usize, layer_size: usize| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": TAR, "digest": layer_digest, "size": layer_size}],
        })
        .to_string()
        .into_bytes()
    };
    let huge = |stated| Body::Spaces { len: HUGE, stated };

    struct Case {
        name: &'static str,
        /// Whether `/v2/` asks for a token from `/token`.
        token: bool,
        manifest: Box<dyn Fn() -> Body + Send + Sync>,
        config: Box<dyn Fn() -> Body + Send + Sync>,
        layer: Box<dyn Fn() -> Body + Send + Sync>,
        /// Exit status, words of the message.
        code: i32,
        words: &'static [&'static str],
        /// The request (part of its line) whose answer is bounded, or that must not be made.
        watched: String,
        asked: bool,
    }
    let (c, l, cs, ls) = (
        config.clone(),
        layer_bytes.clone(),
        config.len(),
        layer_bytes.len(),
    );
    let config_body = move || -> Box<dyn Fn() -> Body + Send + Sync> {
        let c = c.clone();
        Box::new(move || Body::Bytes(c.clone()))
    };
    let layer_body = move || -> Box<dyn Fn() -> Body + Send + Sync> {
        let l = l.clone();
        Box::new(move || Body::Bytes(l.clone()))
    };
    let manifest_body = |config_size, layer_size| -> Box<dyn Fn() -> Body + Send + Sync> {
        let m = manifest(config_size, layer_size);
        Box::new(move || Body::Bytes(m.clone()))
    };
    let cases = vec![
        Case {
            name: "manifest of 64 MiB, streamed",
            token: false,
            manifest: Box::new(move || huge(false)),
            config: config_body(),
            layer: layer_body(),
            code: 5,
            words: &["tag \"v1\"", "larger than 4194304 bytes"],
            watched: "/manifests/".into(),
            asked: true,
        },
        Case {
            name: "manifest of 64 MiB, length stated",
            token: false,
            manifest: Box::new(move || huge(true)),
            config: config_body(),
            layer: layer_body(),
            code: 5,
            words: &["tag \"v1\"", "larger than 4194304 bytes"],
            watched: "/manifests/".into(),
            asked: true,
        },
        Case {
            name: "token answer of 64 MiB",
            token: true,
            manifest: manifest_body(cs, ls),
            config: config_body(),
            layer: layer_body(),
            code: 5,
            words: &["token service", "more than 1048576 bytes"],
            watched: "/token".into(),
            asked: true,
        },
        Case {
            name: "config declared 0 bytes",
            token: false,
            manifest: manifest_body(0, ls),
            config: config_body(),
            layer: layer_body(),
            code: 3,
            words: &["config", "size of 0"],
            watched: config_digest.clone(),
            asked: false,
        },
        Case {
            name: "config declared 5 MiB",
            token: false,
            manifest: manifest_body(5 << 20, ls),
            config: config_body(),
            layer: layer_body(),
            code: 5,
            words: &["config", "5242880 bytes"],
            watched: config_digest.clone(),
            asked: false,
        },
        Case {
            name: "config sending 64 MiB",
            token: false,
            manifest: manifest_body(cs, ls),
            config: Box::new(move || huge(false)),
            layer: layer_body(),
            code: 4,
            words: &["config", "digest"],
            watched: config_digest.clone(),
            asked: true,
        },
        Case {
            name: "layer declared 0 bytes",
            token: false,
            manifest: manifest_body(cs, 0),
            config: config_body(),
            layer: layer_body(),
            code: 3,
            words: &["layer", "size of 0"],
            watched: layer_digest.clone(),
            asked: false,
        },
        Case {
            name: "layer sending 64 MiB",
            token: false,
            manifest: manifest_body(cs, ls),
            config: config_body(),
            layer: Box::new(move || huge(false)),
            code: 4,
            words: &["layer 1/1", "digest"],
            watched: layer_digest.clone(),
            asked: true,
        },
    ];
    for case in cases {
        let Case {
            name,
            token,
            manifest,
            config,
            layer,
            code,
            words,
            watched,
            asked,
        } = case;
        let (config_digest, layer_digest) = (config_digest.clone(), layer_digest.clone());
        let server = Hostile::start(move |line, addr| {
            if line.starts_with("GET /v2/ ") {
                return Answer {
                    status: if token { 401 } else { 200 },
                    headers: if token {
                        vec![format!(
                            "WWW-Authenticate: Bearer realm=\"http://{addr}/token\",service=\"hostile\""
                        )]
                    } else {
                        Vec::new()
                    },
                    body: Body::Bytes(Vec::new()),
                };
            }
            if line.starts_with("GET /token") {
                return Answer::ok(huge(false));
            }
            let body = if line.contains("/manifests/") {
                manifest()
            } else if line.contains(&config_digest) {
                config()
            } else if line.contains(&layer_digest) {
                layer()
            } else {
                return Answer {
                    status: 404,
                    headers: Vec::new(),
                    body: Body::Bytes(Vec::new()),
                };
            };
            let mut a = Answer::ok(body);
            if line.contains("/manifests/") {
                a.headers
                    .push("Content-Type: application/vnd.oci.image.manifest.v1+json".into());
            }
            a
        });
        let s = Scratch::new();
        let reference = format!("{}/hostile/img:v1", server.addr);
        let out = s.out("h.ext4");
        let started = Instant::now();
        let o = s.pull_http(&reference, &out, &["--retries", "0"]);
        let took = started.elapsed();
        let mut all = vec![reference.as_str(), "hostile/img"];
        all.extend_from_slice(words);
        let err = failed(&o, code, &all, &out);
        let (sent, requests) = server.sent(&watched);
        eprintln!(
            "{name}: {sent} bytes sent in {requests} requests for {watched}, {took:?}: {err}"
        );
        if asked {
            assert!(requests >= 1, "{name}: {watched} was not asked for");
            assert!(
                sent <= READ_AT_MOST,
                "{name}: {sent} bytes of {watched} were sent"
            );
        } else {
            assert_eq!(requests, 0, "{name}: {watched} was asked for");
        }
        assert!(took < Duration::from_secs(20), "{name}: {took:?}");
        assert_cache_sound(&s.cache());
    }
}
