//! The image as a VM's root disk: a real distribution tree, built into an image with default
//! options (4 KiB blocks) and one with 1 KiB blocks, each booted by QEMU with a guest kernel that mounts it read-write and runs
//! the distribution's own programs (`tests/vm/guest-check.sh`), then e2fsck on what the guest
//! left behind.
//!
//! Needs `qemu-system-x86_64`, a kernel in `OCI2EXT4_VM_KERNEL` (NVMe, ext4 and the serial
//! console built in, such as Debian's cloud kernel) and a root filesystem tar in
//! `OCI2EXT4_VM_ROOTFS` (such as a debootstrap tree); `.ci/run` prepares both.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn a_debian_image_boots_and_runs_read_write() {
    let (Ok(kernel), Ok(rootfs)) = (
        std::env::var("OCI2EXT4_VM_KERNEL"),
        std::env::var("OCI2EXT4_VM_ROOTFS"),
    ) else {
        common::skip(
            "VM boot",
            "OCI2EXT4_VM_KERNEL and OCI2EXT4_VM_ROOTFS are not set (.ci/run sets them)",
        );
        return;
    };
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip("VM boot", "qemu-system-x86_64 is not installed");
        return;
    }
    let dir = common::scratch();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/boot.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg(&rootfs)
        .arg(&kernel)
        .arg(dir.path())
        .env("OCI2EXT4", common::bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "boot test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // One boot per block size: a 1 KiB image and a default (4 KiB) one.
    for bs in [1024, 4096] {
        assert!(
            stdout.contains(&format!(
                "boot test passed: {}",
                dir.path().join(format!("vm-{bs}.ext4")).display()
            )),
            "{stdout}"
        );
    }
    assert_eq!(stdout.matches("OCI2EXT4: OK").count(), 2, "{stdout}");
    assert!(
        stdout.contains("cap_net_raw"),
        "ping lost its capability:\n{stdout}"
    );
}
