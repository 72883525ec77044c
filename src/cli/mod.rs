//! The command line: arguments in, library calls, a summary out.

pub mod progress;
pub mod units;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use oci2ext4::{BuildOptions, ErrorKind, Headroom, Timestamp};

/// Turn container images into bootable ext4 filesystem images.
#[derive(Parser, Debug)]
#[command(name = "oci2ext4", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a local source: an OCI layout directory (DIR, DIR:TAG or
    /// DIR@sha256:...), a `docker save` archive, a root filesystem tar (plain, gzip or zstd),
    /// or a directory. With --layer, apply layer tars in order instead.
    Build(BuildArgs),
}

/// Arguments of `build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The source; omit it when giving --layer.
    pub source: Option<String>,
    /// A layer tar (plain, gzip or zstd) to apply, in order; may be repeated.
    #[arg(long = "layer", value_name = "FILE")]
    pub layers: Vec<PathBuf>,
    /// Platform to pick from an image index: os/arch[/variant].
    #[arg(long, default_value = "linux/amd64")]
    pub platform: String,
    /// With a directory source: owner for every entry, as UID:GID.
    #[arg(long, value_name = "UID:GID")]
    pub owner: Option<String>,
    /// Image options.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Options of the image written, shared by every subcommand.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Where to write the image.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Exact image size (e.g. 2G); fails if the content does not fit.
    #[arg(long, value_parser = units::parse_size)]
    pub size: Option<u64>,
    /// Free space beyond the content: a percentage (20%) or a size (512M).
    #[arg(long, default_value = "20%")]
    pub headroom: String,
    /// Total number of inodes (default: used + 20% + 1024).
    #[arg(long)]
    pub inodes: Option<u64>,
    /// Volume label (up to 16 bytes).
    #[arg(long)]
    pub label: Option<String>,
    /// Filesystem UUID (default: derived from the content).
    #[arg(long)]
    pub uuid: Option<String>,
    /// Directory hash seed, as a UUID (default: derived from the content).
    #[arg(long)]
    pub hash_seed: Option<String>,
    /// Leave out the journal.
    #[arg(long)]
    pub no_journal: bool,
    /// Stop when the image would grow past this size (e.g. 100G).
    #[arg(long, value_parser = units::parse_size, default_value = "1T")]
    pub max_size: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bars and no summary on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// A command-line error: the message and the exit status.
pub struct Failure {
    /// Printed on stderr.
    pub message: String,
    /// Exit status.
    pub code: i32,
}

impl From<oci2ext4::Error> for Failure {
    fn from(e: oci2ext4::Error) -> Self {
        Failure {
            code: exit_code(e.kind()),
            message: e.to_string(),
        }
    }
}

/// Exit statuses, one per error class.
pub fn exit_code(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::InvalidArgument => 2,
        ErrorKind::CorruptInput => 3,
        ErrorKind::DigestMismatch => 4,
        ErrorKind::LimitExceeded => 5,
        ErrorKind::Unsupported => 6,
        ErrorKind::Io => 7,
        ErrorKind::Registry => 8,
        ErrorKind::Cancelled => 130,
        _ => 1,
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

fn parse_uuid(s: &str, what: &str) -> Result<[u8; 16], Failure> {
    uuid::Uuid::parse_str(s)
        .map(|u| *u.as_bytes())
        .map_err(|e| usage(format!("--{what} {s:?}: {e}")))
}

/// Build options from the arguments and the environment (`SOURCE_DATE_EPOCH`).
pub fn build_options(args: &ImageArgs) -> Result<BuildOptions, Failure> {
    let mut opts = BuildOptions::default();
    opts.size = args.size;
    opts.headroom = match args.headroom.strip_suffix('%') {
        Some(p) => Headroom::Percent(p.trim().parse().map_err(|_| {
            usage(format!(
                "--headroom {:?} is not a percentage",
                args.headroom
            ))
        })?),
        None => Headroom::Bytes(units::parse_size(&args.headroom).map_err(usage)?),
    };
    opts.inodes = args.inodes;
    opts.label = args.label.clone();
    opts.uuid = args
        .uuid
        .as_deref()
        .map(|u| parse_uuid(u, "uuid"))
        .transpose()?;
    opts.hash_seed = args
        .hash_seed
        .as_deref()
        .map(|u| parse_uuid(u, "hash-seed"))
        .transpose()?;
    opts.journal = !args.no_journal;
    opts.limits.max_size = args.max_size;
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let sec: i64 = epoch.trim().parse().map_err(|_| {
            usage(format!(
                "SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds"
            ))
        })?;
        opts.time = Timestamp::from_secs(sec);
    }
    Ok(opts)
}
