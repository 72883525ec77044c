//! Progress on a terminal: one bar per layer, bytes of its blob read.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use oci2ext4::layer::{LayerReport, Progress};

/// Progress bars on stderr when it is a terminal, nothing otherwise.
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
}

impl Bars {
    /// Bars unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Bars {
            multi,
            bars: Vec::new(),
        }
    }

    /// Removes the bars from the screen.
    pub fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

fn short(name: &str) -> String {
    if name.chars().count() > 40 {
        let tail: String = name
            .chars()
            .rev()
            .take(37)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("...{tail}")
    } else {
        name.to_string()
    }
}

impl Progress for Bars {
    fn layer_started(&mut self, index: usize, name: &str, size: Option<u64>) {
        let Some(m) = &self.multi else { return };
        let bar = m.add(match size {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::no_length(),
        });
        let template = if size.is_some() {
            "{prefix:>42} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
        } else {
            "{prefix:>42} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{} {}", index + 1, short(name)));
        bar.enable_steady_tick(Duration::from_millis(250));
        self.bars.push(bar);
    }

    fn layer_progress(&mut self, _index: usize, bytes: u64) {
        if let Some(bar) = self.bars.last() {
            bar.set_position(bytes);
        }
    }

    fn layer_finished(&mut self, _index: usize, report: &LayerReport) {
        if let Some(bar) = self.bars.last() {
            bar.set_position(report.blob_size);
            bar.finish();
        }
    }
}
