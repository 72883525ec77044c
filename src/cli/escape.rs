//! Text from the input (entry names, attribute keys, platform strings, what a registry says)
//! printed so that it cannot act on the terminal: control characters and the invisible
//! characters that reorder text are shown as escapes, never sent as they are.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as it is.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with control characters (C0, DEL, C1) and bidirectional controls escaped as `\xNN` or
/// `\u{NNNN}`.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hidden(c) {
            out.push(c);
        } else if u32::from(c) < 0x100 {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

/// Escapes every string in a JSON value (keys included) as [`escape`] does: JSON itself escapes
/// only C0 controls, not DEL, C1 or the bidirectional controls.
pub fn escape_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let Cow::Owned(e) = escape(s) {
                *s = e;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(escape_json),
        serde_json::Value::Object(o) => {
            let entries: Vec<(String, serde_json::Value)> = std::mem::take(o).into_iter().collect();
            for (k, mut val) in entries {
                escape_json(&mut val);
                o.insert(escape(&k).into_owned(), val);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_sent() {
        assert_eq!(escape("usr/bin/ls"), "usr/bin/ls");
        assert_eq!(escape("a\x1b[31mred\x07"), "a\\x1b[31mred\\x07");
        assert_eq!(escape("tab\tnl\ncr\r"), "tab\\x09nl\\x0acr\\x0d");
        assert_eq!(escape("del\x7f c1\u{9b}"), "del\\x7f c1\\x9b");
        assert_eq!(escape("é\u{202e}txt"), "é\\u{202e}txt");
        let mut v = serde_json::json!({"w": ["x\u{9b}2J", 1], "k\x1b": "ok"});
        escape_json(&mut v);
        assert_eq!(v, serde_json::json!({"w": ["x\\x9b2J", 1], "k\\x1b": "ok"}));
    }
}
