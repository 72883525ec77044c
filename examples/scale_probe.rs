//! Scale probe: `cargo run --release --example scale_probe -- OUT N_FILES N_SUBDIRS`.
use oci2ext4::{BuildOptions, ImageBuilder, Metadata, Timestamp};
fn main() -> oci2ext4::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let (out, files, dirs): (&str, u64, u64) =
        (&a[1], a[2].parse().unwrap(), a[3].parse().unwrap());
    let t = Timestamp::from_secs(1_700_000_000);
    let start = std::time::Instant::now();
    let mut b = ImageBuilder::create(out, BuildOptions::default())?;
    for i in 0..dirs {
        b.add_dir(format!("subdirs/d{i:07}"), Metadata::new(0o755, 0, 0, t))?;
    }
    for i in 0..files {
        b.add_file(
            format!("files/{:03}/f{i:08}", i % 1000),
            Metadata::new(0o644, 0, 0, t),
            &mut &b""[..],
        )?;
    }
    let added = start.elapsed();
    let s = b.finish()?;
    println!("added in {added:?}, total {:?}; {s:?}", start.elapsed());
    Ok(())
}
