//! Talking to a registry through oci-client: TLS roots, plain HTTP for local registries,
//! authentication, retries with backoff, and errors that say what went wrong in one line
//! without a secret in it.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci_client::client::{
    BlobResponse, Certificate, CertificateEncoding, ClientConfig, ClientProtocol, SizedStream,
};
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, ErrorKind, Result};
use crate::oci::MAX_DOCUMENT;

use super::auth::{Credentials, FoundCredentials};
use super::reference::ImageReference;

/// Media types asked for when fetching a manifest. Schema 1 is listed last so that a registry
/// that has nothing else says so, and the error can name it.
const MANIFEST_TYPES: [&str; 6] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];

/// The longest a connection may stay silent before the request is retried.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How registries are reached.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportOptions {
    /// Use plain HTTP for every registry.
    pub plain_http: bool,
    /// Registries (`host[:port]`) to reach over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// PEM files of extra CA certificates to trust, beside the system's.
    pub ca_certs: Vec<PathBuf>,
    /// How many times a failed request (connection error, HTTP 429 or 5xx) is tried again.
    pub retries: u32,
    /// The longest one layer's download may take, retries included.
    pub layer_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            plain_http: false,
            insecure_registries: Vec::new(),
            ca_certs: Vec::new(),
            retries: 4,
            layer_timeout: Duration::from_secs(3600),
        }
    }
}

/// Whether `registry` is this machine (`localhost`, `127.0.0.0/8`, `[::1]`), which Docker and
/// crane reach over plain HTTP when HTTPS does not answer.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// The delay before retry number `attempt` (from 0): 200 ms, doubling, at most 5 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(10))).min(Duration::from_secs(5))
}

/// The text of an error and its causes, innermost last.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut v = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        v.push(c.to_string());
        cur = c.source();
    }
    v
}

/// The innermost cause of an error, which says what actually happened.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    chain(e).pop().unwrap_or_default()
}

/// Whether a request failed because the server's certificate is not trusted.
fn is_certificate_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e)
        .iter()
        .any(|m| m.to_lowercase().contains("certificate"))
}

/// Whether a request failed in TLS (an untrusted certificate, or TLS spoken to plain HTTP).
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    chain(e).iter().any(|m| {
        let m = m.to_lowercase();
        m.contains("certificate")
            || m.contains("corrupt message")
            || m.contains("tls")
            || m.contains("handshake")
    })
}

/// Whether an error is worth another try: a connection failure, a stream cut short, HTTP 429
/// or 5xx. Digest mismatches, refusals and TLS failures are not.
pub fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => !r.is_builder() && !is_tls_failure(r),
        OciDistributionError::ServerError { code, .. } => *code == 429 || (500..600).contains(code),
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        OciDistributionError::IoError(io) => !is_digest_error(io) && our_error(io).is_none(),
        _ => false,
    }
}

/// Whether an I/O error from a blob stream is oci-client's digest check failing.
pub fn is_digest_error(io: &std::io::Error) -> bool {
    io.get_ref()
        .is_some_and(|i| i.is::<oci_client::errors::DigestError>())
}

/// Shortens a server's message for one line.
fn short(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 160 {
        format!("{}...", one_line.chars().take(160).collect::<String>())
    } else {
        one_line
    }
}

/// A connection to one repository of one registry, authenticated.
pub struct Session {
    client: Client,
    /// Our own HTTP client, for what oci-client would read whole: the ping, tokens and
    /// manifests.
    http: reqwest::Client,
    /// `http` or `https`.
    scheme: &'static str,
    /// The host requests go to (`registry-1.docker.io` for `docker.io`).
    host: String,
    credentials: Credentials,
    /// The registry's token service, when it has one.
    token_service: Option<TokenService>,
    /// The current bearer token from the token service.
    token: tokio::sync::Mutex<Option<Token>>,
    reference: oci_client::Reference,
    registry: String,
    repository: String,
    credentials_origin: Option<String>,
    retries: u32,
}

/// Where a registry hands out bearer tokens (from its `WWW-Authenticate: Bearer` challenge).
#[derive(Clone, Debug)]
struct TokenService {
    realm: String,
    service: Option<String>,
}

/// A bearer token and when to ask for a new one.
struct Token {
    value: String,
    renew_at: Instant,
}

