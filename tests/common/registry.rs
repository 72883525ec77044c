//! A real registry for tests: Debian's `docker-registry` (the CNCF Distribution registry) on
//! 127.0.0.1 with a free port and a temporary storage directory, stopped when dropped; a TCP
//! proxy in front of it that counts requests and can cut or stall a blob download; and pushing
//! images with oci-client.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::oci::{digest, ImageSpec};

/// A user and password the htpasswd registries accept, with its bcrypt hash (cost 4, so that
/// each request is checked quickly).
pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-Pw";
const BCRYPT: &str = "$2b$04$abcdefghijklmnopqrstuuOftTEVuLUV6DP7.YKB1iaB63V3zAQ8i";

/// Where the registry binary is, if installed.
pub fn registry_binary() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/docker-registry");
    if p.is_file() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("docker-registry"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// TLS files for a registry: a CA, and a server certificate for 127.0.0.1 that it signed.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    /// Makes a CA and a server certificate with `openssl`; `None` when it is not installed.
    pub fn make(dir: &Path) -> Option<Tls> {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .ok()?;
            if !out.status.success() {
                eprintln!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
                return None;
            }
            Some(())
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=oci2ext4 test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ])?;
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ])?;
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .ok()?;
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "ext.cnf",
        ])?;
        Some(Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        })
    }
}

/// How a registry is set up.
#[derive(Default)]
pub struct Setup<'a> {
    /// Require basic auth (htpasswd) for [`USER`] / [`PASSWORD`].
    pub htpasswd: bool,
    /// Serve TLS with these files.
    pub tls: Option<&'a Tls>,
}

