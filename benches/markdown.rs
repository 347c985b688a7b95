//! Throughput of Markdown ⇄ storage conversion on a typical page and on a ~1 MB document.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use conflagent::markdown::{markdown_to_storage, storage_to_markdown};

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

![Flow](flow.png) Status `confluence-storage:<ac:emoticon ac:name="tick"/>`[^1]

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
}

criterion_group!(benches, bench);
criterion_main!(benches);
