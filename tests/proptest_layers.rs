//! Property test: random multi-layer images — files with random small contents, directories,
//! symlinks, fifos, hard links, whiteouts, opaque markers and replacements across one to four
//! layers, each layer's entries in a random order, each layer plain, gzip or zstd — are built,
//! checked with `e2fsck -fn` and, as root, loop-mounted and compared entry by entry with the
//! independent model of `tests/common/layers.rs` (`expected`). Without root the mount
//! comparison is skipped with a `SKIP` line; e2fsck still runs.
//!
//! # What is generated, and why not more
//!
//! The model applies a layer's whiteouts and opaque markers to the lower layers, then the
//! layer's other entries in order. It does not resolve symlinks in parent paths, and some
//! inputs have no single right answer whatever the entry order. So only cases whose
//! expectation the model states unambiguously, in every entry order, are generated:
//!
//! - Paths are built from fixed directory positions (`d`, `e`, `d/sub`) and leaf names
//!   (`f`, `g`, `h`). Symlinks and fifos go only at leaves, and leaves are never parents, so
//!   no path runs through a symlink.
//! - Within a layer each path is given by at most one entry (replacements happen across
//!   layers).
//! - A directory position that is a non-directory at the start of a layer (a file that
//!   replaced a directory) takes no entries below it in that layer; a layer that replaces a
//!   directory position (a file over a directory, or a directory over a file) has no other
//!   entry at or below it. Otherwise an entry below it would fail or succeed by entry order.
//! - Whiteouts and opaque markers are placed only where every parent is a directory (or
//!   missing) at the start of the layer; no opaque marker on the root (the model does not
//!   handle it).
//! - A hard link names either a file of a lower layer that this layer neither replaces nor
//!   whites out (nor hides under an opaque marker), or a file that this layer adds at a path
//!   absent below. A hard link to a lower file that a whiteout of the same layer removes is
//!   ambiguous (the link may or may not have been made before the whiteout) and is never
//!   generated.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::layers::{expected, gzip, zstd, LayerGen, Op};
use common::model::{Kind, Tree};
use common::tars::Attrs;
use common::{check_image, scratch, Check, Rng};
use oci2ext4::layer::{apply_layers, NoProgress};
use oci2ext4::source::file_layer;
use oci2ext4::{BuildOptions, ImageBuilder};
use proptest::prelude::*;

/// Directory positions, parents first.
const DIRS: [&str; 3] = ["d", "e", "d/sub"];
/// Leaf names: never parents of anything.
const LEAVES: [&str; 3] = ["f", "g", "h"];
const MODES: [u32; 6] = [0o644, 0o600, 0o755, 0o4755, 0o1777, 0o640];

/// One random choice; interpreted against the tree below the layer (see [`plan_layer`]).
#[derive(Clone, Debug)]
struct Choice {
    what: u8,
    a: u8,
    b: u8,
    c: u8,
    len: u16,
}

#[derive(Clone, Debug)]
struct LayerChoices {
    choices: Vec<Choice>,
    order_seed: u64,
    compression: u8,
}

fn choice() -> impl Strategy<Value = Choice> {
    (0u8..9, any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>())
        .prop_map(|(what, a, b, c, len)| Choice { what, a, b, c, len })
}

fn layer_choices() -> impl Strategy<Value = LayerChoices> {
    (prop::collection::vec(choice(), 0..14), any::<u64>(), 0u8..3).prop_map(
        |(choices, order_seed, compression)| LayerChoices {
            choices,
            order_seed,
            compression,
        },
    )
}

/// An entry of a planned layer.
#[derive(Clone, Debug)]
enum Entry {
    Dir(String, Attrs),
    File(String, Attrs, Vec<u8>),
    Symlink(String, String),
    Fifo(String, Attrs),
    Link(String, String),
    Whiteout(String),
    Opaque(String),
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or("", |(d, _)| d)
}

/// `p` and its ancestors, the root left out.
fn self_and_ancestors(p: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let mut cur = p;
    while !cur.is_empty() {
        v.push(cur);
        cur = parent(cur);
    }
    v
}

/// Whether `p` is `q` or lies below it.
fn within(p: &str, q: &str) -> bool {
    q.is_empty() || p == q || p.strip_prefix(q).is_some_and(|r| r.starts_with('/'))
}

fn attrs(c: &Choice) -> Attrs {
    Attrs::new(MODES[c.b as usize % MODES.len()])
        .owner(u32::from(c.c % 4), u32::from(c.c / 64))
        .mtime(
            1_700_000_000 + i64::from(c.len % 1000),
            u32::from(c.c) * 1000,
        )
}

fn content(c: &Choice, rng: &mut Rng) -> Vec<u8> {
    let n = match c.len % 8 {
        0 => 0,
        7 => 4096 + usize::from(c.len % 3000),
        _ => usize::from(c.len % 64),
    };
    let mut v = vec![0u8; n];
    if !c.c.is_multiple_of(5) {
        rng.fill(&mut v);
    }
    v
}

