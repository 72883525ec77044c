//! Builds a small image with one entry of every kind.
//!
//! ```text
//! cargo run --example small_image -- small.ext4
//! e2fsck -fn small.ext4
//! ```

use oci2ext4::{BuildOptions, ImageBuilder, Metadata, Special, Timestamp, Xattr};

fn main() -> oci2ext4::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "small.ext4".into());
    let t = Timestamp {
        sec: 1_700_000_000,
        nsec: 123_456_789,
    };
    let mut image = ImageBuilder::create(&out, BuildOptions::default())?;
    image.add_dir("etc", Metadata::new(0o755, 0, 0, t))?;
    image.add_file(
        "etc/hostname",
        Metadata::new(0o644, 0, 0, t),
        &mut &b"microvm\n"[..],
    )?;
    image.add_hard_link("etc/hostname.bak", "etc/hostname")?;
    let mut ping = Metadata::new(0o4755, 0, 0, t);
    ping.xattrs.push(Xattr {
        name: b"security.capability".to_vec(),
        value: vec![
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    });
    image.add_file("bin/ping", ping, &mut &b"\x7fELF pretend"[..])?;
    image.add_special(
        "bin/sh",
        Metadata::new(0o777, 0, 0, t),
        Special::Symlink(b"busybox".to_vec()),
    )?;
    image.add_special(
        "dev/null",
        Metadata::new(0o666, 0, 0, t),
        Special::CharDevice { major: 1, minor: 3 },
    )?;
    image.add_special(
        "dev/sda",
        Metadata::new(0o660, 0, 6, t),
        Special::BlockDevice { major: 8, minor: 0 },
    )?;
    image.add_special("run/initctl", Metadata::new(0o600, 0, 0, t), Special::Fifo)?;
    image.add_dir("tmp", Metadata::new(0o1777, 0, 0, t))?;
    image.add_dir("home/user", Metadata::new(0o700, 1000, 1000, t))?;
    let summary = image.finish()?;
    println!(
        "{out}: {} bytes, {} of {} blocks used, {} of {} inodes used",
        summary.image_bytes,
        summary.blocks_used,
        summary.blocks_count,
        summary.inodes_used,
        summary.inodes_count
    );
    Ok(())
}
