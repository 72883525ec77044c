//! The command line: arguments in, library calls, a summary out.

pub mod completions;
pub mod escape;
pub mod help;
pub mod json;
pub mod logging;
pub mod per_layer;
pub mod progress;
pub mod signals;
pub mod units;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use oci2ext4::verity::VerityInfo;
use oci2ext4::{BlockSize, BuildOptions, ErrorKind, Headroom, Timestamp};

/// Turn container images into bootable ext4 filesystem images.
#[derive(Parser, Debug)]
#[command(name = "oci2ext4", version, about, long_about = None, after_help = help::AFTER_HELP)]
pub struct Cli {
    /// Log what happens on stderr: -v informs, -vv debugs, -vvv traces (RUST_LOG, as
    /// "oci2ext4=debug,warn", overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
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
    #[command(after_help = help::AFTER_HELP)]
    Build(BuildArgs),
    /// Pull an image from a registry and build it. REF is read as Docker reads it: `alpine`
    /// is docker.io/library/alpine:latest; `ghcr.io/org/app:v1`, `localhost:5000/app@sha256:...`.
    /// Blobs are cached (an OCI image layout) and downloaded only once.
    #[cfg(feature = "registry")]
    #[command(after_help = help::AFTER_HELP)]
    Pull(PullArgs),
    /// Print a shell completion script on stdout (e.g. `oci2ext4 completions bash >
    /// /usr/share/bash-completion/completions/oci2ext4`).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, or write one page per command into a directory.
    Man {
        /// Write oci2ext4.1, oci2ext4-build.1, ... into this directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Arguments of `pull`.
#[cfg(feature = "registry")]
#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image reference.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Platform to pick from an image index: os/arch[/variant] (default: the host's, such as
    /// linux/amd64 or linux/arm64/v8).
    #[arg(long)]
    pub platform: Option<String>,
    /// User name for the registry (the password comes from --password-stdin). Without it,
    /// credentials come from Docker's config.json or containers' auth.json, if any.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the registry password (or token) from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// The credentials file (Docker's config.json or containers' auth.json form) to read
    /// instead of the usual places.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// The blob cache (default: $XDG_CACHE_HOME/oci2ext4, or ~/.cache/oci2ext4).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build from the cache alone, without the network.
    #[arg(long)]
    pub offline: bool,
    /// Reach the registry over plain HTTP.
    #[arg(long)]
    pub plain_http: bool,
    /// A registry to reach over plain HTTP; may be repeated.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// A PEM file of CA certificates to trust besides the system's; may be repeated.
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// How many layers download at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// How many times a failed request is tried again (connection errors, HTTP 429 and 5xx).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// The longest one layer may take to download, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub layer_timeout: u64,
    /// Image options.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Arguments of `build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The source (`-` for standard input); omit it when giving --layer.
    pub source: Option<String>,
    /// A layer tar (plain, gzip or zstd) to apply, in order; may be repeated.
    #[arg(long = "layer", value_name = "FILE")]
    pub layers: Vec<PathBuf>,
    /// Platform to pick from an image index: os/arch[/variant] (default: the host's, such as
    /// linux/amd64 or linux/arm64/v8).
    #[arg(long)]
    pub platform: Option<String>,
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
    /// Block size: 4096 (page-sized, what a VM's root disk wants), 1024, 2048, or auto: as
    /// mke2fs chooses, 1024 for an image expected to be under 512 MiB (from the size given, or
    /// the layers' sizes and the headroom), else 4096.
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = parse_block_size)]
    pub block_size: BlockSizeArg,
    /// Free space beyond the content: a percentage (20%) or a size (512M) [default: 20% of the
    /// content, at least 256M].
    #[arg(long)]
    pub headroom: Option<String>,
    /// Total number of inodes (default: the used ones, plus free ones: one per 16 KiB of
    /// image, and at least a fifth of the used ones).
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
    /// Make a journal even with --verity.
    #[arg(long, conflicts_with = "no_journal")]
    pub journal: bool,
    /// Append a dm-verity hash tree (sha256, 4096-byte blocks) after the filesystem, which
    /// then has no journal unless --journal is given.
    #[arg(long)]
    pub verity: bool,
    /// The dm-verity salt in hex, `-` for none (default: derived from the content).
    #[arg(long, value_name = "HEX", requires = "verity")]
    pub verity_salt: Option<String>,
    /// Write veritysetup's superblock before the hash tree, as `veritysetup format` does.
    #[arg(long, requires = "verity")]
    pub verity_superblock: bool,
    /// The guest's device for the image, in the printed dm-mod.create= kernel parameter.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/dev/vda",
        requires = "verity"
    )]
    pub verity_device: String,
    /// Make the image durable before exiting: sync its data, rename it, sync its directory.
    #[arg(long)]
    pub fsync: bool,
    /// Write file data through the page cache, not past it with O_DIRECT. By default O_DIRECT
    /// is used where the filesystem allows it, and (without --fsync) left for the page cache on
    /// a device slower than 1 GiB/s; --verity without --fsync uses the page cache anyway.
    #[arg(long)]
    pub page_cache: bool,
    /// Stop when the image would grow past this size (e.g. 100G).
    #[arg(long, value_parser = units::parse_size, default_value = "1T")]
    pub max_size: u64,
    /// Write one image per layer into DIR, in overlay form, reusing those already there;
    /// `-o` then names the JSON manifest of the layers.
    #[arg(long, value_name = "DIR")]
    pub per_layer: Option<PathBuf>,
    /// The overlayfs attributes written with --per-layer: `trusted` (root mounts) or `user`
    /// (mounts with `userxattr`).
    #[arg(long, value_name = "NS", default_value = "trusted", value_parser = ["trusted", "user"], requires = "per_layer")]
    pub overlay_xattr: String,
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
            message: oci2ext4::error::display_chain(&e),
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