/// The state of planning one layer against the tree below it.
struct Planner<'a> {
    lower: &'a Tree,
    entries: Vec<Entry>,
    /// Paths given by an entry of this layer.
    claimed: BTreeSet<String>,
    /// Directory positions with an entry of this layer at or below them.
    used: BTreeSet<String>,
    /// Directory positions replaced in this layer: nothing else at or below them.
    sealed: BTreeSet<String>,
    /// Paths whited out or hidden by an opaque marker (`dir/` for a marker in `dir`).
    hidden: Vec<String>,
    /// Lower files a hard link of this layer names.
    lower_targets: Vec<String>,
    /// Files this layer adds at paths absent below.
    new_files: Vec<String>,
}

impl Planner<'_> {
    fn lower_non_dir(&self, p: &str) -> bool {
        self.lower
            .node(p.as_bytes())
            .is_some_and(|n| n.kind != Kind::Dir)
    }

    fn lower_file(&self, p: &str) -> bool {
        self.lower
            .node(p.as_bytes())
            .is_some_and(|n| matches!(n.kind, Kind::File { .. }))
    }

    /// Whether an entry may go in directory `dir` (a position or the root).
    fn dir_usable(&self, dir: &str) -> bool {
        self_and_ancestors(dir)
            .iter()
            .all(|a| !self.lower_non_dir(a) && !self.sealed.contains(*a))
    }

    fn mark_used(&mut self, path: &str) {
        for a in self_and_ancestors(path) {
            self.used.insert(a.to_string());
        }
    }

    /// Whether hiding `p` (whiteout) or everything below `dir/` would touch a lower file a
    /// link of this layer names.
    fn hides_a_target(&self, p: &str, below_only: bool) -> bool {
        self.lower_targets
            .iter()
            .any(|t| within(t, p) && !(below_only && t == p))
    }

    fn is_hidden(&self, t: &str) -> bool {
        self.hidden.iter().any(|h| match h.strip_suffix('/') {
            Some(dir) => within(t, dir) && t != dir,
            None => within(t, h),
        })
    }

    fn apply(&mut self, c: &Choice, rng: &mut Rng) {
        let dir_pos = DIRS[c.a as usize % DIRS.len()];
        let in_dir = if c.a % 4 == 3 { "" } else { dir_pos };
        let leaf = {
            let l = LEAVES[c.b as usize % LEAVES.len()];
            if in_dir.is_empty() {
                l.to_string()
            } else {
                format!("{in_dir}/{l}")
            }
        };
        match c.what {
            // A file, symlink or fifo at a leaf.
            0..=2 => {
                if !self.dir_usable(in_dir)
                    || self.claimed.contains(&leaf)
                    || self.lower_targets.contains(&leaf)
                {
                    return;
                }
                let e = match c.what {
                    0 => {
                        let absent = self.lower.node(leaf.as_bytes()).is_none();
                        if absent {
                            self.new_files.push(leaf.clone());
                        }
                        Entry::File(leaf.clone(), attrs(c), content(c, rng))
                    }
                    1 => Entry::Symlink(
                        leaf.clone(),
                        ["../x", "/etc/f", "g", "d/sub"][c.c as usize % 4].into(),
                    ),
                    _ => Entry::Fifo(leaf.clone(), attrs(c)),
                };
                self.claimed.insert(leaf.clone());
                self.mark_used(&leaf);
                self.entries.push(e);
            }
            // A directory at a position (or the root's attributes).
            3 => {
                let p = if c.c.is_multiple_of(8) { "" } else { dir_pos };
                if self.claimed.contains(p) || !self.dir_usable(parent(p)) {
                    return;
                }
                if p.is_empty() {
                    self.claimed.insert(String::new());
                    self.entries.push(Entry::Dir(".".into(), attrs(c)));
                    return;
                }
                if self.sealed.contains(p) || self.lower_targets.iter().any(|t| within(t, p)) {
                    return;
                }
                if self.lower_non_dir(p) {
                    // A directory over a file: nothing else at or below it in this layer.
                    if self.used.contains(p) {
                        return;
                    }
                    self.sealed.insert(p.to_string());
                }
                self.claimed.insert(p.to_string());
                self.mark_used(p);
                self.entries.push(Entry::Dir(p.into(), attrs(c)));
            }
            // A file replacing a directory position.
            4 => {
                let p = dir_pos;
                if self.claimed.contains(p)
                    || self.used.contains(p)
                    || !self.dir_usable(parent(p))
                    || self.lower_targets.iter().any(|t| within(t, p))
                {
                    return;
                }
                self.sealed.insert(p.to_string());
                self.claimed.insert(p.to_string());
                self.mark_used(p);
                if self.lower.node(p.as_bytes()).is_none() {
                    self.new_files.push(p.to_string());
                }
                self.entries
                    .push(Entry::File(p.into(), attrs(c), content(c, rng)));
            }
            // A hard link at a leaf.
            5 => {
                if !self.dir_usable(in_dir)
                    || self.claimed.contains(&leaf)
                    || self.lower_targets.contains(&leaf)
                {
                    return;
                }
                let lower_files: Vec<String> = self
                    .lower
                    .paths
                    .keys()
                    .map(|p| String::from_utf8(p.clone()).unwrap())
                    .filter(|p| {
                        self.lower_file(p)
                            && !self.claimed.contains(p)
                            && !self.is_hidden(p)
                            && self_and_ancestors(p)
                                .iter()
                                .all(|a| !self.sealed.contains(*a))
                    })
                    .collect();
                let use_new = c.c.is_multiple_of(2) && !self.new_files.is_empty();
                let target = if use_new {
                    self.new_files[c.len as usize % self.new_files.len()].clone()
                } else if !lower_files.is_empty() {
                    let t = lower_files[c.len as usize % lower_files.len()].clone();
                    self.lower_targets.push(t.clone());
                    t
                } else {
                    return;
                };
                if target == leaf {
                    return;
                }
                self.claimed.insert(leaf.clone());
                self.mark_used(&leaf);
                self.entries.push(Entry::Link(leaf, target));
            }
            // A whiteout of a leaf or a directory position.
            6 | 7 => {
                let p = if c.what == 6 {
                    leaf
                } else {
                    dir_pos.to_string()
                };
                if !self.dir_usable(parent(&p))
                    || self.hides_a_target(&p, false)
                    || self.sealed.contains(&p)
                {
                    return;
                }
                self.mark_used(parent(&p));
                self.hidden.push(p.clone());
                self.entries.push(Entry::Whiteout(p));
            }
            // An opaque marker in a directory position.
            _ => {
                let p = dir_pos;
                if !self.dir_usable(p) || self.hides_a_target(p, true) {
                    return;
                }
                self.mark_used(p);
                self.hidden.push(format!("{p}/"));
                self.entries.push(Entry::Opaque(p.into()));
            }
        }
    }
}

