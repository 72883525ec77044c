//! What an entry of the image is: its metadata and kind, independent of where it comes from.

/// A point in time: seconds since the Unix epoch (negative before 1970) and nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub sec: i64,
    /// Nanoseconds within the second, below 10^9.
    pub nsec: u32,
}

impl Timestamp {
    /// A whole-second timestamp.
    pub const fn from_secs(sec: i64) -> Self {
        Timestamp { sec, nsec: 0 }
    }
}

/// One extended attribute: a full name such as `user.comment` or `security.capability`, and
/// its value as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Xattr {
    /// The full attribute name, namespace prefix included.
    pub name: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// Ownership, permissions, times and extended attributes of an entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Permission bits including setuid (0o4000), setgid (0o2000) and sticky (0o1000). File type
    /// bits, if present, are ignored: the kind of entry decides the type.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Last access time.
    pub atime: Timestamp,
    /// Last modification time.
    pub mtime: Timestamp,
    /// Last status change time.
    pub ctime: Timestamp,
    /// Extended attributes, in any order; a name given twice keeps its last value.
    pub xattrs: Vec<Xattr>,
}

impl Metadata {
    /// Metadata with the given permission bits and owner, all times set to `time`, no xattrs.
    pub fn new(mode: u32, uid: u32, gid: u32, time: Timestamp) -> Self {
        Metadata {
            mode,
            uid,
            gid,
            atime: time,
            mtime: time,
            ctime: time,
            xattrs: Vec::new(),
        }
    }
}

/// The kinds of entry other than regular files, directories and hard links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Special {
    /// A symbolic link with its target, stored verbatim (1 to 4095 bytes).
    Symlink(Vec<u8>),
    /// A character device.
    CharDevice {
        /// Major number (up to 4095).
        major: u32,
        /// Minor number (up to 1048575).
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number (up to 4095).
        major: u32,
        /// Minor number (up to 1048575).
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
}
