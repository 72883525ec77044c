//! The command line's conventions: `--json` (schema version, error objects with the same exit
//! status), plain progress lines when stderr is not a terminal, `-v` logging, shell
//! completions, the manual page and `--help`'s sections.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::layers::{expected, gzip, LayerGen};
use common::tars::Attrs;
use common::{check_image, scratch, Check};

const NO_RW: Check = Check { read_write: false };

/// `oci2ext4 ARGS` with no logging asked for by the environment.
fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.args(args).env_remove("RUST_LOG").env_remove("COLUMNS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// Two layer files (gzip, then plain, with a whiteout) in `dir`, and the tree they make.
fn two_layers(dir: &Path) -> (String, String, common::model::Tree) {
    let mut g = LayerGen::new();
    g.dir("etc", Attrs::new(0o755))
        .file("etc/a", Attrs::new(0o644), b"a1")
        .file("etc/b", Attrs::new(0o600), b"b1");
    let l1 = g.finish();
    let mut g = LayerGen::new();
    g.whiteout("etc/b").file("etc/c", Attrs::new(0o644), b"c2");
    let l2 = g.finish();
    let p1 = dir.join("one.tar.gz");
    let p2 = dir.join("two.tar");
    fs::write(&p1, gzip(&l1.0)).unwrap();
    fs::write(&p2, &l2.0).unwrap();
    (
        p1.display().to_string(),
        p2.display().to_string(),
        expected(&[l1.1, l2.1]),
    )
}

#[test]
fn json_success_has_a_schema_and_failures_an_error_object() {
    let dir = scratch();
    let (l1, l2, want) = two_layers(dir.path());
    let out = dir.path().join("out.ext4");
    let outs = out.to_str().unwrap();
    let o = run(&[
        "build", "--layer", &l1, "--layer", &l2, "-o", outs, "--json",
    ]);
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], 1, "{v}");
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    check_image(&out, &want, NO_RW);

    // Failures of several classes: with --json, stdout is one error object whose exit and
    // message are those of the same run without --json, and no output file is left.
    let corrupt = dir.path().join("corrupt.tar.gz");
    let whole = fs::read(&l1).unwrap();
    fs::write(&corrupt, &whole[..whole.len() / 2]).unwrap();
    // 12 MiB that do not compress, for --max-size 10M.
    let mut g = LayerGen::new();
    let mut rng = common::Rng::new(7);
    let noise: Vec<u8> = (0..12 << 20).map(|_| rng.next() as u8).collect();
    g.file("noise", Attrs::new(0o644), &noise);
    let big = dir.path().join("big.tar");
    fs::write(&big, g.finish().0).unwrap();
    let big = big.display().to_string();
    let fail = dir.path().join("fail.ext4");
    let fails = fail.to_str().unwrap();
    let cases: [(Vec<&str>, i32, &str); 4] = [
        (
            vec!["build", "--layer", corrupt.to_str().unwrap(), "-o", fails],
            3,
            "corrupt_input",
        ),
        (
            vec!["build", "--layer", &l1, "-o", fails, "--size", "1M"],
            2,
            "invalid_argument",
        ),
        (
            vec!["build", "--layer", &big, "-o", fails, "--max-size", "10M"],
            5,
            "limit_exceeded",
        ),
        (
            vec!["build", "/nonexistent/source.tar", "-o", fails],
            2,
            "invalid_argument",
        ),
    ];
    for (args, code, class) in cases {
        let plain = run(&args);
        assert_eq!(
            plain.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&plain.stderr)
        );
        assert!(plain.stdout.is_empty());
        let json = run(&[&args[..], &["--json"]].concat());
        assert_eq!(json.status.code(), Some(code), "{args:?}");
        let stdout = text(&json.stdout);
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["schema"], 1, "{v}");
        assert_eq!(v["error"]["class"], class, "{v}");
        assert_eq!(v["error"]["exit"], code, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        assert_eq!(
            text(&plain.stderr).trim_end(),
            format!("oci2ext4: error: {message}"),
            "{args:?}"
        );
        assert!(!fail.exists(), "{args:?} left {fails}");
    }

    // A command line clap refuses: its own exit status, and the object too with --json.
    let o = run(&[
        "build",
        "--layer",
        &l1,
        "-o",
        fails,
        "--no-such-option",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["class"], "invalid_argument", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-option"),
        "{v}"
    );
    let o = run(&["build", "--layer", &l1, "-o", fails, "--no-such-option"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert!(!fail.exists());
}

#[test]
fn plain_progress_lines_when_stderr_is_not_a_terminal() {
    let dir = scratch();
    let (l1, l2, want) = two_layers(dir.path());
    let out = dir.path().join("out.ext4");
    let outs = out.to_str().unwrap();
    // The tests' stderr is a pipe: one line per layer applied, in order, then the summary.
    let o = run(&["build", "--layer", &l1, "--layer", &l2, "-o", outs]);
    ok(&o);
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("layer 1 ")
            && lines[0].contains("one.tar.gz")
            && lines[0].contains("gzip"),
        "{err}"
    );
    assert!(lines[0].contains("3 entries, 2 files"), "{err}");
    assert!(
        lines[1].starts_with("layer 2 ")
            && lines[1].contains("two.tar")
            && lines[1].contains("1 whiteouts"),
        "{err}"
    );
    assert!(
        lines[2].starts_with(outs) && lines[2].contains("from 2 layer(s)"),
        "{err}"
    );
    // No terminal control sequences in a log.
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    check_image(&out, &want, NO_RW);
    // --quiet: nothing at all.
    let o = run(&["build", "--layer", &l1, "--layer", &l2, "-o", outs, "-q"]);
    ok(&o);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    // An image's layers are named by their place and digest, once.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/example-oci");
    let o = run(&["build", fixture, "-o", outs]);
    ok(&o);
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(
            line.starts_with(&format!("layer {}/3 (sha256:", i + 1)),
            "{err}"
        );
    }
}