/// Turns one layer's choices into entries that are valid in any order (see the module docs).
fn plan_layer(lower: &Tree, choices: &LayerChoices, rng: &mut Rng) -> Vec<Entry> {
    let mut p = Planner {
        lower,
        entries: Vec::new(),
        claimed: BTreeSet::new(),
        used: BTreeSet::new(),
        sealed: BTreeSet::new(),
        hidden: Vec::new(),
        lower_targets: Vec::new(),
        new_files: Vec::new(),
    };
    for c in &choices.choices {
        p.apply(c, rng);
    }
    let mut entries = p.entries;
    // A random order.
    let mut order = Rng::new(choices.order_seed);
    for i in (1..entries.len()).rev() {
        let j = order.below(i as u64 + 1) as usize;
        entries.swap(i, j);
    }
    entries
}

fn write_layer(entries: &[Entry]) -> (Vec<u8>, Vec<Op>) {
    let mut g = LayerGen::new();
    for e in entries {
        match e {
            Entry::Dir(p, a) => g.dir(p, a.clone()),
            Entry::File(p, a, data) => g.file(p, a.clone(), data),
            Entry::Symlink(p, t) => g.symlink(p, t),
            Entry::Fifo(p, a) => g.fifo(p, a.clone()),
            Entry::Link(p, t) => g.hardlink(p, t),
            Entry::Whiteout(p) => g.whiteout(p),
            Entry::Opaque(p) => g.opaque(p),
        };
    }
    g.finish()
}

fn run_case(layers: &[LayerChoices]) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(layers.len() as u64);
    let mut ops: Vec<Vec<Op>> = Vec::new();
    let mut blobs = Vec::new();
    let mut shown = Vec::new();
    for choices in layers {
        let lower = expected(&ops);
        let entries = plan_layer(&lower, choices, &mut rng);
        let (tar, layer_ops) = write_layer(&entries);
        shown.push(format!("{entries:?}"));
        blobs.push(match choices.compression {
            0 => tar,
            1 => gzip(&tar),
            _ => zstd(&tar),
        });
        ops.push(layer_ops);
    }
    let want = expected(&ops);
    let dir = scratch();
    let mut inputs = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        let p = dir.path().join(format!("layer{i}"));
        fs::write(&p, blob).unwrap();
        inputs.push(file_layer(&p));
    }
    let image = dir.path().join("image.ext4");
    let built = (|| {
        let mut b = ImageBuilder::create(&image, BuildOptions::default())?;
        apply_layers(&mut b, inputs, &mut NoProgress)?;
        b.finish()
    })();
    prop_assert!(
        built.is_ok(),
        "build failed: {:?}\nlayers:\n{}",
        built.err(),
        shown.join("\n")
    );
    // check_image panics with the differences; name the case first.
    let result = std::panic::catch_unwind(|| {
        check_image(&image, &want, Check { read_write: false });
    });
    if let Err(e) = result {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        return Err(TestCaseError::fail(format!(
            "{msg}\nlayers:\n{}",
            shown.join("\n")
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 48 by default (a few seconds); PROPTEST_CASES=N for a longer run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        max_shrink_iters: 200,
        // A failure prints its minimal case; nothing is written beside the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_layers_match_the_model(layers in prop::collection::vec(layer_choices(), 1..=4)) {
        run_case(&layers)?;
    }
}