fn read_ca_certs(paths: &[PathBuf]) -> Result<Vec<Certificate>> {
    let mut certs = Vec::new();
    for p in paths {
        let data = std::fs::read(p)
            .map_err(|e| Error::io(format!("cannot read --ca-cert {}", p.display()), e))?;
        let text = String::from_utf8_lossy(&data);
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        let found: Vec<&str> = text.match_indices(BEGIN).map(|(i, _)| &text[i..]).collect();
        if found.is_empty() {
            // Maybe DER.
            certs.push(Certificate {
                encoding: CertificateEncoding::Der,
                data,
            });
            continue;
        }
        for block in found {
            let end = block
                .find("-----END CERTIFICATE-----")
                .map(|i| i + "-----END CERTIFICATE-----".len())
                .ok_or_else(|| {
                    Error::invalid(format!("{}: a certificate has no END line", p.display()))
                })?;
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: block.as_bytes()[..end].to_vec(),
            });
        }
    }
    Ok(certs)
}

fn make_client(
    opts: &TransportOptions,
    certs: &[Certificate],
    protocol: ClientProtocol,
) -> Result<Client> {
    let config = ClientConfig {
        protocol,
        extra_root_certificates: certs.to_vec(),
        read_timeout: Some(READ_TIMEOUT.min(opts.layer_timeout)),
        connect_timeout: Some(CONNECT_TIMEOUT),
        user_agent: concat!("oci2ext4/", env!("CARGO_PKG_VERSION")),
        platform_resolver: None,
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| {
        Error::new(
            ErrorKind::Registry,
            format!("cannot set up the HTTP client: {}", root_cause(&e)),
        )
    })
}

