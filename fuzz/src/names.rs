//! The names a layer gives, as tar-rs (a tar reader independent of this crate) reads it.

use std::collections::BTreeSet;
use std::io::Read;

/// Most entries read: a bound on the work per input.
const MAX_ENTRIES: usize = 100_000;

/// Every path the layer `data` (plain, gzip or zstd) names, normalised as an image path
/// (relative, no `.` or empty components), with every directory above each; whiteout entries
/// give none. `None` when tar-rs cannot read the whole layer or a name climbs out with `..`:
/// then there is no independent reading to hold the image to.
pub fn stated(data: &[u8]) -> Option<BTreeSet<Vec<u8>>> {
    let plain: Vec<u8> = if data.starts_with(&[0x1f, 0x8b]) {
        let mut v = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .take(64 << 20)
            .read_to_end(&mut v)
            .ok()?;
        v
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut v = Vec::new();
        zstd::stream::read::Decoder::new(data)
            .ok()?
            .take(64 << 20)
            .read_to_end(&mut v)
            .ok()?;
        v
    } else {
        data.to_vec()
    };
    let mut archive = tar::Archive::new(&plain[..]);
    let mut out = BTreeSet::new();
    for (i, entry) in archive.entries().ok()?.enumerate() {
        if i >= MAX_ENTRIES {
            return None;
        }
        let mut entry = entry.ok()?;
        let mut paths = vec![entry.path_bytes().into_owned()];
        // A PAX sparse file (format 1.0) states its real name in `GNU.sparse.name`, which
        // tar-rs does not apply.
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for e in extensions.flatten() {
                if e.key_bytes() == b"GNU.sparse.name" {
                    paths.push(e.value_bytes().to_vec());
                }
            }
        }
        for path in paths {
            add(&mut out, &path)?;
        }
    }
    Some(out)
}

/// Adds `path`, normalised, and the directories above it; `None` for a `..` component.
fn add(out: &mut BTreeSet<Vec<u8>>, path: &[u8]) -> Option<()> {
    {
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in path.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return None,
                p => parts.push(p),
            }
        }
        if parts.last().is_some_and(|p| p.starts_with(b".wh.")) {
            parts.pop();
        }
        for n in 1..=parts.len() {
            out.insert(parts[..n].join(&b'/'));
        }
    }
    Some(())
}
