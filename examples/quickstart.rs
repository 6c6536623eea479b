//! Appends a few entries to a stream in a local data directory, then reads the stream back.
//!
//! `cargo run --release --example quickstart -- ./data` — run it twice: the second run finds
//! the first run's entries, recovered from disk.

use std::ops::Bound;

use weir::{Durability, Message, Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "./data".into());
    let options = StoreOptions {
        durability: Durability::Always,
        ..StoreOptions::default()
    };
    let store = Store::open_with(&dir, options)?;
    let recovery = store.recovery();
    println!(
        "opened {dir}: {} stream(s), {} entries, clean shutdown: {}, lost records: {}",
        recovery.streams.len(),
        recovery.entries(),
        recovery.clean,
        recovery.lost_records()
    );
    let greetings = store.stream(b"greetings")?;
    for word in ["hello", "from", "weir"] {
        let appended = greetings.append(Message::new(word).header("lang", "en"))?;
        println!(
            "appended {word:?} as {} (offset {})",
            appended.id, appended.offset
        );
    }
    for entry in greetings.range(Bound::Unbounded, Bound::Unbounded, 100)? {
        println!("{} {}", entry.id, String::from_utf8_lossy(entry.body()));
    }
    store.close()?;
    Ok(())
}
