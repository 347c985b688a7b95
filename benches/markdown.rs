//! Throughput of Markdown ⇄ storage conversion on a typical page and on a ~1 MB document, and the
//! block-by-block merge of a Markdown update into a 1 MB stored page.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use conflagent::markdown::{
    RenderCache, WritePolicy, markdown_to_storage, merge_markdown, storage_to_markdown,
};

/// A realistic page of about 5 KB mixing every construct the converter knows.
fn typical_page() -> String {
    let section = r#"## Restart procedure

Owner: [[Payments Team]] · see [[Runbooks#Payments|the runbook]] and [the dashboard](https://grafana.example.com/d/abc?from=now-1h).

> [!WARNING]
> Never restart **both** replicas at once; wait for `ready=true`.

1. Drain traffic:
   ```bash
   kubectl drain node-1 --ignore-daemonsets
   ```
2. Check the *error rate*:
   - below 1%
   - latency p99 under 300 ms
3. Announce it ~~by mail~~ in the channel.

| Service | Purpose | Critical |
| --- | :--- | :---: |
| [[Ledger\|Ledger]] | Bookkeeping with *double* entry | yes |
| Fraud API | Scoring, see [docs](https://fraud.example.com) | no |

- [ ] Automate step 2
- [x] Write this page

![Flow](flow.png) Status :emoticon{name=tick} :status{colour=Green title=DONE}[^1]

[^1]: Checked by the on-call engineer.

"#;
    let mut page = String::from("# Payments service\n\n");
    while page.len() < 5 * 1024 {
        page.push_str(section);
    }
    page
}

fn document_of(size: usize) -> String {
    let page = typical_page();
    let mut document = String::with_capacity(size + page.len());
    while document.len() < size {
        document.push_str(&page);
    }
    document
}

/// About `size` bytes of storage as Confluence's editors save it, from the test corpus.
fn editor_storage_of(size: usize) -> String {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/storage");
    let mut pages: Vec<String> = std::fs::read_dir(directory)
        .expect("corpus directory")
        .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("page"))
        .collect();
    pages.sort();
    let mut document = String::with_capacity(size + 16 * 1024);
    while document.len() < size {
        for page in &pages {
            document.push_str(page);
        }
    }
    document
}

fn bench(c: &mut Criterion) {
    let page = typical_page();
    let page_storage = markdown_to_storage(&page);
    let document = document_of(1024 * 1024);
    let document_storage = markdown_to_storage(&document);

    let mut typical = c.benchmark_group("typical_page_5kb");
    typical.bench_function("markdown_to_storage", |b| {
        b.iter(|| markdown_to_storage(black_box(&page)))
    });
    typical.bench_function("storage_to_markdown", |b| {
        b.iter(|| storage_to_markdown(black_box(&page_storage)))
    });
    typical.finish();

    let mut large = c.benchmark_group("document_1mb");
    large.sample_size(20);
    large.throughput(Throughput::Bytes(document.len() as u64));
    large.bench_function("markdown_to_storage", |b| {
        b.iter(|| markdown_to_storage(black_box(&document)))
    });
    large.throughput(Throughput::Bytes(document_storage.len() as u64));
    large.bench_function("storage_to_markdown", |b| {
        b.iter(|| storage_to_markdown(black_box(&document_storage)))
    });
    large.finish();

    // A 1 MB page as the editors save it: reading it, and merging it back unchanged or with one edit.
    let editor_storage = editor_storage_of(1024 * 1024);
    let editor_markdown = storage_to_markdown(&editor_storage).expect("corpus is well-formed");
    let edited = editor_markdown.replacen("## Restart\n", "## Restart safely\n", 1);
    let policy = WritePolicy::default();
    let mut editor = c.benchmark_group("editor_page_1mb");
    editor.sample_size(20);
    editor.throughput(Throughput::Bytes(editor_storage.len() as u64));
    editor.bench_function("storage_to_markdown", |b| {
        b.iter(|| storage_to_markdown(black_box(&editor_storage)))
    });
    editor.bench_function("markdown_to_storage", |b| {
        b.iter(|| markdown_to_storage(black_box(&editor_markdown)))
    });
    editor.bench_function("merge_unchanged", |b| {
        b.iter(|| {
            merge_markdown(
                black_box(&editor_storage),
                black_box(&editor_markdown),
                &policy,
            )
        })
    });
    editor.bench_function("merge_one_edit", |b| {
        b.iter(|| merge_markdown(black_box(&editor_storage), black_box(&edited), &policy))
    });
    // As the gateway merges: the agent read the page first, so its stored body is already rendered.
    let renders = RenderCache::new(64 * 1024 * 1024);
    renders
        .storage_to_markdown("bench", &editor_storage)
        .expect("corpus is well-formed");
    editor.bench_function("merge_unchanged_after_read", |b| {
        b.iter(|| {
            renders.merge_markdown(
                "bench",
                black_box(&editor_storage),
                black_box(&editor_markdown),
                &policy,
            )
        })
    });
    editor.bench_function("merge_one_edit_after_read", |b| {
        b.iter(|| {
            renders.merge_markdown(
                "bench",
                black_box(&editor_storage),
                black_box(&edited),
                &policy,
            )
        })
    });
    editor.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
