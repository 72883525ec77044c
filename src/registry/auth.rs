//! Registry credentials: given on the command line, or found where Docker, Podman, skopeo and
//! crane keep them.
//!
//! These files are read in turn, as podman and skopeo do, and the first one that has
//! credentials for the registry wins (a file without an entry for it is passed over):
//!
//! 1. `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json` when `DOCKER_CONFIG` is unset;
//! 2. `$REGISTRY_AUTH_FILE`;
//! 3. `$XDG_RUNTIME_DIR/containers/auth.json`;
//! 4. `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`).
//!
//! A file named with `--authfile` ([`AuthEnv::auth_file`]) is the only one read.
//!
//! In a file, a credential helper named for the registry in `credHelpers`, else the default
//! `credsStore`, is asked first (`docker-credential-NAME get`); then the `auths` entry for the
//! registry (`auth` as base64 `user:password`, `username`/`password`, or `identitytoken`).
//! Nothing here ever puts a secret in a message.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};

use super::reference::DOCKER_HUB;

/// The key Docker stores Docker Hub credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// How to authenticate to a registry.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials: anonymous access (a registry may still hand out an anonymous token).
    #[default]
    Anonymous,
    /// A user name and password (or access token used as one).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config), exchanged for an access
    /// token at the registry's token service.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { .. } => f.write_str("Basic(<redacted>)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Credentials and where they came from (for messages; never the secret itself).
#[derive(Clone, Debug, Default)]
pub struct FoundCredentials {
    /// The credentials.
    pub credentials: Credentials,
    /// Where they came from: `--username`, a file, or a credential helper.
    pub origin: Option<String>,
}

/// The environment that decides where credentials are looked for.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AuthEnv {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$DOCKER_CONFIG`.
    pub docker_config: Option<PathBuf>,
    /// `$REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `$XDG_RUNTIME_DIR`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// A credentials file given explicitly (`--authfile`): when set, the only file read.
    pub auth_file: Option<PathBuf>,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl AuthEnv {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        AuthEnv {
            home: env_path("HOME"),
            docker_config: env_path("DOCKER_CONFIG"),
            registry_auth_file: env_path("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: env_path("XDG_RUNTIME_DIR"),
            xdg_config_home: env_path("XDG_CONFIG_HOME"),
            auth_file: None,
        }
    }

    /// The files that may hold credentials, in the order they are tried: the one given
    /// explicitly alone, or else the usual places.
    pub fn candidates(&self) -> Vec<PathBuf> {
        if let Some(f) = &self.auth_file {
            return vec![f.clone()];
        }
        let mut v = Vec::new();
        match (&self.docker_config, &self.home) {
            (Some(d), _) => v.push(d.join("config.json")),
            (None, Some(h)) => v.push(h.join(".docker").join("config.json")),
            (None, None) => {}
        }
        if let Some(f) = &self.registry_auth_file {
            v.push(f.clone());
        }
        if let Some(d) = &self.xdg_runtime_dir {
            v.push(d.join("containers").join("auth.json"));
        }
        match (&self.xdg_config_home, &self.home) {
            (Some(d), _) => v.push(d.join("containers").join("auth.json")),
            (None, Some(h)) => v.push(h.join(".config").join("containers").join("auth.json")),
            (None, None) => {}
        }
        v
    }

    /// The credentials for `registry` from the first credentials file that has some for it,
    /// or anonymous access when none does. An explicit file that does not exist is an error.
    pub fn lookup(&self, registry: &str) -> Result<FoundCredentials> {
        if let Some(f) = &self.auth_file {
            if !f.is_file() {
                return Err(Error::invalid(format!(
                    "credentials file {} does not exist or is not a file",
                    f.display()
                )));
            }
        }
        for path in self.candidates().into_iter().filter(|p| p.is_file()) {
            let found = read_auth_file(&path)?.lookup(registry, &path)?;
            if found.credentials != Credentials::Anonymous {
                return Ok(found);
            }
        }
        Ok(FoundCredentials::default())
    }
}

/// Reads and parses one credentials file.
fn read_auth_file(path: &Path) -> Result<AuthFile> {
    let data =
        std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_slice(&data).map_err(|e| {
        // Only where and what kind: serde_json's own message can quote the value it met,
        // which may be a secret.
        let what = match e.classify() {
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Eof => "an unexpected end",
            serde_json::error::Category::Data => "a value of the wrong type",
            serde_json::error::Category::Io => "a read error",
        };
        Error::invalid(format!(
            "{} is not a valid credentials file: {what} at line {}, column {}",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// A Docker `config.json` or containers `auth.json`: the parts about credentials.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The registry a key of `auths` or `credHelpers` names: without a scheme or a path, and with
/// Docker Hub's several names made one.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        other => other,
    }
    .to_string()
}

/// Finds the value for `registry` in a map keyed by registries in any of Docker's spellings.
fn find<'a, V>(map: &'a HashMap<String, V>, registry: &str) -> Option<&'a V> {
    if let Some(v) = map.get(registry) {
        return Some(v);
    }
    let want = normalize_key(registry);
    // Sorted, so that the choice among equivalent keys does not depend on hashing.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .find(|k| normalize_key(k) == want)
        .and_then(|k| map.get(k))
}

impl AuthEntry {
    fn credentials(&self, registry: &str, path: &Path) -> Result<Credentials> {
        if let Some(token) = self.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Credentials::IdentityToken(token.to_string()));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || {
                Error::invalid(format!(
                    "{}: the \"auth\" entry for {registry} is not base64 of user:password",
                    path.display()
                ))
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (user, pass) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Credentials::Basic {
                username: user.to_string(),
                password: pass.to_string(),
            });
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Credentials::Basic {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => Ok(Credentials::Anonymous),
        }
    }
}

