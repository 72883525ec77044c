//! The `--json` output's frame: the schema version and the error object printed on failure.

use super::escape::escape_json;
use super::Failure;

/// The version of the JSON objects printed with `--json`; raised when a field changes meaning
/// or goes away (fields may be added without raising it).
pub const SCHEMA: u32 = 1;

/// The error class an exit status stands for (one status per class, see `exit_code`).
pub fn class(code: i32) -> &'static str {
    match code {
        2 => "invalid_argument",
        3 => "corrupt_input",
        4 => "digest_mismatch",
        5 => "limit_exceeded",
        6 => "unsupported",
        7 => "io",
        8 => "registry",
        // 128 + the signal: SIGHUP, SIGINT, SIGTERM.
        129 | 130 | 143 => "cancelled",
        _ => "other",
    }
}

/// `{"schema": 1, "error": {"class", "message", "exit"}}` for a failure.
pub fn error_object(f: &Failure) -> serde_json::Value {
    serde_json::json!({
        "schema": SCHEMA,
        "error": {
            "class": class(f.code),
            "message": f.message,
            "exit": f.code,
        }
    })
}

/// Prints `out` on stdout, pretty, with the input's text escaped as on stderr (see
/// [`escape_json`]). A reader that went away (`| head`) is not worth a panic or a second error.
pub fn print(mut out: serde_json::Value) {
    use std::io::Write;
    escape_json(&mut out);
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_default()
    );
}

/// Prints the error object of `f` on stdout, one line, escaped as [`print`] escapes.
pub fn print_error(f: &Failure) {
    use std::io::Write;
    let mut out = error_object(f);
    escape_json(&mut out);
    let _ = writeln!(std::io::stdout().lock(), "{out}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci2ext4::ErrorKind;

    #[test]
    fn every_kind_has_its_own_class() {
        let kinds = [
            ErrorKind::InvalidArgument,
            ErrorKind::CorruptInput,
            ErrorKind::DigestMismatch,
            ErrorKind::LimitExceeded,
            ErrorKind::Unsupported,
            ErrorKind::Io,
            ErrorKind::Registry,
            ErrorKind::Cancelled,
        ];
        let classes: std::collections::BTreeSet<&str> = kinds
            .iter()
            .map(|&k| class(super::super::exit_code(k)))
            .collect();
        assert_eq!(classes.len(), kinds.len());
        assert!(!classes.contains("other"));
    }
}