/// A running registry; stopped (killed) on drop.
pub struct Registry {
    child: Arc<Mutex<Option<Child>>>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; `None` (after printing SKIP) when the binary is missing.
    pub fn start(what: &str, setup: Setup) -> Option<Registry> {
        let Some(bin) = registry_binary() else {
            super::skip(
                what,
                "docker-registry is not installed (apt-get install docker-registry)",
            );
            return None;
        };
        let mut dir = tempfile::Builder::new()
            .prefix("oci2ext4-registry")
            .tempdir()
            .unwrap();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            );
            if let Some(tls) = setup.tls {
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    tls.cert.display(),
                    tls.key.display()
                ));
            }
            if setup.htpasswd {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{USER}:{BCRYPT}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: oci2ext4-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let reg = Registry {
                child: Arc::new(Mutex::new(Some(child))),
                addr,
                dir,
            };
            if reg.wait_ready() {
                return Some(reg);
            }
            // Most likely the port was taken meanwhile: try another.
            reg.stop();
            last = std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default();
            dir = reg.into_dir();
        }
        panic!("docker-registry did not start:\n{last}");
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn wait_ready(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(c) = self.child.lock().unwrap().as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    eprintln!("docker-registry exited: {status}");
                    return false;
                }
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The registry's storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps blob `digest` (`sha256:...`).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = &digest[7..];
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// A function that stops the registry (for the proxy to call mid-download).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let child = self.child.clone();
        move || {
            if let Some(mut c) = child.lock().unwrap().take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Stops the registry now.
    pub fn stop(&self) {
        (self.stopper())();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the proxy does to the download of one blob.
pub struct Fault {
    /// Hex digits of the blob's digest.
    pub blob_hex: String,
    /// Response bytes passed before the fault.
    pub after: usize,
    /// How many downloads of the blob it affects.
    pub times: usize,
    /// Stall (send nothing more) instead of cutting the connection.
    pub stall: bool,
    /// Answer with this HTTP status instead of passing the request on.
    pub status: Option<u16>,
    /// Called when the fault strikes (to stop the registry, say).
    pub on_fault: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Fault {
    /// Cuts the connection after `after` response bytes of blob `digest` (`sha256:...`), on its
    /// next `times` downloads.
    pub fn cut(digest: &str, after: usize, times: usize) -> Fault {
        Fault {
            blob_hex: digest.strip_prefix("sha256:").unwrap().to_string(),
            after,
            times,
            stall: false,
            status: None,
            on_fault: None,
        }
    }

    /// Sends nothing more after `after` response bytes of blob `digest`, on its next `times`
    /// downloads.
    pub fn stall(digest: &str, after: usize, times: usize) -> Fault {
        Fault {
            stall: true,
            ..Fault::cut(digest, after, times)
        }
    }

    /// Answers the next `times` requests for blob `digest` with HTTP `code`.
    pub fn status(digest: &str, code: u16, times: usize) -> Fault {
        Fault {
            status: Some(code),
            ..Fault::cut(digest, 0, times)
        }
    }

    /// Also calls `f` when the fault strikes.
    pub fn then(self, f: impl Fn() + Send + Sync + 'static) -> Fault {
        Fault {
            on_fault: Some(Box::new(f)),
            ..self
        }
    }
}

/// A TCP proxy in front of a registry that counts the requests it sees and can cut or stall a
/// blob download. Stops on drop.
pub struct Proxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    blob_gets: Arc<AtomicUsize>,
    manifest_gets: Arc<AtomicUsize>,
    fault: Arc<Mutex<Option<Fault>>>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `upstream`.
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let upstream = upstream.to_string();
        let blob_gets = Arc::new(AtomicUsize::new(0));
        let manifest_gets = Arc::new(AtomicUsize::new(0));
        let fault: Arc<Mutex<Option<Fault>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (blob_gets, manifest_gets, fault, stop, conns) = (
                blob_gets.clone(),
                manifest_gets.clone(),
                fault.clone(),
                stop.clone(),
                conns.clone(),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let client = match listener.accept() {
                        Ok((c, _)) => c,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        Err(_) => break,
                    };
                    client.set_nonblocking(false).unwrap();
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        // The registry is gone: close at once, as a dead host would.
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    conns.lock().unwrap().push(client.try_clone().unwrap());
                    conns.lock().unwrap().push(server.try_clone().unwrap());
                    let conn = Conn {
                        armed: Arc::new(Mutex::new(None)),
                        closed: Arc::new(AtomicBool::new(false)),
                    };
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = {
                        let (conn, blob_gets, manifest_gets, fault) = (
                            conn.clone(),
                            blob_gets.clone(),
                            manifest_gets.clone(),
                            fault.clone(),
                        );
                        move || {
                            client_to_server(client, server, conn, blob_gets, manifest_gets, fault)
                        }
                    };
                    thread::spawn(up);
                    let stop = stop.clone();
                    let fault = fault.clone();
                    thread::spawn(move || server_to_client(s2, c2, conn, fault, stop));
                }
            })
        };
        Proxy {
            addr,
            blob_gets,
            manifest_gets,
            fault,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// GET requests for blobs seen so far.
    pub fn blob_gets(&self) -> usize {
        self.blob_gets.load(Ordering::SeqCst)
    }

    /// GET requests for manifests seen so far.
    pub fn manifest_gets(&self) -> usize {
        self.manifest_gets.load(Ordering::SeqCst)
    }

    /// Sets the fault for the next downloads.
    pub fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap() = Some(f);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct Conn {
    /// Response bytes left before the fault, once a faulty request was seen.
    armed: Arc<Mutex<Option<(usize, bool)>>>,
    closed: Arc<AtomicBool>,
}

fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    conn: Conn,
    blob_gets: Arc<AtomicUsize>,
    manifest_gets: Arc<AtomicUsize>,
    fault: Arc<Mutex<Option<Fault>>>,
) {
    let mut buf = vec![0u8; 64 << 10];
    let mut line = Vec::new();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut answer = None;
        // Request lines: pulls send no bodies, so every line is a request or header line.
        for &b in &buf[..n] {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                line.clear();
                if let Some(path) = text.strip_prefix("GET ") {
                    if path.contains("/blobs/") {
                        blob_gets.fetch_add(1, Ordering::SeqCst);
                    }
                    if path.contains("/manifests/") {
                        manifest_gets.fetch_add(1, Ordering::SeqCst);
                    }
                    let mut f = fault.lock().unwrap();
                    if let Some(fl) = f.as_mut() {
                        if fl.times > 0 && path.contains(&fl.blob_hex) && path.contains("/blobs/") {
                            fl.times -= 1;
                            match fl.status {
                                Some(code) => answer = Some(code),
                                None => *conn.armed.lock().unwrap() = Some((fl.after, fl.stall)),
                            }
                        }
                    }
                }
            } else {
                line.push(b);
            }
        }
        if let Some(code) = answer {
            let _ = client.write_all(
                format!(
                    "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
            break;
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    conn.closed.store(true, Ordering::SeqCst);
    let _ = server.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
}

fn server_to_client(
    mut server: TcpStream,
    mut client: TcpStream,
    conn: Conn,
    fault: Arc<Mutex<Option<Fault>>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut armed = conn.armed.lock().unwrap();
        if let Some((left, stall)) = armed.as_mut() {
            if n >= *left {
                let _ = client.write_all(&buf[..*left]);
                let stall = *stall;
                *armed = None;
                drop(armed);
                if let Some(f) = fault.lock().unwrap().as_ref() {
                    if let Some(cb) = &f.on_fault {
                        cb();
                    }
                }
                if stall {
                    while !conn.closed.load(Ordering::SeqCst) && !stop.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(20));
                    }
                }
                break;
            }
            *left -= n;
        }
        drop(armed);
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// Pushes images to a registry with oci-client.
pub struct Pusher {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    pub addr: String,
}

/// One image to push: its layers and platform, and which manifest media types.
pub struct PushImage {
    pub spec: ImageSpec,
    /// Docker media types (v2 schema 2) rather than OCI.
    pub docker: bool,
}

impl PushImage {
    pub fn new(layers: Vec<(Vec<u8>, &str, Vec<u8>)>) -> Self {
        PushImage {
            spec: ImageSpec::new(layers),
            docker: false,
        }
    }
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

impl Pusher {
    pub fn new(addr: &str, tls_ca: Option<&Path>, basic: bool) -> Pusher {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut config = ClientConfig {
            protocol: if tls_ca.is_some() {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            ..ClientConfig::default()
        };
        if let Some(ca) = tls_ca {
            config
                .extra_root_certificates
                .push(oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: std::fs::read(ca).unwrap(),
                });
        }
        let client = Client::try_from(config).unwrap();
        let auth = if basic {
            RegistryAuth::Basic(USER.into(), PASSWORD.into())
        } else {
            RegistryAuth::Anonymous
        };
        Pusher {
            rt,
            client,
            auth,
            addr: addr.to_string(),
        }
    }

    fn reference(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.addr.clone(), repo.to_string(), tag.to_string())
    }

    fn blob(&self, r: &Reference, data: &[u8]) -> String {
        let d = digest(data);
        self.rt
            .block_on(self.client.push_blob(r, data.to_vec(), &d))
            .unwrap_or_else(|e| panic!("push blob: {e}"));
        d
    }

    fn manifest(&self, r: &Reference, body: &[u8], media_type: &str) {
        self.rt
            .block_on(self.client.push_manifest_raw(
                r,
                body.to_vec(),
                reqwest::header::HeaderValue::from_str(media_type).unwrap(),
            ))
            .unwrap_or_else(|e| panic!("push manifest: {e}"));
    }

    fn login(&self, r: &Reference) {
        self.rt
            .block_on(self.client.auth(r, &self.auth, RegistryOperation::Push))
            .unwrap_or_else(|e| panic!("auth: {e}"));
    }

    /// Pushes an image's blobs and manifest (by digest); returns (manifest bytes, media type).
    fn image(&self, repo: &str, image: &PushImage) -> (Vec<u8>, String) {
        self.image_declaring(repo, image, &|_, size| size)
    }

    /// [`Pusher::image`], with the manifest declaring `size_of(index, size)` for each layer.
    fn image_declaring(
        &self,
        repo: &str,
        image: &PushImage,
        size_of: &dyn Fn(usize, u64) -> u64,
    ) -> (Vec<u8>, String) {
        let r = self.reference(repo, "x");
        self.login(&r);
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, (blob, media, tar)) in image.spec.layers.iter().enumerate() {
            let d = self.blob(&r, blob);
            let size = size_of(i, blob.len() as u64);
            layers.push(serde_json::json!({"mediaType": media, "digest": d, "size": size}));
            diff_ids.push(digest(tar));
        }
        let mut config = serde_json::json!({
            "architecture": image.spec.arch, "os": image.spec.os,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        if let Some(v) = &image.spec.variant {
            config["variant"] = serde_json::json!(v);
        }
        let config = serde_json::to_vec(&config).unwrap();
        let cd = self.blob(&r, &config);
        let (mt, config_mt) = if image.docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        };
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": config_mt, "digest": cd, "size": config.len()},
            "layers": layers,
        }))
        .unwrap();
        let md = digest(&manifest);
        let by_digest = Reference::with_digest(self.addr.clone(), repo.to_string(), md);
        self.manifest(&by_digest, &manifest, mt);
        (manifest, mt.to_string())
    }

    /// Pushes one image as `repo:tag` with a manifest declaring other layer sizes.
    pub fn push_declaring(
        &self,
        repo: &str,
        tag: &str,
        image: &PushImage,
        size_of: &dyn Fn(usize, u64) -> u64,
    ) {
        let (manifest, mt) = self.image_declaring(repo, image, size_of);
        self.manifest(&self.reference(repo, tag), &manifest, &mt);
    }

    /// Pushes one image as `repo:tag`; returns its manifest digest.
    pub fn push(&self, repo: &str, tag: &str, image: &PushImage) -> String {
        let (manifest, mt) = self.image(repo, image);
        self.manifest(&self.reference(repo, tag), &manifest, &mt);
        digest(&manifest)
    }

    /// Pushes several images under one index (a Docker manifest list when `docker`) as
    /// `repo:tag`; returns (index digest, manifest digests).
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        images: &[&PushImage],
        docker: bool,
    ) -> (String, Vec<String>) {
        let mut entries = Vec::new();
        let mut digests = Vec::new();
        for image in images {
            let (manifest, mt) = self.image(repo, image);
            let d = digest(&manifest);
            entries.push(serde_json::json!({
                "mediaType": mt, "digest": d, "size": manifest.len(), "platform": image.spec.platform(),
            }));
            digests.push(d);
        }
        let mt = if docker { DOCKER_LIST } else { OCI_INDEX };
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt, "manifests": entries,
        }))
        .unwrap();
        self.manifest(&self.reference(repo, tag), &index, mt);
        (digest(&index), digests)
    }
}