fn reqwest_client(certs: &[Certificate]) -> Result<reqwest::Client> {
    let mut certificates = Vec::new();
    for c in certs {
        let cert = match c.encoding {
            CertificateEncoding::Pem => reqwest::Certificate::from_pem(&c.data),
            CertificateEncoding::Der => reqwest::Certificate::from_der(&c.data),
        };
        certificates.push(cert.map_err(|e| {
            Error::invalid(format!(
                "a --ca-cert certificate is not valid: {}",
                root_cause(&e)
            ))
        })?);
    }
    reqwest::Client::builder()
        .tls_certs_merge(certificates)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(READ_TIMEOUT)
        .user_agent(concat!("oci2ext4/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| http_client_error(&e))
}

/// Why an HTTP client could not be built; in practice, a system without CA certificates.
fn http_client_error(e: &reqwest::Error) -> Error {
    let cause = root_cause(e);
    let hint = if cause.contains("CA certificates") {
        " (no usable CA certificates on this system: install them, e.g. the ca-certificates \
         package, or point SSL_CERT_FILE at a PEM file of CA certificates)"
    } else {
        ""
    };
    Error::new(
        ErrorKind::Registry,
        format!("cannot set up the HTTP client: {cause}{hint}"),
    )
}

/// Percent-encodes a form value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parameters of a `Bearer` challenge (`realm`, `service`, ...).
pub fn parse_bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = Vec::new();
    let mut s = params.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim().to_lowercase();
        let after = after.trim_start();
        let (value, rest) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

impl Session {
    /// Connects to the repository of `reference`: picks the protocol, authenticates (a bearer
    /// token from the registry's token service, or basic auth), and checks the registry answers.
    pub async fn connect(
        reference: &ImageReference,
        opts: &TransportOptions,
        credentials: FoundCredentials,
    ) -> Result<Self> {
        let certs = read_ca_certs(&opts.ca_certs)?;
        let registry = reference.registry().to_string();
        let explicit_http = opts.plain_http || opts.insecure_registries.contains(&registry);
        let client_ref = reference.to_client();
        let host = client_ref.resolve_registry().to_string();
        let protocols: Vec<ClientProtocol> = if explicit_http {
            vec![ClientProtocol::Http]
        } else if is_loopback(&registry) {
            vec![ClientProtocol::Https, ClientProtocol::Http]
        } else {
            vec![ClientProtocol::Https]
        };
        // oci-client fills the rest of its client with defaults, one of which is an HTTP
        // client built with the system's CA certificates only; reqwest panics when there are
        // none (an empty chroot, a scratch container), even where --ca-cert gives roots. Build
        // that default once first, so that its failure is an error that says what is missing.
        reqwest::Client::builder()
            .build()
            .map_err(|e| http_client_error(&e))?;
        let http = reqwest_client(&certs)?;
        let mut last_err = None;
        for (i, protocol) in protocols.iter().enumerate() {
            let scheme = if *protocol == ClientProtocol::Http {
                "http"
            } else {
                "https"
            };
            let mut session = Session {
                client: make_client(opts, &certs, protocol.clone())?,
                http: http.clone(),
                scheme,
                host: host.clone(),
                credentials: credentials.credentials.clone(),
                token_service: None,
                token: tokio::sync::Mutex::new(None),
                reference: client_ref.clone(),
                registry: registry.clone(),
                repository: reference.repository().to_string(),
                credentials_origin: credentials.origin.clone(),
                retries: opts.retries,
            };
            // A local registry that does not speak TLS: fall back to plain HTTP at once.
            let retries = if i + 1 < protocols.len() {
                0
            } else {
                opts.retries
            };
            let result = session
                .retry_n(retries, "the registry", || session.ping())
                .await;
            match result {
                Ok(service) => {
                    session.token_service = service;
                    session.authenticate().await?;
                    return Ok(session);
                }
                // HTTPS did not answer (no TLS there, or nothing): try plain HTTP. A certificate
                // that is not trusted is reported as it is.
                Err((e, Some(OciDistributionError::RequestError(r))))
                    if i + 1 < protocols.len() && !is_certificate_failure(&r) =>
                {
                    last_err = Some(e);
                }
                Err((e, _)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::new(ErrorKind::Registry, "no protocol to try")))
    }

    /// Asks the registry (`GET /v2/`) how to authenticate: the token service its `Bearer`
    /// challenge names, if any. The answer's body is not read.
    async fn ping(&self) -> std::result::Result<Option<TokenService>, OciDistributionError> {
        let url = format!("{}://{}/v2/", self.scheme, self.host);
        let resp = self.http.get(&url).send().await?;
        let status = resp.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(OciDistributionError::ServerError {
                code: status.as_u16(),
                url,
                message: String::new(),
            });
        }
        let challenge = resp
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_bearer_challenge);
        Ok(challenge.and_then(|c| {
            let get = |k: &str| c.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            Some(TokenService {
                realm: get("realm")?,
                service: get("service"),
            })
        }))
    }

    /// Hands oci-client what it needs to authenticate its requests: a bearer token from the
    /// token service, or the credentials themselves (basic auth) when there is none.
    async fn authenticate(&self) -> Result<()> {
        if self.token_service.is_some() {
            return self
                .retry("a token from the token service", || self.fresh_token())
                .await;
        }
        let auth = match &self.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::IdentityToken(_) => {
                return Err(Error::new(
                    ErrorKind::Registry,
                    format!(
                        "{} offers no token service, so the identity token in the credentials cannot be used",
                        self.registry
                    ),
                ))
            }
        };
        self.client
            .store_auth_if_needed(self.reference.resolve_registry(), &auth)
            .await;
        Ok(())
    }

    /// Makes sure the bearer token is fresh (when the registry has a token service): asks for
    /// a new one when it is due, and gives it to oci-client.
    ///
    /// oci-client keeps a token 60 seconds unless it says otherwise, and then falls back to the
    /// first token it was given; asking again within that time, before each request, means it
    /// always holds the newest.
    async fn fresh_token(&self) -> std::result::Result<(), OciDistributionError> {
        let Some(service) = &self.token_service else {
            return Ok(());
        };
        let mut token = self.token.lock().await;
        if token.as_ref().is_some_and(|t| Instant::now() < t.renew_at) {
            return Ok(());
        }
        let (value, lifetime) = fetch_token(
            &self.http,
            service,
            &self.registry,
            &self.repository,
            &self.credentials,
        )
        .await?;
        self.client
            .auth(
                &self.reference,
                &RegistryAuth::Bearer(value.clone()),
                RegistryOperation::Pull,
            )
            .await?;
        *token = Some(Token {
            value,
            renew_at: Instant::now() + lifetime.min(TOKEN_RENEWAL) * 4 / 5,
        });
        Ok(())
    }

    /// The registry's name.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Calls `f` until it succeeds, it fails in a way not worth retrying, or the retries are
    /// used up, waiting longer each time. The error names `what`.
    pub async fn retry<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        self.retry_n(self.retries, what, f)
            .await
            .map_err(|(e, _)| e)
    }

    async fn retry_n<T, F, Fut>(
        &self,
        retries: u32,
        what: &str,
        mut f: F,
    ) -> std::result::Result<T, (Error, Option<OciDistributionError>)>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, OciDistributionError>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < retries && retryable(&e) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    let mut err = self.describe(&e, what);
                    if attempt > 0 {
                        err = Error::new(
                            err.kind(),
                            format!("{} (after {} attempts)", err.message(), attempt + 1),
                        );
                    }
                    return Err((err, Some(e)));
                }
            }
        }
    }

    /// Fetches the manifest (or index) `reference` names, as bytes: at most [`MAX_DOCUMENT`] (4 MiB, the limit every document reader of the crate applies)
    /// of them, and, when the registry states the manifest's digest, checked against it.
    pub async fn manifest(&self, reference: &ImageReference) -> Result<Vec<u8>> {
        let r = reference.to_client();
        let what = match reference.digest() {
            Some(d) => format!("manifest {d}"),
            None => format!("tag {:?}", reference.tag().unwrap_or("latest")),
        };
        self.retry(&what, || self.manifest_once(&r, &what)).await
    }

    /// One request for a manifest. oci-client reads a manifest whole before anything can look
    /// at its size, so the request is ours, authenticated as oci-client's are.
    async fn manifest_once(
        &self,
        r: &oci_client::Reference,
        what: &str,
    ) -> std::result::Result<Vec<u8>, OciDistributionError> {
        self.fresh_token().await?;
        let name = r.digest().or(r.tag()).unwrap_or("latest");
        let url = format!(
            "{}://{}/v2/{}/manifests/{name}",
            self.scheme,
            self.host,
            r.repository()
        );
        let mut request = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, MANIFEST_TYPES.join(", "));
        if let Some(t) = self.token.lock().await.as_ref() {
            request = request.bearer_auth(&t.value);
        } else if let Credentials::Basic { username, password } = &self.credentials {
            request = request.basic_auth(username, Some(password));
        }
        let mut resp = request.send().await?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            let (body, _) = read_up_to(&mut resp, MAX_ERROR_BODY).await?;
            return Err(status_error(status, &body, url));
        }
        let stated = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let (body, whole) = read_up_to(&mut resp, MAX_DOCUMENT).await?;
        if !whole {
            return Err(ours(Error::limit(format!(
                "the {what} of {} at {} is larger than {MAX_DOCUMENT} bytes; the rest is not read",
                self.repository, self.registry
            ))));
        }
        if let Some(stated) = stated {
            check_stated_digest(&stated, &body).map_err(|got| {
                ours(Error::new(
                    ErrorKind::DigestMismatch,
                    format!(
                        "the {what} of {} from {} does not match its digest: the registry states {stated}, the bytes are {got}",
                        self.repository, self.registry
                    ),
                ))
            })?;
        }
        Ok(body)
    }

    /// Fetches a small blob (a config) of `size` bytes whole: never more than `size` bytes of
    /// it are read, so its digest (checked by the caller) fails when the registry sends more.
    /// `size` is at most [`MAX_DOCUMENT`], checked by the caller before.
    pub async fn small_blob(&self, digest: &str, size: u64) -> Result<Vec<u8>> {
        let what = format!("blob {digest}");
        let size = usize::try_from(size.min(MAX_DOCUMENT)).unwrap_or(usize::MAX);
        self.retry(&what, || async {
            self.fresh_token().await?;
            let mut stream = self
                .client
                .pull_blob_stream(&self.reference, digest)
                .await?;
            let mut data = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let room = size - data.len();
                data.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if data.len() == size {
                    break;
                }
            }
            Ok(data)
        })
        .await
    }

    /// Opens blob `digest` from byte `offset`. Returns the stream and how many of its first
    /// bytes to skip (when the registry ignored the range and sent the whole blob).
    pub async fn open_blob(
        &self,
        digest: &str,
        offset: u64,
    ) -> std::result::Result<(SizedStream, u64), OciDistributionError> {
        self.fresh_token().await?;
        if offset == 0 {
            return Ok((
                self.client
                    .pull_blob_stream(&self.reference, digest)
                    .await?,
                0,
            ));
        }
        match self
            .client
            .pull_blob_stream_partial(&self.reference, digest, offset, None)
            .await?
        {
            BlobResponse::Partial(s) => Ok((s, 0)),
            BlobResponse::Full(s) => Ok((s, offset)),
        }
    }

    /// One line saying what went wrong, naming `what` was asked for and never a secret.
    pub fn describe(&self, e: &OciDistributionError, what: &str) -> Error {
        let reg = &self.registry;
        let registry_error = |m: String| Error::new(ErrorKind::Registry, m);
        let refused = || {
            match &self.credentials_origin {
            Some(origin) => registry_error(format!(
                "{reg} refused the credentials from {origin} (wrong user name or password?)"
            )),
            None => registry_error(format!(
                "{reg} requires authentication: give --username with --password-stdin, or log in with docker login or podman login"
            )),
        }
        };
        if let OciDistributionError::IoError(io) = e {
            if let Some(err) = our_error(io) {
                return Error::new(err.kind(), err.message());
            }
        }
        match e {
            OciDistributionError::UnauthorizedError { .. } => refused(),
            OciDistributionError::AuthenticationFailure(reason) => match &self.credentials_origin {
                Some(origin) => registry_error(format!(
                    "the token service of {reg} refused the credentials from {origin}: {}",
                    short(reason)
                )),
                None => registry_error(format!(
                    "the token service of {reg} refused anonymous access: {}",
                    short(reason)
                )),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let first = envelope.errors.first();
                let code = first.map(|e| &e.code);
                let message = first.map(|e| short(&e.message)).unwrap_or_default();
                match code {
                    Some(OciErrorCode::ManifestUnknown) => registry_error(format!(
                        "{reg} has no {what} in {} (manifest unknown)",
                        self.repository
                    )),
                    Some(OciErrorCode::NameUnknown) => registry_error(format!(
                        "{reg} has no repository {} (name unknown)",
                        self.repository
                    )),
                    Some(OciErrorCode::BlobUnknown) => {
                        registry_error(format!("{reg} has no {what} (blob unknown)"))
                    }
                    Some(OciErrorCode::Unauthorized) => refused(),
                    Some(OciErrorCode::Denied) => registry_error(format!(
                        "{reg} denied access to {}: {message}",
                        self.repository
                    )),
                    Some(OciErrorCode::Toomanyrequests) => registry_error(format!(
                        "{reg} is limiting requests (too many requests): {message}"
                    )),
                    Some(c) => registry_error(format!("{reg} refused {what}: {c:?}: {message}")),
                    None => registry_error(format!("{reg} refused {what}")),
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                401 => refused(),
                404 => registry_error(format!("{reg} has no {what} (HTTP 404)")),
                _ => registry_error(format!(
                    "{reg} answered HTTP {code} for {what}: {}",
                    short(message)
                )),
            },
            OciDistributionError::RequestError(r) if is_tls_failure(r) => registry_error(format!(
                "TLS with {reg} failed: {}; trust its CA with --ca-cert, or use --plain-http for a registry without TLS",
                root_cause(r)
            )),
            OciDistributionError::RequestError(r) if r.is_timeout() => {
                registry_error(format!("{reg} did not answer in time for {what}"))
            }
            OciDistributionError::RequestError(r) => {
                registry_error(format!("cannot reach {reg}: {}", root_cause(r)))
            }
            OciDistributionError::IoError(io) if is_digest_error(io) => Error::new(
                ErrorKind::DigestMismatch,
                format!("{what} from {reg} does not match its digest: {}", root_cause(io)),
            ),
            OciDistributionError::IoError(io) => registry_error(format!(
                "connection to {reg} failed while reading {what}: {}",
                root_cause(io)
            )),
            OciDistributionError::DigestError(d) => Error::new(
                ErrorKind::DigestMismatch,
                format!("{what} from {reg} does not match its digest: {d}"),
            ),
            OciDistributionError::GenericError(Some(m)) => registry_error(m.clone()),
            other => registry_error(format!("{what} from {reg}: {}", short(&other.to_string()))),
        }
    }
}

