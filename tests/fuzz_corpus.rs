//! Replays the fuzz targets' seed corpus (`fuzz/corpus/TARGET/`) through the same checks the
//! fuzz targets run (`fuzz/checks.rs`), so `cargo test` covers every corpus file without a
//! fuzzer. A file the fuzzer found and `cargo fuzz` saved there joins the replay.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("corpus {}: {error}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let files = corpus(target);
    assert!(files.len() >= 3, "{target}: the corpus holds too few seeds");
    for file in files {
        let data = std::fs::read(&file).expect("read corpus file");
        eprintln!("{target}: {}", file.display());
        check(&data);
    }
}

#[test]
fn record_decode_corpus() {
    replay("record_decode");
}

#[test]
fn segment_recovery_corpus() {
    replay("segment_recovery");
}

#[test]
fn group_recovery_corpus() {
    replay("group_recovery");
}

#[test]
fn resp_parser_corpus() {
    replay("resp_parser");
}

#[test]
fn commands_corpus() {
    replay("commands");
    checks::stop_server();
}
