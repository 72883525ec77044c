//! Shell completion scripts and the manual page, generated from the argument definitions.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, Failure};

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    use std::io::Write;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "oci2ext4", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(|e| Failure {
            message: format!("cannot write the completion script: {e}"),
            code: 7,
        })
}

/// Prints the manual page on stdout, or writes one page per command into `dir`.
pub fn man(dir: Option<&Path>) -> Result<(), Failure> {
    let cmd = Cli::command();
    let failed = |what: String, e: std::io::Error| Failure {
        message: format!("{what}: {e}"),
        code: 7,
    };
    match dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout().lock())
            .map_err(|e| failed("cannot write the manual page".into(), e)),
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(cmd, dir))
            .map_err(|e| failed(format!("cannot write manual pages to {}", dir.display()), e)),
    }
}