/// The `--block-size` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSizeArg {
    /// Chosen from the expected image size.
    Auto,
    /// Given.
    Fixed(BlockSize),
}

/// `auto` or a block size in bytes.
fn parse_block_size(s: &str) -> Result<BlockSizeArg, String> {
    if s == "auto" {
        return Ok(BlockSizeArg::Auto);
    }
    s.parse::<u64>()
        .ok()
        .and_then(BlockSize::from_bytes)
        .map(BlockSizeArg::Fixed)
        .ok_or_else(|| format!("{s:?} is not auto, 1024, 2048 or 4096"))
}

/// Sets the block size of `opts`: the one given, or with `auto` the one mke2fs would choose for
/// about `content_bytes()` bytes of content (not called when a block size is given).
pub fn choose_block_size(
    args: &ImageArgs,
    opts: &mut BuildOptions,
    content_bytes: impl FnOnce() -> u64,
) {
    opts.block_size = match args.block_size {
        BlockSizeArg::Fixed(bs) => bs,
        BlockSizeArg::Auto => opts.block_size_for_content(content_bytes()),
    };
    tracing::info!(block_size = opts.block_size.bytes(), "block size");
}

fn parse_uuid(s: &str, what: &str) -> Result<[u8; 16], Failure> {
    uuid::Uuid::parse_str(s)
        .map(|u| *u.as_bytes())
        .map_err(|e| usage(format!("--{what} {s:?}: {e}")))
}

/// Pull options from the arguments; reads the password from standard input when asked to.
#[cfg(feature = "registry")]
pub fn pull_options(
    args: &PullArgs,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<oci2ext4::registry::PullOptions, Failure> {
    use oci2ext4::registry::{Credentials, PullOptions, TransportOptions};
    use std::io::Read;
    let credentials = match (&args.username, args.password_stdin) {
        (Some(user), true) => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| usage(format!("cannot read the password from standard input: {e}")))?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            if password.is_empty() {
                return Err(usage("--password-stdin: standard input is empty"));
            }
            Some(Credentials::Basic {
                username: user.clone(),
                password,
            })
        }
        (Some(_), false) => return Err(usage("--username needs --password-stdin")),
        (None, true) => return Err(usage("--password-stdin needs --username")),
        (None, false) => None,
    };
    let mut transport = TransportOptions::default()
        .with_plain_http(args.plain_http)
        .with_retries(args.retries)
        .with_layer_timeout(std::time::Duration::from_secs(args.layer_timeout));
    for r in &args.insecure_registries {
        transport = transport.with_insecure_registry(r.clone());
    }
    for c in &args.ca_certs {
        transport = transport.with_ca_cert(c.clone());
    }
    let mut options = PullOptions::default()
        .with_platform(
            platform(args.platform.as_deref())?.unwrap_or_else(oci2ext4::oci::Platform::host),
        )
        .with_offline(args.offline)
        .with_transport(transport)
        .with_concurrency(usize::from(args.concurrency))
        .with_cancel(cancel)
        .with_max_blob_size(args.image.max_size);
    if let Some(dir) = &args.cache_dir {
        options = options.with_cache_dir(dir.clone());
    }
    if let Some(c) = credentials {
        options = options.with_credentials(c);
    }
    if let Some(f) = &args.authfile {
        options = options
            .with_auth_env(oci2ext4::registry::AuthEnv::from_process().with_auth_file(f.clone()));
    }
    Ok(options)
}

/// The platform `--platform` names, if it is given (`None` means the host's).
pub fn platform(arg: Option<&str>) -> Result<Option<oci2ext4::oci::Platform>, Failure> {
    Ok(arg.map(oci2ext4::oci::Platform::parse).transpose()?)
}

/// Build options from the arguments and the environment (`SOURCE_DATE_EPOCH`).
pub fn build_options(args: &ImageArgs) -> Result<BuildOptions, Failure> {
    let mut opts = BuildOptions::default();
    opts.size = args.size;
    if let Some(headroom) = &args.headroom {
        opts.headroom = match headroom.strip_suffix('%') {
            Some(p) => Headroom::Percent(
                p.trim()
                    .parse()
                    .map_err(|_| usage(format!("--headroom {headroom:?} is not a percentage")))?,
            ),
            None => Headroom::Bytes(units::parse_size(headroom).map_err(usage)?),
        };
    }
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
    opts.journal = !args.no_journal && (!args.verity || args.journal);
    if args.verity {
        let mut v = oci2ext4::verity::VerityOptions::default();
        v.salt = args
            .verity_salt
            .as_deref()
            .map(oci2ext4::verity::parse_salt)
            .transpose()?;
        v.superblock = args.verity_superblock;
        opts.verity = Some(v);
    }
    opts.fsync = args.fsync;
    opts.page_cache = args.page_cache;
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

/// The dm-verity part of the summary: JSON, and lines for the terminal.
pub fn verity_report(args: &ImageArgs, info: &VerityInfo) -> (serde_json::Value, String) {
    let image = args.output.display().to_string();
    let open = info.veritysetup_open(&image, "vroot");
    let cmdline = info.kernel_cmdline(&args.verity_device, "vroot");
    let mut json = serde_json::to_value(info).unwrap_or_default();
    json["veritysetup_open"] = serde_json::json!(open);
    json["kernel_cmdline"] = serde_json::json!(cmdline);
    let text = format!(
        "dm-verity: root hash {}, salt {}, {} data blocks, hash tree at byte {}{}\n  {open}\n  {cmdline}",
        info.root_hash,
        info.salt,
        info.data_blocks,
        info.hash_offset,
        if info.superblock { " (with superblock)" } else { "" },
    );
    (json, text)
}
