//! The README's library example: builds an image from any local source, as `oci2ext4 build`
//! does, adds a file of its own and appends a dm-verity hash tree.
//!
//! ```text
//! cargo run --example library -- fixtures/example-oci rootfs.ext4
//! ```
//!
//! `tests/readme.rs` checks that the README shows this program as it is here.

use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::{self, Plan, PlanOptions};
use oci2ext4::verity::VerityOptions;
use oci2ext4::{BuildOptions, Error, ImageBuilder, Metadata, Timestamp};

fn main() -> oci2ext4::Result<()> {
    let mut args = std::env::args().skip(1);
    let src = args.next().unwrap_or_else(|| "fixtures/example-oci".into());
    let out = args.next().unwrap_or_else(|| "rootfs.ext4".into());

    // An OCI layout or archive, a docker archive, a root filesystem tar or a directory;
    // `img:TAG` and `img@sha256:...` pick an image, the host's platform by default.
    let plan = source::plan(Some(&src), &[], &PlanOptions::default())?;

    let mut options = BuildOptions::default();
    options.label = Some("rootfs".into());
    options.verity = Some(VerityOptions::default());
    options.journal = false; // a verity device is read-only

    let mut image = ImageBuilder::create(&out, options)?;
    match plan {
        Plan::Layers { layers, .. } => {
            for layer in apply_layers(&mut image, layers, &mut NoProgress)? {
                println!("{}: {} entries", layer.name, layer.stats.entries);
            }
        }
        Plan::Directory { path, owner, .. } => source::add_tree(&mut image, &path, owner)?,
        _ => {
            return Err(Error::unsupported(
                "a kind of source this program does not know",
            ))
        }
    }
    let t = Timestamp::from_secs(1_700_000_000);
    let meta = Metadata::new(0o644, 0, 0, t);
    image.add_file("etc/built-by", meta, &mut &b"oci2ext4\n"[..])?;

    let summary = image.finish()?;
    let verity = summary.verity.expect("asked for");
    println!(
        "{out}: {} bytes, root hash {}",
        summary.image_bytes, verity.root_hash
    );
    println!("{}", verity.veritysetup_open(&out, "root"));
    Ok(())
}
