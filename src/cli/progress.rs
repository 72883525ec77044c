//! Progress on a terminal: one bar per layer. For `build`, the bytes of each blob read; for
//! `pull`, the bytes of each blob downloaded (and its rate) with the bytes applied so far.
//! When stderr is not a terminal (a CI log, a pipe), one plain line per layer applied instead.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use oci2ext4::layer::{LayerReport, Progress};

use super::units::human;

/// Progress bars on stderr when it is a terminal, plain lines otherwise.
pub struct Bars {
    multi: Option<MultiProgress>,
    /// One line per layer applied (stderr is not a terminal).
    lines: bool,
    /// With downloads: one per layer, telling whether it came from the cache.
    downloads: Vec<Box<dyn Fn() -> bool + Send>>,
    bars: Vec<ProgressBar>,
    /// With downloads: what each layer's line shows besides the download, kept by the layer
    /// callbacks and drawn by the ticker thread.
    views: Vec<Arc<LayerView>>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// How far applying one layer has come.
#[derive(Default)]
struct LayerView {
    /// Blob bytes applied.
    applied: AtomicU64,
    /// 0 waiting, 1 applying, 2 applied.
    stage: AtomicU8,
}

/// The text after a download bar: the download's state and rate, then what is applied.
#[cfg(feature = "registry")]
fn download_message(
    p: &oci2ext4::registry::DownloadProgress,
    rate: f64,
    view: &LayerView,
) -> String {
    let download = if p.cached {
        "cached".to_string()
    } else if p.finished {
        "downloaded".to_string()
    } else if p.received == 0 {
        "queued".to_string()
    } else {
        format!("{}/s", human(rate as u64))
    };
    let applied = human(view.applied.load(Ordering::Relaxed));
    match view.stage.load(Ordering::Relaxed) {
        0 => download,
        1 => format!("{download}, applied {applied}"),
        _ => format!("{download}, applied {applied}, done"),
    }
}

impl Bars {
    /// Nothing when `quiet`; else bars when stderr is a terminal, plain lines when not.
    pub fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let multi = (!quiet && terminal)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Bars {
            multi,
            lines: !quiet && !terminal,
            downloads: Vec::new(),
            bars: Vec::new(),
            views: Vec::new(),
            ticker: None,
        }
    }

    /// Shows one bar per layer download at once (downloads run side by side): bytes received,
    /// the rate, and how much of the layer is applied; redrawn by a thread of its own until
    /// [`Bars::clear`].
    #[cfg(feature = "registry")]
    pub fn watch_downloads(&mut self, downloads: &[oci2ext4::registry::LayerDownload]) {
        self.downloads = downloads
            .iter()
            .map(|d| {
                let d = d.clone();
                Box::new(move || d.progress().cached) as Box<dyn Fn() -> bool + Send>
            })
            .collect();
        let Some(m) = &self.multi else { return };
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}",
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
            bar.set_position(p.received);
            let view = Arc::new(LayerView::default());
            bar.set_message(download_message(&p, 0.0, &view));
            self.bars.push(bar.clone());
            self.views.push(view.clone());
            watched.push((bar, d.clone(), view, p.received, 0.0f64));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let tick = Duration::from_millis(200);
                while !flag.load(Ordering::Relaxed) {
                    for (bar, d, view, last, rate) in &mut watched {
                        let p = d.progress();
                        let now = p.received;
                        // A rate smoothed over about a second.
                        let instant = (now - (*last).min(now)) as f64 / tick.as_secs_f64();
                        *rate = 0.7 * *rate + 0.3 * instant;
                        *last = now;
                        bar.set_position(now);
                        bar.set_message(download_message(&p, *rate, view));
                    }
                    std::thread::sleep(tick);
                }
            });
        if let Ok(t) = thread {
            self.ticker = Some((stop, t));
        }
    }

    /// Removes the bars from the screen.
    pub fn clear(&mut self) {
        self.stop_ticker();
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    fn stop_ticker(&mut self) {
        if let Some((stop, t)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

fn short(name: &str) -> String {
    let name = &*super::escape::escape(name);
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
        tracing::info!(layer = index + 1, name, bytes = size, "applying layer");
        let Some(m) = &self.multi else { return };
        if let Some(view) = self.views.get(index) {
            view.stage.store(1, Ordering::Relaxed);
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
        if let Some(view) = self.views.get(index) {
            view.applied.store(bytes, Ordering::Relaxed);
        } else if let Some(bar) = self.bars.last() {
            bar.set_position(bytes);
        }
    }

    fn layer_finished(&mut self, index: usize, report: &LayerReport) {
        tracing::debug!(
            layer = index + 1,
            name = %report.name,
            blob_bytes = report.blob_size,
            entries = report.stats.entries,
            "layer applied"
        );
        if self.lines {
            eprintln!("{}", self.done_line(index, report));
        }
        if let Some(view) = self.views.get(index) {
            view.applied.store(report.blob_size, Ordering::Relaxed);
            view.stage.store(2, Ordering::Relaxed);
        } else if let Some(bar) = self.bars.last() {
            bar.set_position(report.blob_size);
            bar.finish();
        }
    }
}

impl Bars {
    /// The plain line for a layer applied: which, how big, whence, what it held.
    fn done_line(&self, index: usize, report: &LayerReport) -> String {
        // A pulled layer's name, and an image's (`layer 2/3 (sha256:…)`), already say which of
        // how many it is.
        let which = if self.downloads.is_empty() && !report.name.starts_with("layer ") {
            format!("layer {} {}", index + 1, short(&report.name))
        } else {
            short(&report.name)
        };
        let whence = match self.downloads.get(index).map(|cached| cached()) {
            Some(true) => ", from the cache",
            Some(false) => ", downloaded",
            None => "",
        };
        format!(
            "{which}: {} {}{whence}, {} entries, {} files, {} whiteouts: applied",
            human(report.blob_size),
            report.compression.name(),
            report.stats.entries,
            report.stats.files,
            report.stats.whiteouts,
        )
    }
}