#[test]
fn verbose_logs_on_stderr() {
    let dir = scratch();
    let (l1, l2, _) = two_layers(dir.path());
    let out = dir.path().join("out.ext4");
    let outs = out.to_str().unwrap();
    let base = [
        "build", "--layer", &l1, "--layer", &l2, "-o", outs, "--json",
    ];
    let levels = |o: &Output| {
        ok(o);
        // Logging never reaches stdout: the JSON is still whole.
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["schema"], 1);
        let err = text(&o.stderr);
        (
            err.contains(" INFO ") && err.contains("applying layer"),
            err.contains(" DEBUG ") && err.contains("layer applied"),
            err,
        )
    };
    let (info, debug, err) = levels(&run(&base));
    assert!(!info && !debug && err.is_empty(), "{err}");
    let (info, debug, err) = levels(&run(&[&base[..], &["-v"]].concat()));
    assert!(info && !debug, "{err}");
    // Before the subcommand too.
    let (info, debug, err) = levels(&run(&[&["-vv"], &base[..]].concat()));
    assert!(info && debug, "{err}");
    let (info, debug, err) = levels(&run_env(&base, &[("RUST_LOG", "oci2ext4=debug")]));
    assert!(info && debug, "{err}");
    let (info, debug, err) = levels(&run_env(
        &[&base[..], &["-vv"]].concat(),
        &[("RUST_LOG", "warn")],
    ));
    assert!(!info && !debug, "RUST_LOG wins: {err}");
    let o = run_env(&base, &[("RUST_LOG", "oci2ext4=loud")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("RUST_LOG"), "{}", text(&o.stderr));
}

