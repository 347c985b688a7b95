//! Markdown ⇄ storage conversion: round trips, escaping, detection and the write policy.

use conflagent::markdown::{markdown_to_storage, normalize_storage, storage_to_markdown};

#[test]
fn smoke() {
    let md = "# Title\n\nHello *world* and **bold** [[Page One]] [[Page Two#Intro|see]] `code`.\n\n- a\n- b\n  - c\n\n1. x\n2. y\n\n- [ ] todo\n- [x] done\n\n> [!NOTE]\n> careful\n\n| a | b |\n| :--- | ---: |\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n\n![alt](https://x.org/a.png) ![](file.png)\n\nfoot[^1]\n\n[^1]: the note\n\n<u>raw</u> and <span>unbalanced\n";
    let storage = markdown_to_storage(md);
    println!("{storage}");
    let back = storage_to_markdown(&storage).unwrap();
    println!("{back}");
    println!("{}", normalize_storage(&storage).unwrap());
    assert_eq!(back, md);
}
