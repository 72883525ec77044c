//! The sections at the end of `--help` and of the manual page.

/// Environment variables and exit statuses (lines kept under 80 columns).
pub const AFTER_HELP: &str = "\
Environment:
  DOCKER_CONFIG       Docker's config directory (default ~/.docker); its
                      config.json is read for registry credentials
  REGISTRY_AUTH_FILE  A containers auth.json read for registry credentials
  XDG_RUNTIME_DIR     Its containers/auth.json is read for credentials
  XDG_CONFIG_HOME     Its containers/auth.json (default ~/.config) likewise
  XDG_CACHE_HOME      The blob cache is its oci2ext4 directory (default
                      ~/.cache/oci2ext4)
  SOURCE_DATE_EPOCH   Seconds since 1970 for the filesystem's own times
                      (superblock, root, lost+found): reproducible images
  RUST_LOG            What -v logs, as target=level pairs
                      (oci2ext4=debug,warn)

Exit status:
  0    success
  1    internal error (a bug, reported instead of a damaged image)
  2    invalid argument (a size that does not fit, an unknown tag, options)
  3    corrupt input (broken tar or compressed stream, bad entry name)
  4    digest mismatch
  5    limit exceeded (--max-size, inode count, name length, path depth)
  6    unsupported input (media type, tar extension)
  7    I/O error
  8    registry error (unreachable, authentication refused, no such tag)
  129  cancelled by SIGHUP
  130  cancelled by SIGINT (Ctrl-C)
  143  cancelled by SIGTERM";
