//! The `oci2ext4` command: a thin layer over the library.

mod cli;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

use cli::escape::escape;
use cli::progress::Bars;
use cli::signals::Interrupt;
use cli::units::human;
use cli::{build_options, BuildArgs, Cli, Command, Failure};
use oci2ext4::layer::{apply_layers, LayerReport};
use oci2ext4::source::{self, Plan};
use oci2ext4::{ImageBuilder, Summary};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return bad_usage(e),
    };
    let json = match &cli.command {
        Command::Build(args) => args.image.json,
        #[cfg(feature = "registry")]
        Command::Pull(args) => args.image.json,
        _ => false,
    };
    let interrupt = Interrupt::install();
    let result = cli::logging::init(cli.verbose)
        .map_err(|message| Failure { message, code: 2 })
        .and_then(|()| match cli.command {
            Command::Build(args) => build(args, &interrupt),
            #[cfg(feature = "registry")]
            Command::Pull(args) => pull(args, &interrupt),
            Command::Completions { shell } => cli::completions::completions(shell),
            Command::Man { out } => cli::completions::man(out.as_deref()),
        });
    match interrupt.outcome(result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("oci2ext4: error: {}", escape(&f.message));
            if json {
                cli::json::print_error(&f);
            }
            ExitCode::from(u8::try_from(f.code).unwrap_or(1))
        }
    }
}

/// A command line clap refuses: its message (and with `--json`, the error object too).
fn bad_usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let asked_json = std::env::args_os().any(|a| a == "--json");
    let is_error = !matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !(asked_json && is_error) {
        e.exit();
    }
    let _ = e.print();
    let text = e.render().to_string();
    let message = text
        .lines()
        .next()
        .map_or("invalid command line", |l| l.trim_start_matches("error: "))
        .to_string();
    cli::json::print_error(&Failure {
        message,
        code: e.exit_code(),
    });
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

fn build(args: BuildArgs, interrupt: &Interrupt) -> Result<(), Failure> {
    let started = Instant::now();
    let mut opts = build_options(&args.image)?;
    let cancel = interrupt.cancel_flag();
    opts.cancel = Some(cancel.clone());
    let inputs = source::input_paths(args.source.as_deref(), &args.layers);
    let inputs: Vec<&std::path::Path> = inputs.iter().map(|p| p.as_path()).collect();
    oci2ext4::builder::check_destination(&args.image.output, &inputs)?;
    let mut plan_options = source::PlanOptions::default()
        .with_spool_dir(
            args.image
                .output
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
        )
        .with_cancel(cancel);
    if let Some(platform) = cli::platform(args.platform.as_deref())? {
        plan_options = plan_options.with_platform(platform);
    }
    if let Some((uid, gid)) = args.owner.as_deref().map(source::parse_owner).transpose()? {
        plan_options = plan_options.with_owner(uid, gid);
    }
    let plan = source::plan(args.source.as_deref(), &args.layers, &plan_options)?;
    let origin = plan.origin().clone();
    if !args.image.quiet && !args.image.json {
        for n in &origin.notes {
            eprintln!("oci2ext4: note: {}", escape(n));
        }
    }
    cli::choose_block_size(&args.image, &mut opts, || plan.estimated_bytes());
    if args.image.per_layer.is_some() {
        let Plan::Layers { layers, .. } = plan else {
            return Err(oci2ext4::Error::invalid(
                "--per-layer needs an image with layers, not a directory",
            )
            .into());
        };
        let mut bars = Bars::new(args.image.quiet || args.image.json);
        let result = cli::per_layer::run(&args.image, opts, layers, &mut bars);
        bars.clear();
        return result;
    }
    let mut builder = ImageBuilder::create(&args.image.output, opts)?;
    interrupt.writing(builder.temp_path());
    let mut bars = Bars::new(args.image.quiet || args.image.json);
    let (reports, image_digest) = match plan {
        Plan::Layers {
            mut layers,
            image_digest,
            ..
        } => {
            // A JSON report names every layer's digests, even those nothing checks.
            for l in &mut layers {
                l.report_digests |= args.image.json;
            }
            let reports = apply_layers(&mut builder, layers, &mut bars);
            bars.clear();
            (reports?, image_digest)
        }
        Plan::Directory { path, owner, .. } => {
            source::add_tree(&mut builder, &path, owner)?;
            (Vec::new(), None)
        }
        _ => {
            return Err(oci2ext4::Error::unsupported("a source this command does not know").into())
        }
    };
    let warnings = print_warnings(&args.image, &builder);
    let summary = interrupt.finishing(&args.image.output, || Ok(builder.finish()?))?;
    let seconds = started.elapsed().as_secs_f64();
    report(
        &args.image,
        &summary,
        &reports,
        image_digest.as_deref(),
        Source::Build(&origin),
        &warnings,
        seconds,
    );
    Ok(())
}

/// What a pull adds to the summary.
#[cfg_attr(not(feature = "registry"), allow(dead_code))]
struct PullReport {
    reference: String,
    index_digest: Option<String>,
    platform: String,
    blobs_downloaded: usize,
    bytes_downloaded: u64,
    blobs_cached: usize,
}