/// The largest token service answer read.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;
/// How much of an error answer is read, for its message.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// The longest a bearer token is used before a new one is asked for (the token specification's
/// default lifetime; oci-client's too).
const TOKEN_RENEWAL: Duration = Duration::from_secs(60);

/// An error of ours carried through oci-client's error type (so that the retry loop passes it
/// on as it is).
fn ours(e: Error) -> OciDistributionError {
    OciDistributionError::IoError(std::io::Error::other(e))
}

/// The error of ours an I/O error carries, if any.
fn our_error(io: &std::io::Error) -> Option<&Error> {
    io.get_ref().and_then(|i| i.downcast_ref::<Error>())
}

/// Reads an answer's body as it streams, at most `limit` bytes of it. Returns the bytes and
/// whether they are the whole body; what comes past the limit is not read.
async fn read_up_to(
    resp: &mut reqwest::Response,
    limit: u64,
) -> std::result::Result<(Vec<u8>, bool), reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok((Vec::new(), false));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The error for an answer with HTTP `status` other than 200, as oci-client makes it.
fn status_error(status: reqwest::StatusCode, body: &[u8], url: String) -> OciDistributionError {
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError { url };
    }
    if status.is_client_error() {
        if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body) {
            return OciDistributionError::RegistryError { envelope, url };
        }
    }
    OciDistributionError::ServerError {
        code: status.as_u16(),
        url,
        message: String::from_utf8_lossy(body).into_owned(),
    }
}

