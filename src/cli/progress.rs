//! Progress on a terminal: one bar per layer. For `build`, the bytes of each blob read; for
//! `pull`, the bytes of each blob downloaded (and its rate) with the bytes applied so far.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use oci2ext4::layer::{LayerReport, Progress};

use super::units::human;

/// Progress bars on stderr when it is a terminal, nothing otherwise.
pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    /// Bars follow downloads: their position is what arrived, their message what was applied.
    downloads: bool,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Bars {
    /// Bars unless `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Bars {
            multi,
            bars: Vec::new(),
            downloads: false,
            ticker: None,
        }
    }

    /// Shows one bar per layer download at once (downloads run side by side), updated from a
    /// thread of its own until [`Bars::clear`].
    #[cfg(feature = "registry")]
    pub fn watch_downloads(&mut self, downloads: &[oci2ext4::registry::LayerDownload]) {
        let Some(m) = &self.multi else { return };
        self.downloads = true;
        let style = ProgressStyle::with_template(
            "{prefix:>22} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
        )
        .map(|s| s.progress_chars("=> "));
        let total = downloads.len();
        let mut watched = Vec::new();
        for (i, d) in downloads.iter().enumerate() {
            let p = d.progress();
            let bar = m.add(ProgressBar::new(p.total));
            if let Ok(style) = &style {
                bar.set_style(style.clone());
            }
            bar.set_prefix(format!("layer {}/{total}", i + 1));
            bar.set_message(if p.cached { "cached" } else { "waiting" });
            bar.set_position(p.received);
            bar.enable_steady_tick(Duration::from_millis(250));
            self.bars.push(bar.clone());
            watched.push((bar, d.clone()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    for (bar, d) in &watched {
                        bar.set_position(d.progress().received);
                    }
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        if let Ok(t) = thread {
            self.ticker = Some((stop, t));
        }
    }

    /// Removes the bars from the screen.
    pub fn clear(&mut self) {
        if let Some((stop, t)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some((stop, t)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
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
        if self.downloads {
            if let Some(bar) = self.bars.get(index) {
                bar.set_message("applying");
            }
            return;
        }
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

    fn layer_progress(&mut self, index: usize, bytes: u64) {
        if self.downloads {
            if let Some(bar) = self.bars.get(index) {
                bar.set_message(format!("applied {}", human(bytes)));
            }
        } else if let Some(bar) = self.bars.last() {
            bar.set_position(bytes);
        }
    }

    fn layer_finished(&mut self, index: usize, report: &LayerReport) {
        if self.downloads {
            if let Some(bar) = self.bars.get(index) {
                bar.set_message(format!("applied {}, done", human(report.blob_size)));
                bar.set_position(report.blob_size);
                bar.finish();
            }
        } else if let Some(bar) = self.bars.last() {
            bar.set_position(report.blob_size);
            bar.finish();
        }
    }
}