/// The body of a [`Hostile`] server's answer.
pub enum Body {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` spaces, with a `Content-Length` header when `stated`, else until the connection
    /// closes.
    Spaces { len: usize, stated: bool },
}

/// An answer of a [`Hostile`] server: status, extra header lines, body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<String>,
    pub body: Body,
}

impl Answer {
    /// HTTP 200 with `body`.
    pub fn ok(body: Body) -> Answer {
        Answer {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }
}

/// A hand-written HTTP server that answers each request (`GET /path`, its own address) as its
/// function says, one request per connection, and counts the body bytes it got to send per
/// path. Stops on drop.
pub struct Hostile {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    sent: Arc<Mutex<Vec<(String, usize)>>>,
    /// Connections being served.
    active: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Hostile {
    /// Starts a server answering with `route(request line, own address)`.
    pub fn start(route: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let sent: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let route = Arc::new(route);
        let thread = {
            let (sent, stop, addr, active) =
                (sent.clone(), stop.clone(), addr.clone(), active.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        Err(_) => break,
                    };
                    let (sent, route, addr) = (sent.clone(), route.clone(), addr.clone());
                    active.fetch_add(1, Ordering::SeqCst);
                    let active = active.clone();
                    thread::spawn(move || {
                        serve(stream, &*route, &addr, &sent);
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Hostile {
            addr,
            sent,
            active,
            stop,
            thread: Some(thread),
        }
    }

    /// Body bytes sent for requests whose line contains `part`, and how many such requests
    /// there were, once the connections open have been served (within 10 s).
    pub fn sent(&self, part: &str) -> (usize, usize) {
        let started = Instant::now();
        while self.active.load(Ordering::SeqCst) > 0 && started.elapsed() < Duration::from_secs(10)
        {
            thread::sleep(Duration::from_millis(5));
        }
        let sent = self.sent.lock().unwrap();
        let hits: Vec<usize> = sent
            .iter()
            .filter(|(l, _)| l.contains(part))
            .map(|(_, n)| *n)
            .collect();
        (hits.iter().sum(), hits.len())
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    route: &(dyn Fn(&str, &str) -> Answer + Send + Sync),
    addr: &str,
    sent: &Mutex<Vec<(String, usize)>>,
) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let line = line.trim_end().to_string();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let answer = route(&line, addr);
    let mut head = format!("HTTP/1.1 {} Answer\r\nConnection: close\r\n", answer.status);
    for h in &answer.headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    match &answer.body {
        Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Spaces { len, stated: true } => head.push_str(&format!("Content-Length: {len}\r\n")),
        Body::Spaces { .. } => {}
    }
    head.push_str("\r\n");
    let mut stream = stream;
    let mut count = 0;
    if stream.write_all(head.as_bytes()).is_ok() {
        match &answer.body {
            Body::Bytes(b) => {
                if stream.write_all(b).is_ok() {
                    count = b.len();
                }
            }
            Body::Spaces { len, .. } => {
                let chunk = vec![b' '; 64 << 10];
                while count < *len {
                    let n = chunk.len().min(len - count);
                    if stream.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    count += n;
                }
            }
        }
    }
    sent.lock().unwrap().push((line, count));
    let _ = stream.shutdown(Shutdown::Both);
}
