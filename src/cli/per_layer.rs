//! `--per-layer`: one image per layer instead of one flattened image.

use oci2ext4::layer::{build_per_layer, LayerInput, OverlayXattr, PerLayerOptions, Progress};
use oci2ext4::BuildOptions;

use super::escape::escape;
use super::{Failure, ImageArgs};

/// Builds the per-layer images of `layers` into the `--per-layer` directory and prints the
/// summary; `-o` names the manifest.
pub fn run(
    args: &ImageArgs,
    build: BuildOptions,
    layers: Vec<LayerInput>,
    progress: &mut dyn Progress,
) -> Result<(), Failure> {
    let Some(dir) = args.per_layer.clone() else {
        return Ok(());
    };
    let xattr = match args.overlay_xattr.as_str() {
        "user" => OverlayXattr::User,
        _ => OverlayXattr::Trusted,
    };
    let opts = PerLayerOptions::new(dir.clone(), args.output.clone())
        .with_build(build)
        .with_xattr(xattr);
    let summary = build_per_layer(layers, &opts, progress)?;
    if !args.quiet {
        for w in &summary.warnings {
            eprintln!("oci2ext4: warning: {}", escape(w));
        }
    }
    if args.json {
        let out = serde_json::json!({
            "schema": super::json::SCHEMA,
            "manifest": summary.manifest.display().to_string(),
            "dir": dir.display().to_string(),
            "layers": summary.layers.iter().map(|l| serde_json::json!({
                "diff_id": l.diff_id,
                "file": l.file,
                "verity": l.verity,
                "file_bytes": l.file_bytes,
                "reused": l.reused,
            })).collect::<Vec<_>>(),
            "built": summary.built.len(),
            "reused": summary.reused,
            "mount_options": summary.mount_options,
            "warnings": summary.warnings,
        });
        super::json::print(out);
    } else if !args.quiet {
        for l in &summary.layers {
            let hash = l.verity.as_ref().map_or_else(String::new, |v| {
                format!(", verity root hash {}", v.root_hash)
            });
            let how = if l.reused { "reused" } else { "built" };
            eprintln!(
                "{}",
                escape(&format!("{}: {how}{hash}", dir.join(&l.file).display()))
            );
        }
        eprintln!(
            "{}",
            escape(&format!(
                "{}: {} layer image(s), {} built, {} reused; mount each at its name without .ext4 and stack them with -o {}",
                summary.manifest.display(),
                summary.layers.len(),
                summary.built.len(),
                summary.reused,
                summary.mount_options
            ))
        );
    }
    Ok(())
}