impl AuthFile {
    fn lookup(&self, registry: &str, path: &Path) -> Result<FoundCredentials> {
        let helper = find(&self.cred_helpers, registry).or(self.creds_store.as_ref());
        if let Some(helper) = helper.filter(|h| !h.is_empty()) {
            if let Some(c) = run_helper(helper, registry)? {
                return Ok(FoundCredentials {
                    credentials: c,
                    origin: Some(format!("credential helper docker-credential-{helper}")),
                });
            }
        }
        match find(&self.auths, registry) {
            Some(entry) => {
                let credentials = entry.credentials(registry, path)?;
                let origin =
                    (credentials != Credentials::Anonymous).then(|| path.display().to_string());
                Ok(FoundCredentials {
                    credentials,
                    origin,
                })
            }
            None => Ok(FoundCredentials::default()),
        }
    }
}

/// What a credential helper prints.
#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The server name a credential helper is asked about: Docker Hub's historical key, or the
/// registry host.
fn helper_server(registry: &str) -> &str {
    if normalize_key(registry) == DOCKER_HUB {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// Runs `docker-credential-NAME get`. `None` when the helper has nothing for the registry.
fn run_helper(name: &str, registry: &str) -> Result<Option<Credentials>> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(Error::invalid(format!(
            "credential helper name {name:?} is not valid"
        )));
    }
    let program = format!("docker-credential-{name}");
    let helper_error = |what: String| Error::new(ErrorKind::Registry, what);
    let child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        // A configured helper that is not installed (a config copied from another machine)
        // gives nothing; the file's own entries and anonymous access remain.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(helper_error(format!(
                "cannot run credential helper {program}: {e}"
            )))
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is reported by its status below.
        let _ = stdin.write_all(helper_server(registry).as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| helper_error(format!("credential helper {program} failed: {e}")))?;
    if !out.status.success() {
        // The helpers' own words for "nothing stored" (the output carries no secret then).
        let said = String::from_utf8_lossy(&out.stdout).to_lowercase()
            + &String::from_utf8_lossy(&out.stderr).to_lowercase();
        if said.contains("not found") || said.contains("no credentials") {
            return Ok(None);
        }
        return Err(helper_error(format!(
            "credential helper {program} failed ({}) for {registry}",
            out.status
        )));
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout).map_err(|_| {
        helper_error(format!(
            "credential helper {program} printed something that is not its JSON answer"
        ))
    })?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if parsed.username == "<token>" {
        Credentials::IdentityToken(parsed.secret)
    } else {
        Credentials::Basic {
            username: parsed.username,
            password: parsed.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn env_in(dir: &Path) -> AuthEnv {
        AuthEnv {
            home: Some(dir.join("home")),
            ..AuthEnv::default()
        }
    }

    #[test]
    fn candidates_in_crane_order() {
        let env = AuthEnv {
            home: Some("/h".into()),
            docker_config: None,
            registry_auth_file: Some("/r/auth.json".into()),
            xdg_runtime_dir: Some("/run/user/1".into()),
            xdg_config_home: None,
            auth_file: None,
        };
        let c: Vec<String> = env
            .candidates()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            c,
            [
                "/h/.docker/config.json",
                "/r/auth.json",
                "/run/user/1/containers/auth.json",
                "/h/.config/containers/auth.json"
            ]
        );
        let env = AuthEnv {
            docker_config: Some("/d".into()),
            ..env
        };
        assert_eq!(env.candidates()[0], PathBuf::from("/d/config.json"));
    }

    #[test]
    fn docker_config_entries() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        // No file at all: anonymous.
        assert_eq!(
            env.lookup("r.io").unwrap().credentials,
            Credentials::Anonymous
        );
        std::fs::create_dir_all(dir.path().join("home/.docker")).unwrap();
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": b64("hub:pw1")},
            "r.io": {"auth": b64("user:pa:ss")},
            "https://t.io/v2/": {"identitytoken": "refresh"},
            "p.io": {"username": "u2", "password": "p2"},
        }});
        std::fs::write(
            dir.path().join("home/.docker/config.json"),
            config.to_string(),
        )
        .unwrap();
        let get = |r: &str| env.lookup(r).unwrap().credentials;
        assert_eq!(
            get("docker.io"),
            Credentials::Basic {
                username: "hub".into(),
                password: "pw1".into()
            }
        );
        assert_eq!(
            get("r.io"),
            Credentials::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(get("t.io"), Credentials::IdentityToken("refresh".into()));
        assert_eq!(
            get("p.io"),
            Credentials::Basic {
                username: "u2".into(),
                password: "p2".into()
            }
        );
        assert_eq!(get("other.io"), Credentials::Anonymous);
        let found = env.lookup("r.io").unwrap();
        assert!(found.origin.as_deref().unwrap().ends_with("config.json"));
        // Secrets never show in debug output.
        assert!(!format!("{found:?}").contains("pa:ss"));
    }

    #[test]
    fn bad_auth_entries_do_not_leak() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        std::fs::create_dir_all(dir.path().join("home/.docker")).unwrap();
        std::fs::write(
            dir.path().join("home/.docker/config.json"),
            r#"{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        let e = env.lookup("r.io").unwrap_err().to_string();
        assert!(e.contains("not base64 of user:password"), "{e}");
        assert!(!e.contains("bm9jb2xvbg"), "{e}");
    }

    #[test]
    fn malformed_credentials_files_do_not_leak() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        std::fs::create_dir_all(dir.path().join("home/.docker")).unwrap();
        // A value of the wrong type (serde quotes it), a secret where a number is wanted, a
        // secret cut off mid-string, a secret after a syntax error.
        for text in [
            r#"{"auths": {"r.io": "s3cr3t-TOKEN"}}"#,
            r#"{"auths": {"r.io": {"password": ["s3cr3t-TOKEN"]}}}"#,
            r#"{"auths": {"r.io": {"auth": "s3cr3t-TOKEN"#,
            r#"{"auths": {"r.io": {"auth": "s3cr3t-TOKEN"}} x}"#,
            r#"{"credHelpers": {"r.io": 5}, "auths": {"r.io": {"auth": "s3cr3t-TOKEN" "#,
        ] {
            std::fs::write(dir.path().join("home/.docker/config.json"), text).unwrap();
            let e = env.lookup("r.io").unwrap_err().to_string();
            assert!(e.contains("not a valid credentials file"), "{e}");
            assert!(e.contains("line 1"), "{e}");
            assert!(!e.contains("s3cr3t"), "{text}: {e}");
        }
    }

    #[test]
    fn keys_normalise() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://localhost:5000"), "localhost:5000");
        assert_eq!(normalize_key("ghcr.io"), "ghcr.io");
        assert_eq!(helper_server("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(helper_server("ghcr.io"), "ghcr.io");
    }

    fn write_json(path: &Path, v: serde_json::Value) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v.to_string()).unwrap();
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn each_registry_from_the_file_that_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("home/.docker/config.json");
        let containers = dir.path().join("home/.config/containers/auth.json");
        let runtime = dir.path().join("run/containers/auth.json");
        // A docker login for d.io (and an empty entry for c.io, as Docker leaves with a
        // credsStore), a podman login for c.io, and one for both in the runtime file.
        write_json(
            &docker,
            serde_json::json!({"auths": {
                "d.io": {"auth": b64("docker-user:docker-pw")},
                "c.io": {},
            }}),
        );
        write_json(
            &containers,
            serde_json::json!({"auths": {
                "c.io": {"auth": b64("podman-user:podman-pw")},
                "d.io": {"auth": b64("late:late")},
            }}),
        );
        let env = env_in(dir.path());
        let d = env.lookup("d.io").unwrap();
        assert_eq!(d.credentials, basic("docker-user", "docker-pw"));
        assert_eq!(d.origin.as_deref(), Some(docker.to_str().unwrap()));
        let c = env.lookup("c.io").unwrap();
        assert_eq!(c.credentials, basic("podman-user", "podman-pw"));
        assert_eq!(c.origin.as_deref(), Some(containers.to_str().unwrap()));
        assert_eq!(
            env.lookup("n.io").unwrap().credentials,
            Credentials::Anonymous
        );
        // $XDG_RUNTIME_DIR's file comes before ~/.config's.
        write_json(
            &runtime,
            serde_json::json!({"auths": {"c.io": {"username": "rt", "password": "rt-pw"}}}),
        );
        let env = AuthEnv {
            xdg_runtime_dir: Some(dir.path().join("run")),
            ..env_in(dir.path())
        };
        assert_eq!(
            env.lookup("c.io").unwrap().credentials,
            basic("rt", "rt-pw")
        );
        assert_eq!(
            env.lookup("d.io").unwrap().credentials,
            basic("docker-user", "docker-pw")
        );
        // An explicit file is the only one read, even for a registry only another file has.
        let env = AuthEnv {
            auth_file: Some(containers.clone()),
            ..env
        };
        assert_eq!(
            env.lookup("d.io").unwrap().credentials,
            basic("late", "late")
        );
        let env = AuthEnv {
            auth_file: Some(runtime.clone()),
            ..env
        };
        assert_eq!(
            env.lookup("d.io").unwrap().credentials,
            Credentials::Anonymous
        );
        // One that does not exist is an error, not anonymous access.
        let env = AuthEnv {
            auth_file: Some(dir.path().join("missing.json")),
            ..env
        };
        let e = env.lookup("d.io").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("missing.json"), "{e}");
    }
}