#[test]
fn shell_completions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = run(&["completions", shell]);
        ok(&o);
        let script = text(&o.stdout);
        for word in ["build", "block-size", "json", "completions"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        #[cfg(feature = "registry")]
        assert!(script.contains("authfile"), "{shell}");
    }
    // The bash script is valid bash, and completes the subcommands.
    let dir = scratch();
    let script = dir.path().join("oci2ext4.bash");
    fs::write(&script, run(&["completions", "bash"]).stdout).unwrap();
    let o = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}; COMP_WORDS=(oci2ext4 bu); COMP_CWORD=1; _oci2ext4 oci2ext4 bu oci2ext4; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "build", "{}", text(&o.stderr));
    let o = run(&["completions", "nosuchshell"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn manual_page() {
    let o = run(&["man"]);
    ok(&o);
    let page = text(&o.stdout);
    assert!(
        page.contains(".TH oci2ext4 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for word in [
        "build",
        "Exit status",
        "SOURCE_DATE_EPOCH",
        "REGISTRY_AUTH_FILE",
    ] {
        assert!(page.contains(word), "no {word}");
    }
    // groff renders it without a warning, where groff is installed.
    match Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(page.as_bytes())
                .unwrap();
            let o = child.wait_with_output().unwrap();
            assert!(
                o.status.success() && o.stderr.is_empty(),
                "{}",
                text(&o.stderr)
            );
        }
        Err(e) => println!("SKIP groff check of the manual page: {e}"),
    }
    // One page per command into a directory (made if missing).
    let dir = scratch();
    let mandir = dir.path().join("man/man1");
    let o = run(&["man", "--out", mandir.to_str().unwrap()]);
    ok(&o);
    assert!(o.stdout.is_empty());
    for name in ["oci2ext4.1", "oci2ext4-build.1", "oci2ext4-completions.1"] {
        let p = fs::read_to_string(mandir.join(name)).unwrap();
        assert!(p.contains(".TH "), "{name}");
    }
    #[cfg(feature = "registry")]
    assert!(fs::read_to_string(mandir.join("oci2ext4-pull.1"))
        .unwrap()
        .contains("authfile"));
}

#[test]
fn help_is_wrapped_and_has_environment_and_exit_sections() {
    for args in [&["--help"][..], &["build", "--help"], &["help", "build"]] {
        let o = run_env(args, &[("COLUMNS", "70")]);
        ok(&o);
        let help = text(&o.stdout);
        for line in help.lines() {
            assert!(line.chars().count() <= 70, "{args:?}: too wide: {line:?}");
        }
        for word in [
            "Environment:",
            "DOCKER_CONFIG",
            "REGISTRY_AUTH_FILE",
            "XDG_RUNTIME_DIR",
            "XDG_CACHE_HOME",
            "SOURCE_DATE_EPOCH",
            "Exit status:",
        ] {
            assert!(help.contains(word), "{args:?}: no {word}");
        }
        // Every status of README's table, with the same class.
        let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let errors = &readme[readme.find("## Errors").unwrap()..];
        let mut rows = 0;
        for row in errors.lines().take_while(|l| !l.starts_with("## Bench")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let Some(status) = cells.get(1).filter(|c| c.parse::<u32>().is_ok()) else {
                continue;
            };
            let class: String = cells[2].split(" (").next().unwrap().to_string();
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{status} ")))
                .unwrap_or_else(|| panic!("{args:?}: no exit status {status}"));
            assert!(line.contains(&class), "{line:?} is not {class:?}");
            rows += 1;
        }
        assert_eq!(rows, 11);
    }
}

/// A machine with no CA certificates at all (an empty chroot, a scratch container) gets an
/// error that says so, not a panic, whether or not `--ca-cert` is given. The HTTP client is set
/// up before any connection, so the registry address need not answer.
#[cfg(feature = "registry")]
#[test]
fn a_system_without_ca_certificates_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.ext4");
    let missing = dir.path().join("no-such-ca-file");
    let missing = missing.to_str().unwrap();
    let env = [("SSL_CERT_FILE", missing), ("SSL_CERT_DIR", missing)];
    let ca = dir.path().join("ca.pem");
    // Any PEM certificate will do: it is only parsed, never used for a handshake.
    std::fs::write(&ca, SELF_SIGNED_PEM).unwrap();
    for extra in [&[][..], &["--ca-cert", ca.to_str().unwrap()][..]] {
        let mut args = vec![
            "pull",
            "localhost:1/none:latest",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = run_env(&args, &env);
        let err = text(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(o.status.code(), Some(8), "{args:?}: {err}");
        assert!(err.contains("SSL_CERT_FILE"), "{args:?}: {err}");
        assert!(!out.exists());
    }
}

/// A self-signed certificate for `localhost` (`openssl req -x509 -newkey rsa:2048 -nodes`).
#[cfg(feature = "registry")]
const SELF_SIGNED_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDCTCCAfGgAwIBAgIUBYqrlkUE6oGwzG9yvIPJdBkGpsswDQYJKoZIhvcNAQEL\n\
BQAwFDESMBAGA1UEAwwJbG9jYWxob3N0MB4XDTI2MTIwNTA3MjI0MFoXDTI2MTIw\n\
NjA3MjI0MFowFDESMBAGA1UEAwwJbG9jYWxob3N0MIIBIjANBgkqhkiG9w0BAQEF\n\
AAOCAQ8AMIIBCgKCAQEAkaAGqX1DzeMxTPpfZxo1WZnt2rPLxjw76l7d3hV2QVgo\n\
5t/Xw93ks50Q07z3HAWyqd+z0kRrMDtGOnGMHhmxVEgF2SofAeUQAL50+gLidsLU\n\
T+bKdON/wy3fB1gY3xH2oVmlryJPuJCOMH16O68YtBNgZjewqQwTA+HKDrK2RtM1\n\
INemvMf792NPw2jGsCcKqSiIt+J0tHmnO1TS+9FnbZup9q3dWNTanHkk2cirsiAM\n\
5KXEJc+1uYIn3w9pa6wzmt1msm/8uuAAf9kuq22ps8KQYiO6tuDQ/Ph5p2SmbkQO\n\
Y0s1jIY/YAz3HxG8suCF/IFQNUAKDFUe9RPDXqmhuQIDAQABo1MwUTAdBgNVHQ4E\n\
FgQU3eg5vpGUYiUAhevFMFRnGRdbtYYwHwYDVR0jBBgwFoAU3eg5vpGUYiUAhevF\n\
MFRnGRdbtYYwDwYDVR0TAQH/BAUwAwEB/zANBgkqhkiG9w0BAQsFAAOCAQEATT/6\n\
3GHz2LczrjroYdzosb3AXWIIemQHgKEQDzvoZ2ouHY+n8OU4/MdKJlNsSxD4TsA3\n\
K2zn+p9Xp4Bv71hwQsLe3NUgCTvmTGr62u19rcBgzi4n6vPHMyXopockJ+Ap1p2P\n\
xgo9gbDYLbjAldiYxQQskjRCppODKPzqShlxhKvynRylFgQ6chYJg1mF+y96whYm\n\
g7YHoQv3m4yFy1u4G1+c01W/AxKgCi7ncferitEJRRich/9hNyZaa4Z97qDU8ygy\n\
Kw9cHzU+yZdvg3P3B5iGlx2FkbmPvd48OgqdOL2LxIP8It2hYeuJyVFB3kys3kjf\n\
N170BlhONjTpZxkT7g==\n\
-----END CERTIFICATE-----\n\
";
