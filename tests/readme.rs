//! The README's library example is `examples/library.rs`, which `cargo test` compiles: the
//! README shows that program as it is, so a README example that no longer compiles fails here.

use std::path::Path;

/// The first ```rust block after `marker` in `text`.
fn rust_block_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let from = text
        .find(marker)
        .expect("the README has its library section");
    let start = text[from..]
        .find("```rust\n")
        .expect("a rust block follows")
        + from
        + 8;
    let end = text[start..].find("```\n").expect("the block ends") + start;
    &text[start..end]
}

#[test]
fn readme_library_example_is_the_compiled_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/library.rs")).unwrap();
    // The example's program, without its leading `//!` comment.
    let program: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(program.contains("fn main()"), "{program}");
    assert_eq!(rust_block_after(&readme, "As a library"), program);
}
