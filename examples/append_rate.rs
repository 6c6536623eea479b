//! Appends a fixed number of entries with one writer under `Durability::Never` and prints the
//! rate: a fixed amount of work, so that `perf stat` (page faults, CPU time) and `valgrind
//! --tool=callgrind` (instructions) can be divided by the number of appends.
//!
//! `cargo run --release --example append_rate -- BODY_BYTES COUNT BATCH` (defaults 100,
//! 10000000, 1): `BATCH` 1 calls `Stream::append` per entry, more calls `Stream::append_batch`
//! with that many. The store lives in a temporary directory with 256 MiB segments, as in
//! `cargo bench --bench append`.

use std::time::Instant;

use weir::{Durability, LogOptions, Message, Store, StoreOptions};

fn argument(position: usize, default: usize) -> Result<usize, String> {
    match std::env::args().nth(position) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {position} ({text:?}) is not a whole number")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let body_len = argument(1, 100)?;
    let count = argument(2, 10_000_000)?;
    let batch = argument(3, 1)?.max(1);
    let dir = tempfile::tempdir()?;
    let options = StoreOptions {
        durability: Durability::Never,
        log: LogOptions {
            max_segment_bytes: 256 << 20,
            ..LogOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options)?;
    let stream = store.stream(b"rate")?;
    let body = bytes::Bytes::from(vec![b'x'; body_len]);
    let messages: Vec<Message> = (0..batch).map(|_| Message::new(body.clone())).collect();
    let start = Instant::now();
    let mut appended = 0;
    while appended < count {
        if batch == 1 {
            stream.append(Message::new(body.clone()))?;
            appended += 1;
        } else {
            let take = batch.min(count - appended);
            stream.append_batch(&messages[..take])?;
            appended += take;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{appended} appends of {body_len} B in batches of {batch}: {:.2} M/s, {:.0} MB/s",
        appended as f64 / seconds / 1e6,
        (appended * body_len) as f64 / seconds / 1e6
    );
    drop(stream);
    store.close()?;
    Ok(())
}
