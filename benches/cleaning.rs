//! Cleaning bench: what cleaning removes from real scraped articles, in characters and tokens,
//! and how fast ingest + clean + chunk run.
//!
//!     cargo bench --bench cleaning -- [DIR]      (default: ../shared/corpus)
//!
//! For every .txt/.md/.html file of DIR: characters and o200k_base tokens before and after
//! cleaning, lines removed, and the tokens saved; then the throughput of the CPU stages over
//! the whole folder (best of several rounds).

use std::path::PathBuf;
use std::time::Instant;

use hanbrief::clean;
use hanbrief::ingest::{self, InputFile};
use hanbrief::tokens::{Encoding, Tokenizer};

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    let found = ingest::discover(std::slice::from_ref(&dir), &[]).expect("a folder of articles");
    let tok = Tokenizer::new(Encoding::O200kBase);
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "file", "chars", "clean", "tokens", "clean", "saved", "removed"
    );
    let (mut tr, mut tc, mut bytes) = (0usize, 0usize, 0usize);
    let mut articles = Vec::new();
    for f in &found.files {
        let Ok(a) = ingest::read(f) else { continue };
        let c = clean::clean(&a.text, a.html_title.as_deref());
        let (raw, cleaned) = (tok.count(&a.text), tok.count(&c.text));
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>6.1}% {:>8}",
            f.rel.display().to_string(),
            a.text.chars().count(),
            c.chars(),
            raw,
            cleaned,
            100.0 * (raw - cleaned) as f64 / raw.max(1) as f64,
            c.removed.len()
        );
        tr += raw;
        tc += cleaned;
        bytes += a.bytes;
        articles.push(f.clone());
    }
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>6.1}%",
        "total",
        "",
        "",
        tr,
        tc,
        100.0 * (tr - tc) as f64 / tr.max(1) as f64
    );

    // Throughput of read + decode + clean + count + chunk, best of 5 rounds.
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for f in &articles {
            let a = ingest::read(&InputFile {
                path: f.path.clone(),
                rel: f.rel.clone(),
            })
            .unwrap();
            let c = clean::clean(&a.text, a.html_title.as_deref());
            let _ = hanbrief::chunk::chunk(&c.text, &tok, 6000);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "\ningest + clean + chunk: {} files, {} KB in {:.1} ms: {:.1} MB/s",
        articles.len(),
        bytes / 1024,
        best * 1000.0,
        bytes as f64 / best / 1e6
    );
}
