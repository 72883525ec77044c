//! Options of an image build.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::entry::Timestamp;
pub use crate::ext4::BlockSize;
pub use crate::layout::sizing::Headroom;

/// Bounds that protect against hostile or broken input.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Largest image, in bytes: a build that would grow past it stops with
    /// [`crate::ErrorKind::LimitExceeded`]. Also bounds the space held for descriptor tables.
    /// Default 1 TiB.
    pub max_size: u64,
    /// Most path components in an entry name. Default 4096.
    pub max_depth: usize,
    /// Most symbolic links followed while resolving one entry's parent directories. Default 40.
    pub max_symlink_follows: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 1 << 40,
            max_depth: 4096,
            max_symlink_follows: 40,
        }
    }
}

/// How to build an image. Start from [`BuildOptions::default`] and set fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BuildOptions {
    /// Exact image size in bytes (rounded down to whole blocks). The build fails, stating the
    /// size needed, when the content does not fit. Default: sized to the content.
    pub size: Option<u64>,
    /// Filesystem block size. Default 4 KiB. File data is placed as it streams in, so this is
    /// chosen before the content is seen; [`BuildOptions::block_size_for_content`] gives the
    /// size mke2fs would choose for the expected image (1 KiB below 512 MiB). 1 KiB
    /// blocks waste less space at the end of small files, but limit an image to 64 GiB, a
    /// file to 4 TiB, a symlink target to 1023 bytes and a file's extended attributes to what
    /// fits in the inode and one 1 KiB block.
    pub block_size: BlockSize,
    /// Free space beyond the content when the size is not fixed. Default
    /// [`Headroom::DEFAULT`]: 20 % of the content, and at least 256 MiB.
    pub headroom: Headroom,
    /// Smallest image when the size is not fixed. Default 64 MiB.
    pub min_size: u64,
    /// Total inode count. Default: the inodes used, and as many free ones as the larger of one
    /// per 16 KiB of image (mke2fs's default ratio) and a fifth of the used ones. With a fixed
    /// size too small for that many, a fifth more than the used ones.
    pub inodes: Option<u64>,
    /// Volume label, up to 16 bytes.
    pub label: Option<String>,
    /// Filesystem UUID. Default: derived from the content, so equal input gives equal images.
    pub uuid: Option<[u8; 16]>,
    /// Directory hash seed. Default: derived from the content.
    pub hash_seed: Option<[u8; 16]>,
    /// Whether to create a journal. Default true.
    pub journal: bool,
    /// Time given to what the builder creates itself (the root when no entry gives it,
    /// `lost+found`, missing parent directories) and to the superblock. Default: the epoch;
    /// the command line takes `SOURCE_DATE_EPOCH`.
    pub time: Timestamp,
    /// Input limits.
    pub limits: Limits,
    /// When set to true (by a signal handler, say), the build stops with
    /// [`crate::ErrorKind::Cancelled`] and removes its output.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Bytes of file data gathered before a write with `O_DIRECT` (two such buffers take
    /// turns; where the writer goes on through the page cache instead, each is written 64 KiB
    /// at a time), and, with [`BuildOptions::page_cache`] or another reason to write file data
    /// there from the start, the bytes in flight through the page cache (in runs of 256 KiB
    /// when there is room for more than one, each written 64 KiB at a time). Default 2 MiB.
    pub buffer_size: usize,
    /// Append a dm-verity hash tree after the filesystem (whose size then is a multiple of
    /// 4096 bytes: a fixed size is rounded down to it). Its root hash is in
    /// [`crate::Summary::verity`]. A verity device is read-only: consider leaving out the
    /// journal (`journal: false`), as the command line does. Default: none.
    pub verity: Option<crate::verity::VerityOptions>,
    /// Make the image durable before [`crate::ImageBuilder::finish`] returns: its data and
    /// metadata are synced, it is renamed into place, then its directory is synced. Default
    /// false: the kernel writes the metadata (and any data that went through the page cache)
    /// out later, and data written past the page cache may still sit in the device's cache, so
    /// a power loss soon after the build may leave no image, or a damaged one, at the
    /// destination (the rename is atomic against the process dying, not against the machine
    /// stopping).
    pub fsync: bool,
    /// Let the kernel copy file data from an uncompressed tar in a regular file into the image
    /// (`copy_file_range`, without `fsync`), instead of reading and writing it here; the image
    /// is the same. Default false: on ext4, where the kernel copies the bytes rather than
    /// sharing extents (tar data is not block-aligned, so it cannot share them on any
    /// filesystem), it measured slower and used more CPU than reading (see the README). The
    /// kernel's copies go through the page cache: without [`BuildOptions::fsync`], this also
    /// writes the rest of the file data there.
    pub kernel_copy: bool,
    /// Write file data through the page cache. Default false: file data is written past it
    /// (`O_DIRECT`) where the filesystem allows it, straight from the builder's buffers to the
    /// device. On the measured virtual machines that was faster and much steadier than the page
    /// cache, whose new memory cost the kernel from 0.2 to 4.6 s per GiB (see the README). It
    /// goes through the page cache where the filesystem refuses `O_DIRECT`, and, without
    /// [`BuildOptions::fsync`]: once the writes average slower than 1 GiB/s, judged from the
    /// first 64 MiB on (a disk rather than a host's cache); and with [`BuildOptions::verity`]
    /// (the hash tree reads the data back) or [`BuildOptions::kernel_copy`] (the kernel's copies
    /// go through the page cache). Metadata always goes through the page cache.
    pub page_cache: bool,
}

impl BuildOptions {
    /// The block size mke2fs would choose for the image these options make of about
    /// `content_bytes` bytes of content: 1 KiB blocks when the fixed size, or else the content
    /// with its headroom and at least the minimum size, is under 512 MiB (mke2fs.conf's
    /// "small" type), otherwise 4 KiB.
    pub fn block_size_for_content(&self, content_bytes: u64) -> BlockSize {
        let expected = self.size.unwrap_or_else(|| {
            let headroom = self.headroom.bytes_for(content_bytes);
            content_bytes.saturating_add(headroom).max(self.min_size)
        });
        crate::layout::sizing::block_size_for(expected)
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            size: None,
            block_size: BlockSize::K4,
            headroom: Headroom::DEFAULT,
            min_size: crate::layout::sizing::MIN_IMAGE_BYTES,
            inodes: None,
            label: None,
            uuid: None,
            hash_seed: None,
            journal: true,
            time: Timestamp::default(),
            limits: Limits::default(),
            cancel: None,
            buffer_size: 2 << 20,
            verity: None,
            fsync: false,
            kernel_copy: false,
            page_cache: false,
        }
    }
}
