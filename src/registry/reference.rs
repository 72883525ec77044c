//! Image references as Docker reads them: `alpine` is `docker.io/library/alpine:latest`,
//! `ghcr.io/org/app@sha256:…` names a manifest by digest, `localhost:5000/app:v1` a registry
//! with a port.

use std::fmt;

use crate::blob::digest::Digest;
use crate::error::{Error, Result};

/// The registry Docker Hub references resolve to.
pub const DOCKER_HUB: &str = "docker.io";
/// Longest repository name with its registry (as in Docker's reference grammar).
const NAME_MAX: usize = 255;

/// A fully qualified image reference: registry, repository, and a tag, a digest or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn invalid(s: &str, why: impl fmt::Display) -> Error {
    Error::invalid(format!("invalid image reference {s:?}: {why}"))
}

/// Whether `part` (the text before the first `/`) names a registry rather than a repository
/// component: it has a dot or a port, is `localhost`, or has capitals (as Docker decides).
fn is_registry(part: &str) -> bool {
    part.contains(['.', ':']) || part == "localhost" || part.bytes().any(|b| b.is_ascii_uppercase())
}

/// Checks `host[:port]` (a DNS name, an IPv4 address or a bracketed IPv6 address).
fn valid_registry(r: &str) -> bool {
    let (host, port) = if let Some(rest) = r.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks one path component: `[a-z0-9]+` separated by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let ch = b[i];
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or `-+`, between alphanumerics.
        let start = i;
        match ch {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if start == 0 || !b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
            return false;
        }
    }
    true
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl ImageReference {
    /// Parses a reference the way Docker normalises it: a missing registry is Docker Hub
    /// (`docker.io`, also spelt `index.docker.io`), a one-component Docker Hub repository is
    /// under `library/`, and a missing tag without a digest is `latest`.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(invalid(s, "it is empty"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                Digest::parse(d).map_err(|e| invalid(s, e.message()))?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last colon after the last slash.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_tag[..at], Some(&name_tag[at + 1..]))
            }
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid(s, format!("{t:?} is not a valid tag")));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if is_registry(first) => (first.to_string(), rest.to_string()),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        if !valid_registry(&registry) {
            return Err(invalid(s, format!("{registry:?} is not a registry host")));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() {
            return Err(invalid(s, "it names no repository"));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid(s, "repository names must be lowercase"));
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(invalid(
                s,
                format!("{bad:?} is not a valid repository name component"),
            ));
        }
        if registry.len() + 1 + repository.len() > NAME_MAX {
            return Err(invalid(
                s,
                format!("the name is longer than {NAME_MAX} characters"),
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with its port if any (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same repository at `digest`, without a tag.
    pub fn at_digest(&self, digest: &str) -> Self {
        ImageReference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The reference for oci-client.
    pub(crate) fn to_client(&self) -> oci_client::Reference {
        let (r, p) = (self.registry.clone(), self.repository.clone());
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => {
                oci_client::Reference::with_tag_and_digest(r, p, t.clone(), d.clone())
            }
            (None, Some(d)) => oci_client::Reference::with_digest(r, p, d.clone()),
            (t, None) => oci_client::Reference::with_tag(
                r,
                p,
                t.clone().unwrap_or_else(|| "latest".to_string()),
            ),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageReference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ImageReference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn full(s: &str) -> String {
        ImageReference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_normalisation() {
        assert_eq!(full("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(full("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(full("library/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(full("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(full("docker.io/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(
            full("index.docker.io/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(full("ghcr.io/org/app:v1"), "ghcr.io/org/app:v1");
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(full("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(full("127.0.0.1:5000/a/b/c:t"), "127.0.0.1:5000/a/b/c:t");
        assert_eq!(full("[::1]:5000/app:v2"), "[::1]:5000/app:v2");
        assert_eq!(full("Registry/app"), "Registry/app:latest");
        assert_eq!(
            full(&format!("alpine@{D}")),
            format!("docker.io/library/alpine@{D}")
        );
        assert_eq!(
            full(&format!("alpine:3.20@{D}")),
            format!("docker.io/library/alpine:3.20@{D}")
        );
        let r = ImageReference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "app");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        let r = ImageReference::parse(&format!("org/a_b.c-d__e---f@{D}")).unwrap();
        assert_eq!(r.repository(), "org/a_b.c-d__e---f");
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn bad_references() {
        for bad in [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abc",
            "alpine@md5:0123456789abcdef0123456789abcdef",
            "a//b",
            "a/b/",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "host:port/app",
            "ex-.com/app",
            "localhost:5000/",
        ] {
            let e = ImageReference::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains("invalid image reference"), "{e}");
        }
        let long = format!("r.io/{}", "a".repeat(260));
        assert!(ImageReference::parse(&long).is_err());
    }

    #[test]
    fn client_references() {
        let r = ImageReference::parse("alpine:3.20").unwrap().to_client();
        assert_eq!(r.resolve_registry(), "index.docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("3.20"));
        let r = ImageReference::parse("localhost:5000/app")
            .unwrap()
            .at_digest(D);
        assert_eq!(r.to_string(), format!("localhost:5000/app@{D}"));
        assert_eq!(r.to_client().digest(), Some(D));
    }
}