/// Checks `data` against the digest a registry states for it (`Docker-Content-Digest`), when
/// its algorithm is one we know (SHA-256, SHA-512). The error is the digest of `data`.
fn check_stated_digest(stated: &str, data: &[u8]) -> std::result::Result<(), String> {
    let got = match stated.split_once(':') {
        Some(("sha256", _)) => format!("sha256:{}", hex(&Sha256::digest(data))),
        Some(("sha512", _)) => format!("sha512:{}", hex(&Sha512::digest(data))),
        _ => {
            tracing::debug!(
                stated,
                "a manifest digest of an unknown algorithm is not checked"
            );
            return Ok(());
        }
    };
    if got.eq_ignore_ascii_case(stated.trim()) {
        Ok(())
    } else {
        Err(got)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asks `service` for a bearer token to pull from `repository`: with the credentials as basic
/// auth, or, for an identity (refresh) token, by exchanging it as Docker does (OAuth2
/// `grant_type=refresh_token`). Returns the token and how long it lives. The answer is read as
/// it streams, never past [`MAX_TOKEN_RESPONSE`].
async fn fetch_token(
    http: &reqwest::Client,
    service: &TokenService,
    registry: &str,
    repository: &str,
    credentials: &Credentials,
) -> std::result::Result<(String, Duration), OciDistributionError> {
    let scope = format!("repository:{repository}:pull");
    let request = match credentials {
        Credentials::IdentityToken(token) => {
            let mut body = format!(
                "grant_type=refresh_token&client_id=oci2ext4&refresh_token={}&scope={}",
                form_encode(token),
                form_encode(&scope)
            );
            if let Some(s) = &service.service {
                body.push_str(&format!("&service={}", form_encode(s)));
            }
            http.post(&service.realm)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
        }
        other => {
            let mut url = service.realm.clone();
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("scope={}", form_encode(&scope)));
            if let Some(s) = &service.service {
                url.push_str(&format!("&service={}", form_encode(s)));
            }
            let request = http.get(url);
            match other {
                Credentials::Basic { username, password } => {
                    request.basic_auth(username, Some(password))
                }
                _ => request,
            }
        }
    };
    let mut resp = request.send().await?;
    let status = resp.status();
    if !status.is_success() {
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(OciDistributionError::ServerError {
                code: status.as_u16(),
                url: service.realm.clone(),
                message: String::new(),
            });
        }
        if matches!(credentials, Credentials::IdentityToken(_)) {
            return Err(ours(Error::new(
                ErrorKind::Registry,
                format!(
                    "the token service of {registry} refused the identity token (HTTP {})",
                    status.as_u16()
                ),
            )));
        }
        let (body, _) = read_up_to(&mut resp, MAX_ERROR_BODY).await?;
        return Err(OciDistributionError::AuthenticationFailure(
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    let (body, whole) = read_up_to(&mut resp, MAX_TOKEN_RESPONSE).await?;
    if !whole {
        return Err(ours(Error::limit(format!(
            "the token service of {registry} answered more than {MAX_TOKEN_RESPONSE} bytes for a token to pull {repository}; the rest is not read"
        ))));
    }
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let not_a_token = |what: &str| {
        ours(Error::new(
            ErrorKind::Registry,
            format!("the token service of {registry} answered {what}"),
        ))
    };
    let parsed: TokenResponse =
        serde_json::from_slice(&body).map_err(|_| not_a_token("something that is not a token"))?;
    let lifetime = parsed
        .expires_in
        .filter(|&s| s > 0)
        .map_or(TOKEN_RENEWAL, Duration::from_secs);
    let token = parsed
        .access_token
        .or(parsed.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| not_a_token("without a token"))?;
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("localhost.example.com"));
    }

    #[test]
    fn backoff_grows_and_stops() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(10), Duration::from_secs(5));
        assert_eq!(backoff(100), Duration::from_secs(5));
    }

    #[test]
    fn bearer_challenges() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(
            c[0],
            ("realm".into(), "https://auth.example.com/token".into())
        );
        assert_eq!(c[1], ("service".into(), "registry.example.com".into()));
        assert_eq!(c[2].1, "repository:a/b:pull");
        assert!(parse_bearer_challenge(r#"Basic realm="x""#).is_none());
        assert_eq!(form_encode("a b/c+d"), "a%20b%2Fc%2Bd");
    }

    /// Answers two HTTP requests: the registry's challenge, then the token service.
    fn fake_token_service() -> (String, std::thread::JoinHandle<String>) {
        fake_token_service_answering(r#"{"access_token":"access-123"}"#.to_string())
    }

    /// [`fake_token_service`], the token service answering `json`.
    fn fake_token_service_answering(json: String) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{addr}/token");
        let thread = std::thread::spawn(move || {
            let mut body_seen = String::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let mut stream = stream;
                let response = if request_line.starts_with("GET /v2/") {
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    body_seen = String::from_utf8(body).unwrap();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                        json.len()
                    )
                };
                // The client may stop reading an answer it finds too long.
                let _ = stream.write_all(response.as_bytes());
            }
            body_seen
        });
        (addr, thread)
    }

    /// Connects to the fake token service of [`fake_token_service_answering`] with
    /// `credentials`, over plain HTTP and without retries.
    fn connect_to(addr: &str, credentials: Credentials) -> Result<Session> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let reference = ImageReference::parse(&format!("{addr}/org/app:v1")).unwrap();
        let opts = TransportOptions {
            plain_http: true,
            retries: 0,
            ..TransportOptions::default()
        };
        rt.block_on(Session::connect(
            &reference,
            &opts,
            FoundCredentials {
                credentials,
                origin: None,
            },
        ))
    }

    #[test]
    fn identity_tokens_are_exchanged() {
        let (addr, server) = fake_token_service();
        let session = connect_to(&addr, Credentials::IdentityToken("refresh/+tok".into())).unwrap();
        let access = session
            .token
            .try_lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .value
            .clone();
        assert_eq!(access, "access-123");
        let body = server.join().unwrap();
        assert!(body.contains("grant_type=refresh_token"), "{body}");
        assert!(body.contains("refresh_token=refresh%2F%2Btok"), "{body}");
        assert!(
            body.contains("scope=repository%3Aorg%2Fapp%3Apull"),
            "{body}"
        );
        assert!(body.contains("service=fake"), "{body}");
    }

    #[test]
    fn token_answers_are_read_up_to_a_limit() {
        let json = format!(
            r#"{{"access_token":"access-123","padding":"{}"}}"#,
            " ".repeat(2 << 20)
        );
        for credentials in [
            Credentials::IdentityToken("refresh".into()),
            Credentials::Anonymous,
        ] {
            let (addr, server) = fake_token_service_answering(json.clone());
            let e = connect_to(&addr, credentials).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
            let m = e.to_string();
            assert!(m.contains("more than 1048576 bytes"), "{m}");
            assert!(m.contains(&addr) && m.contains("org/app"), "{m}");
            let _ = server.join();
        }
    }

    #[test]
    fn certificates_split() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        let block = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(&p, format!("junk\n{block}{block}")).unwrap();
        let certs = read_ca_certs(&[p]).unwrap();
        assert_eq!(certs.len(), 2);
        assert!(String::from_utf8_lossy(&certs[1].data).ends_with("-----END CERTIFICATE-----"));
        assert!(read_ca_certs(&[dir.path().join("missing.pem")]).is_err());
    }

    #[test]
    fn retry_classes() {
        let server = |code| OciDistributionError::ServerError {
            code,
            url: String::new(),
            message: String::new(),
        };
        assert!(retryable(&server(503)));
        assert!(retryable(&server(429)));
        assert!(!retryable(&server(404)));
        assert!(!retryable(&OciDistributionError::UnauthorizedError {
            url: String::new()
        }));
        let cut = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut");
        assert!(retryable(&OciDistributionError::IoError(cut)));
    }
}