/// Where the image came from, for the summary.
enum Source<'a> {
    Build(&'a source::Origin),
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    Pull(&'a PullReport),
}

/// Waits until `flag` is set.
#[cfg(feature = "registry")]
async fn cancelled(flag: Arc<AtomicBool>) {
    while !flag.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[cfg(feature = "registry")]
fn pull(args: cli::PullArgs, interrupt: &Interrupt) -> Result<(), Failure> {
    use oci2ext4::registry::Puller;
    use oci2ext4::{Error, ErrorKind};
    let started = Instant::now();
    let cancel = interrupt.cancel_flag();
    let mut opts = build_options(&args.image)?;
    opts.cancel = Some(cancel.clone());
    oci2ext4::builder::check_destination(&args.image.output, &[])?;
    let pull_opts = cli::pull_options(&args, cancel.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("oci2ext4-net")
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the network threads", e))?;
    let puller = Puller::new(pull_opts)?;
    let mut image = runtime.block_on(async {
        tokio::select! {
            r = puller.resolve(&args.reference) => r,
            _ = cancelled(cancel.clone()) => Err(Error::new(ErrorKind::Cancelled, "cancelled")),
        }
    })?;
    cli::choose_block_size(&args.image, &mut opts, || image.estimated_tar_bytes());
    if args.image.per_layer.is_some() {
        let mut bars = Bars::new(args.image.quiet || args.image.json);
        bars.watch_downloads(image.downloads());
        let result = cli::per_layer::run(&args.image, opts, image.take_layers(), &mut bars);
        bars.clear();
        result?;
        runtime.block_on(image.finish())?;
        return Ok(());
    }
    let mut builder = ImageBuilder::create(&args.image.output, opts)?;
    interrupt.writing(builder.temp_path());
    let mut bars = Bars::new(args.image.quiet || args.image.json);
    bars.watch_downloads(image.downloads());
    let reports = apply_layers(&mut builder, image.take_layers(), &mut bars);
    bars.clear();
    let reports = reports.map_err(|e| image.explain(e))?;
    let warnings = print_warnings(&args.image, &builder);
    let reference = image.reference.to_string();
    let manifest_digest = image.manifest_digest.clone();
    let index_digest = image.index_digest.clone();
    let platform = image.platform.to_string();
    let stats = runtime.block_on(image.finish())?;
    let summary = interrupt.finishing(&args.image.output, || Ok(builder.finish()?))?;
    let seconds = started.elapsed().as_secs_f64();
    report(
        &args.image,
        &summary,
        &reports,
        Some(&manifest_digest),
        Source::Pull(&PullReport {
            reference,
            index_digest,
            platform,
            blobs_downloaded: stats.blobs_downloaded,
            bytes_downloaded: stats.bytes_downloaded,
            blobs_cached: stats.blobs_cached,
        }),
        &warnings,
        seconds,
    );
    Ok(())
}

/// The builder's warnings, printed unless `--quiet`.
fn print_warnings(args: &cli::ImageArgs, builder: &ImageBuilder) -> Vec<String> {
    let warnings = builder.warnings().to_vec();
    if !args.quiet {
        for w in &warnings {
            eprintln!("oci2ext4: warning: {}", escape(w));
        }
    }
    warnings
}

fn report(
    args: &cli::ImageArgs,
    summary: &Summary,
    layers: &[LayerReport],
    image_digest: Option<&str>,
    source: Source,
    warnings: &[String],
    seconds: f64,
) {
    let (pull, origin) = match source {
        Source::Build(o) => (None, Some(o)),
        Source::Pull(p) => (Some(p), None),
    };
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
        let mut out = serde_json::json!({
            "schema": cli::json::SCHEMA,
            "output": args.output.display().to_string(),
            "image_digest": image_digest,
            "summary": summary,
            "layers": layers,
            "warnings": warnings,
            "seconds": seconds,
        });
        if let Some(o) = origin {
            out["source"] = serde_json::json!({
                "reading": o.reading.name(),
                "notes": o.notes,
            });
            out["platform"] = serde_json::json!(o.platform.as_ref().map(ToString::to_string));
        }
        if let Some(v) = &summary.verity {
            out["verity"] = cli::verity_report(args, v).0;
        }
        if let Some(p) = pull {
            out["reference"] = serde_json::json!(p.reference);
            out["index_digest"] = serde_json::json!(p.index_digest);
            out["platform"] = serde_json::json!(p.platform);
            out["download"] = serde_json::json!({
                "blobs": p.blobs_downloaded,
                "bytes": p.bytes_downloaded,
                "cached_blobs": p.blobs_cached,
            });
        }
        cli::json::print(out);
    } else if !args.quiet {
        let used_pct = 100.0 * summary.blocks_used as f64 / summary.blocks_count.max(1) as f64;
        let read = origin.map_or_else(String::new, |o| match &o.platform {
            Some(p) => format!("; read as {} for {p}", o.reading.describe()),
            None => format!("; read as {}", o.reading.describe()),
        });
        let pulled = pull.map_or_else(String::new, |p| {
            format!(
                "{} ({}, {}): {} blob(s) downloaded ({}), {} from the cache; ",
                p.reference,
                image_digest.unwrap_or("?"),
                p.platform,
                p.blobs_downloaded,
                human(p.bytes_downloaded),
                p.blobs_cached
            )
        });
        let line = format!(
            "{pulled}{}: {} ext4 image, {} used ({used_pct:.0}%), {} of {} inodes used; {} entries, {} files, {} of file data{}{read}; {seconds:.2} s",
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
        eprintln!("{}", escape(&line));
        if let Some(v) = &summary.verity {
            eprintln!("{}", escape(&cli::verity_report(args, v).1));
        }
    }
}
