//! The `oci2ext4` command: a thin layer over the library.

mod cli;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

use cli::progress::Bars;
use cli::units::human;
use cli::{build_options, BuildArgs, Cli, Command, Failure};
use oci2ext4::layer::{apply_layers, LayerReport};
use oci2ext4::source::{self, Plan};
use oci2ext4::{ImageBuilder, Summary};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("oci2ext4: error: {}", f.message);
            ExitCode::from(u8::try_from(f.code).unwrap_or(1))
        }
    }
}

/// Sets a flag on SIGINT and SIGTERM; the build checks it and removes its output.
fn cancel_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

fn build(args: BuildArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let mut opts = build_options(&args.image)?;
    opts.cancel = Some(cancel_flag());
    let plan = source::plan(
        args.source.as_deref(),
        &args.layers,
        &args.platform,
        args.owner.as_deref(),
    )?;
    let mut builder = ImageBuilder::create(&args.image.output, opts)?;
    let mut bars = Bars::new(args.image.quiet || args.image.json);
    let (reports, image_digest) = match plan {
        Plan::Layers {
            mut layers,
            image_digest,
        } => {
            // A JSON report names every layer's digests, even those nothing checks.
            for l in &mut layers {
                l.report_digests |= args.image.json;
            }
            let reports = apply_layers(&mut builder, layers, &mut bars);
            bars.clear();
            (reports?, image_digest)
        }
        Plan::Directory { path, owner } => {
            source::directory::add_tree(&mut builder, &path, owner)?;
            (Vec::new(), None)
        }
    };
    let warnings = builder.warnings().to_vec();
    if !args.image.quiet {
        for w in &warnings {
            eprintln!("oci2ext4: warning: {w}");
        }
    }
    let summary = builder.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    report(
        &args.image,
        &summary,
        &reports,
        image_digest.as_deref(),
        &warnings,
        seconds,
    );
    Ok(())
}

fn report(
    args: &cli::ImageArgs,
    summary: &Summary,
    layers: &[LayerReport],
    image_digest: Option<&str>,
    warnings: &[String],
    seconds: f64,
) {
    let files: u64 = layers.iter().map(|l| l.stats.files).sum();
    if args.json {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.name,
                    "digest": l.blob_digest.map(|d| d.to_string()),
                    "size": l.blob_size,
                    "diff_id": l.diff_id.map(|d| d.to_string()),
                    "uncompressed_size": l.diff_size,
                    "compression": l.compression.name(),
                    "entries": l.stats.entries,
                    "files": l.stats.files,
                    "file_bytes": l.stats.file_bytes,
                    "whiteouts": l.stats.whiteouts,
                })
            })
            .collect();
        let out = serde_json::json!({
            "output": args.output.display().to_string(),
            "image_digest": image_digest,
            "summary": summary,
            "layers": layers,
            "warnings": warnings,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else if !args.quiet {
        let used_pct = 100.0 * summary.blocks_used as f64 / summary.blocks_count.max(1) as f64;
        eprintln!(
            "{}: {} ext4 image, {} used ({used_pct:.0}%), {} of {} inodes used; {} entries, {} files, {} of file data{}; {seconds:.2} s",
            args.output.display(),
            human(summary.image_bytes),
            human(summary.blocks_used * summary.block_size),
            summary.inodes_used,
            summary.inodes_count,
            summary.entries,
            files,
            human(summary.data_bytes),
            if layers.is_empty() { String::new() } else { format!(" from {} layer(s)", layers.len()) },
        );
    }
}
