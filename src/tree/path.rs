//! Entry names: turning the path of a tar entry or API call into components inside the image.

use crate::ext4::dir::EXT4_NAME_LEN;

/// Why a path was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// `..` would climb above the image's root.
    EscapesRoot,
    /// A component is longer than 255 bytes.
    NameTooLong(usize),
    /// More components than the configured depth limit.
    TooDeep(usize),
    /// The path contains a NUL byte.
    Nul,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::EscapesRoot => f.write_str("path leaves the image root through `..`"),
            PathError::NameTooLong(n) => {
                write!(f, "a name of {n} bytes is longer than ext4's limit of 255")
            }
            PathError::TooDeep(n) => write!(f, "path of {n} components is deeper than the limit"),
            PathError::Nul => f.write_str("path contains a NUL byte"),
        }
    }
}

/// Splits `path` into components relative to the image root, lexically: a leading `/` or
/// `./` is dropped, empty and `.` components are skipped, and `..` removes the component before
/// it (an error at the root). An empty result is the root itself.
pub fn normalize(path: &[u8], max_depth: usize) -> Result<Vec<&[u8]>, PathError> {
    if path.contains(&0) {
        return Err(PathError::Nul);
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in path.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(PathError::EscapesRoot);
                }
            }
            name => {
                if name.len() > EXT4_NAME_LEN {
                    return Err(PathError::NameTooLong(name.len()));
                }
                out.push(name);
                if out.len() > max_depth {
                    return Err(PathError::TooDeep(out.len()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<Vec<String>, PathError> {
        normalize(p.as_bytes(), 100).map(|v| {
            v.iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        })
    }

    #[test]
    fn strips_prefixes_and_dots() {
        assert_eq!(n("./usr/bin/").unwrap(), ["usr", "bin"]);
        assert_eq!(n("/etc//passwd").unwrap(), ["etc", "passwd"]);
        assert_eq!(n("./").unwrap(), Vec::<String>::new());
        assert_eq!(n("a/./b/../c").unwrap(), ["a", "c"]);
    }

    #[test]
    fn refuses_escapes_and_long_names() {
        assert_eq!(n("../etc"), Err(PathError::EscapesRoot));
        assert_eq!(n("a/../../b"), Err(PathError::EscapesRoot));
        assert_eq!(n(&"x".repeat(256)), Err(PathError::NameTooLong(256)));
        assert!(n(&"x".repeat(255)).is_ok());
        assert_eq!(normalize(b"a/b/c", 2), Err(PathError::TooDeep(3)));
        assert_eq!(normalize(b"a\0b", 2), Err(PathError::Nul));
    }
}
