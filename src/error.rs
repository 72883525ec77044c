//! The crate's error type: a kind a caller can match on, a message, and where it happened (the
//! source, the layer and the entry).

use std::fmt;
use std::io;

/// The class of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input is malformed or inconsistent: a broken tar or compressed stream, an invalid
    /// entry name, a hard link to nothing, malformed JSON.
    CorruptInput,
    /// A blob or layer does not match its digest.
    DigestMismatch,
    /// A limit was exceeded: image size, inode count, name length, path depth, link count,
    /// extended attribute space.
    LimitExceeded,
    /// The input uses something this crate does not support (a media type, a tar extension).
    Unsupported,
    /// The caller asked for something impossible (an option out of range, a missing source).
    InvalidArgument,
    /// Reading input or writing output failed.
    Io,
    /// Talking to a registry failed.
    Registry,
    /// The build was cancelled.
    Cancelled,
    /// A consistency check of the builder failed (a bug): the build stops with this error rather
    /// than write a damaged image.
    Internal,
}

impl ErrorKind {
    /// A short lowercase name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::CorruptInput => "corrupt input",
            ErrorKind::DigestMismatch => "digest mismatch",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Io => "I/O error",
            ErrorKind::Registry => "registry error",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal error",
        }
    }
}

struct Inner {
    kind: ErrorKind,
    message: String,
    source_name: Option<String>,
    layer: Option<String>,
    entry: Option<String>,
    cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// An error with its kind and context.
///
/// `Display` gives the context and the message; the underlying error, if any, is
/// [`std::error::Error::source`], so that each cause is shown once when the chain is printed:
///
/// ```
/// use std::error::Error as _;
/// let e = oci2ext4::Error::io("cannot open rootfs.tar", std::io::Error::from_raw_os_error(2));
/// assert_eq!(e.to_string(), "cannot open rootfs.tar");
/// assert!(e.source().unwrap().to_string().contains("No such file"));
/// ```
pub struct Error(Box<Inner>);

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            source_name: None,
            layer: None,
            entry: None,
            cause: None,
        }))
    }

    /// Shorthand for [`ErrorKind::CorruptInput`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::CorruptInput, message)
    }

    /// Shorthand for [`ErrorKind::LimitExceeded`].
    pub fn limit(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::LimitExceeded, message)
    }

    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An I/O error with a message saying what was being done.
    pub fn io(message: impl Into<String>, cause: io::Error) -> Self {
        Error::new(ErrorKind::Io, message).with_cause(cause)
    }

    /// Attaches the underlying error.
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.cause = Some(Box::new(cause));
        self
    }

    /// Names the input (a file, directory or image reference), unless one is named already.
    pub fn with_source(mut self, source: impl fmt::Display) -> Self {
        self.0.source_name.get_or_insert_with(|| source.to_string());
        self
    }

    /// Names the layer, unless one is named already.
    pub fn with_layer(mut self, layer: impl fmt::Display) -> Self {
        self.0.layer.get_or_insert_with(|| layer.to_string());
        self
    }

    /// Names the entry (a path in the image), unless one is named already.
    pub fn with_entry(mut self, entry: impl fmt::Display) -> Self {
        self.0.entry.get_or_insert_with(|| entry.to_string());
        self
    }

    /// The class of error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The input named, if any.
    pub fn source_name(&self) -> Option<&str> {
        self.0.source_name.as_deref()
    }

    /// The layer named, if any.
    pub fn layer(&self) -> Option<&str> {
        self.0.layer.as_deref()
    }

    /// The entry named, if any.
    pub fn entry(&self) -> Option<&str> {
        self.0.entry.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.0.source_name {
            write!(f, "{s}: ")?;
        }
        if let Some(l) = &self.0.layer {
            write!(f, "{l}: ")?;
        }
        if let Some(e) = &self.0.entry {
            write!(f, "entry {e:?}: ")?;
        }
        // The underlying error is not repeated here: `source()` gives it, so that a caller
        // printing the chain (as the command line does) shows each cause once.
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}, {})", self.0.kind, display_chain(self))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .cause
            .as_ref()
            .map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        // Errors that readers use to report malformed data are input errors, not I/O failures.
        let kind = match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => ErrorKind::CorruptInput,
            _ => ErrorKind::Io,
        };
        // An error of this crate carried through an io::Error keeps its kind and context.
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let io_kind = e.kind();
            if let Some(Ok(inner)) = e.into_inner().map(|b| b.downcast::<Error>()) {
                return *inner;
            }
            return Error::new(kind, io_kind.to_string());
        }
        match kind {
            // A reader's way of saying the data is malformed: its message is the whole story.
            ErrorKind::CorruptInput => Error::new(kind, e.to_string()),
            _ => Error::new(kind, "I/O error").with_cause(e),
        }
    }
}

/// `error` followed by each error of its `source()` chain, separated by `": "`: the whole story
/// in one line, each cause once.
pub fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        next = cause.source();
    }
    line
}

/// Displays a byte string path for messages, escaping what is not UTF-8.
pub fn show_path(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_context() {
        let e = Error::corrupt("bad header")
            .with_entry("usr/bin/x")
            .with_layer("layer 2")
            .with_source("img.tar");
        assert_eq!(
            e.to_string(),
            "img.tar: layer 2: entry \"usr/bin/x\": bad header"
        );
        assert_eq!(e.kind(), ErrorKind::CorruptInput);
    }

    #[test]
    fn each_cause_is_shown_once_along_the_chain() {
        use std::error::Error as _;
        let e = Error::io("cannot open x", io::Error::other("disk on fire")).with_source("x");
        assert_eq!(e.to_string(), "x: cannot open x");
        let cause = e.source().map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("disk on fire"));
        assert!(e.source().and_then(|c| c.source()).is_none());
        assert_eq!(display_chain(&e), "x: cannot open x: disk on fire");
    }

    #[test]
    fn first_context_wins() {
        let e = Error::limit("too big").with_entry("a").with_entry("b");
        assert_eq!(e.entry(), Some("a"));
    }

    #[test]
    fn io_errors_keep_a_wrapped_crate_error() {
        let inner = Error::limit("nope").with_entry("x");
        let io = io::Error::other(inner);
        let back: Error = io.into();
        assert_eq!(back.kind(), ErrorKind::LimitExceeded);
        assert_eq!(back.entry(), Some("x"));
        let eof: Error = io::Error::new(io::ErrorKind::UnexpectedEof, "short").into();
        assert_eq!(eof.kind(), ErrorKind::CorruptInput);
    }
}
