//! Writing one stream into the target with standard commands only: `XADD` with explicit IDs,
//! `XSETID … ENTRIESADDED … MAXDELETEDID`, `XGROUP CREATE … ENTRIESREAD`,
//! `XGROUP CREATECONSUMER`, and `XCLAIM … TIME … RETRYCOUNT … FORCE JUSTID` for each pending
//! entry.
//!
//! A pending entry whose entry is gone from the source (deleted or trimmed after delivery) can
//! only be claimed while its entry exists, so the copy adds a placeholder entry with that ID,
//! claims it, and then removes it again: `XTRIM … MINID` for placeholders older than the
//! oldest live entry (as a trim removed them in the source), `XDEL` for the others.

use std::collections::BTreeSet;

use redis::{Cmd, Value};

use crate::Failure;
use crate::conn::Conn;
use crate::describe::{GroupState, StreamState};
use crate::pages::Pages;
use crate::reply::{Entry, Id, items, text};

/// The one field of a placeholder entry (it never outlives the copy).
const PLACEHOLDER_FIELD: &[u8] = b"queue-migrate-placeholder";
/// How many pending entries are claimed in one round trip.
const CLAIMS_PER_PIPELINE: usize = 1000;

/// What one stream's copy wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Copied {
    pub entries: u64,
    pub groups: u64,
    pub consumers: u64,
    pub pending: u64,
    pub placeholders: u64,
}

/// Copies `key` (described by `state`) from `source` into `target`, where it does not exist.
/// `progress` hears the number of entries copied so far after each page.
pub fn copy_stream(
    source: &mut Conn,
    target: &mut Conn,
    key: &[u8],
    state: &StreamState,
    page_size: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Copied, Failure> {
    let placeholders = crate::describe::pending_without_entry(source, key, state)?;
    let mut copied = Copied {
        placeholders: placeholders.len() as u64,
        ..Copied::default()
    };
    copied.entries = copy_entries(source, target, key, page_size, &placeholders, progress)?;
    if copied.entries == 0 && placeholders.is_empty() {
        create_empty(target, key, state)?;
    }
    set_id(target, key, state)?;
    for group in &state.groups {
        copy_group(target, key, group)?;
        copied.groups += 1;
        copied.consumers += group.consumers.len() as u64;
        copied.pending += group.pending.len() as u64;
    }
    if !placeholders.is_empty() {
        remove_placeholders(target, key, state.first_entry, &placeholders)?;
        // Removing them moved the largest deleted ID; put back the source's.
        set_id(target, key, state)?;
    }
    Ok(copied)
}

/// Appends every entry, page by page, with the placeholders merged in by ID; returns how many
/// entries of the source were copied.
fn copy_entries(
    source: &mut Conn,
    target: &mut Conn,
    key: &[u8],
    page_size: usize,
    placeholders: &BTreeSet<Id>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Failure> {
    let mut waiting = placeholders.iter().copied().peekable();
    let mut pages = Pages::new(key, page_size);
    let mut copied = 0;
    loop {
        let page = pages.next(source)?;
        if page.is_empty() {
            break;
        }
        let mut adds = Vec::with_capacity(page.len());
        for entry in &page {
            while let Some(id) = waiting.next_if(|id| *id < entry.id) {
                adds.push(xadd(key, &placeholder(id)));
            }
            adds.push(xadd(key, entry));
        }
        target.pipeline(&adds)?;
        copied += page.len() as u64;
        progress(copied);
    }
    let rest: Vec<Cmd> = waiting.map(|id| xadd(key, &placeholder(id))).collect();
    target.pipeline(&rest)?;
    Ok(copied)
}

fn placeholder(id: Id) -> Entry {
    Entry {
        id,
        fields: vec![(PLACEHOLDER_FIELD.to_vec(), Vec::new())],
    }
}

fn xadd(key: &[u8], entry: &Entry) -> Cmd {
    let mut cmd = Cmd::new();
    cmd.arg("XADD").arg(key).arg(entry.id.to_string());
    for (name, value) in &entry.fields {
        cmd.arg(name.as_slice()).arg(value.as_slice());
    }
    cmd
}

/// A stream without entries (all deleted, or made by `XGROUP CREATE … MKSTREAM`): created the
/// only way the commands allow, with a group that is dropped at once.
fn create_empty(target: &mut Conn, key: &[u8], state: &StreamState) -> Result<(), Failure> {
    let mut name = b"queue-migrate-creating".to_vec();
    while state.groups.iter().any(|group| group.name == name) {
        name.push(b'_');
    }
    let mut create = Cmd::new();
    create
        .arg("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(name.as_slice())
        .arg("0")
        .arg("MKSTREAM");
    let mut destroy = Cmd::new();
    destroy
        .arg("XGROUP")
        .arg("DESTROY")
        .arg(key)
        .arg(name.as_slice());
    target.pipeline(&[create, destroy])?;
    Ok(())
}

/// `XSETID` with the source's last ID, entries-added and largest deleted ID.
fn set_id(target: &mut Conn, key: &[u8], state: &StreamState) -> Result<(), Failure> {
    let mut cmd = Cmd::new();
    cmd.arg("XSETID")
        .arg(key)
        .arg(state.last_generated_id.to_string())
        .arg("ENTRIESADDED")
        .arg(state.entries_added)
        .arg("MAXDELETEDID")
        .arg(state.max_deleted_id.to_string());
    target.call(&cmd)?;
    Ok(())
}

/// The group at its last-delivered ID and entries-read, its consumers, and its pending list.
fn copy_group(target: &mut Conn, key: &[u8], group: &GroupState) -> Result<(), Failure> {
    let entries_read = group
        .entries_read
        .map_or_else(|| "-1".to_string(), |read| read.to_string());
    let mut commands = Vec::with_capacity(group.consumers.len() + 1);
    let mut create = Cmd::new();
    create
        .arg("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group.name.as_slice())
        .arg(group.last_delivered_id.to_string())
        .arg("ENTRIESREAD")
        .arg(entries_read);
    commands.push(create);
    for consumer in &group.consumers {
        let mut cmd = Cmd::new();
        cmd.arg("XGROUP")
            .arg("CREATECONSUMER")
            .arg(key)
            .arg(group.name.as_slice())
            .arg(consumer.as_slice());
        commands.push(cmd);
    }
    target.pipeline(&commands)?;
    for chunk in group.pending.chunks(CLAIMS_PER_PIPELINE) {
        let claims: Vec<Cmd> = chunk
            .iter()
            .map(|row| {
                let mut cmd = Cmd::new();
                cmd.arg("XCLAIM")
                    .arg(key)
                    .arg(group.name.as_slice())
                    .arg(row.consumer.as_slice())
                    .arg(0)
                    .arg(row.id.to_string())
                    .arg("TIME")
                    .arg(row.delivered_ms)
                    .arg("RETRYCOUNT")
                    .arg(row.deliveries)
                    .arg("FORCE")
                    .arg("JUSTID");
                cmd
            })
            .collect();
        for (row, reply) in chunk.iter().zip(target.pipeline(&claims)?) {
            check_claimed(&reply, row.id, &group.name)?;
        }
    }
    Ok(())
}

/// A forced claim answers with the ID it made pending.
fn check_claimed(reply: &Value, id: Id, group: &[u8]) -> Result<(), Failure> {
    let claimed = items(reply)?;
    if claimed.len() == 1 && text(&claimed[0])? == id.to_string() {
        return Ok(());
    }
    Err(Failure::Protocol(format!(
        "the target did not make {id} pending in group {} (XCLAIM … FORCE answered {reply:?})",
        group.escape_ascii()
    )))
}

/// Removes the placeholders: a trim for those before the oldest live entry, `XDEL` for the
/// others.
fn remove_placeholders(
    target: &mut Conn,
    key: &[u8],
    first_entry: Option<Id>,
    placeholders: &BTreeSet<Id>,
) -> Result<(), Failure> {
    let mut trim = Cmd::new();
    trim.arg("XTRIM").arg(key);
    match first_entry {
        Some(first) if placeholders.first().is_some_and(|id| *id < first) => {
            target.call(trim.arg("MINID").arg(first.to_string()))?;
        }
        Some(_) => {}
        None => {
            target.call(trim.arg("MAXLEN").arg(0))?;
        }
    }
    let inside: Vec<Id> = placeholders
        .iter()
        .copied()
        .filter(|id| first_entry.is_some_and(|first| *id > first))
        .collect();
    for chunk in inside.chunks(CLAIMS_PER_PIPELINE) {
        let mut cmd = Cmd::new();
        cmd.arg("XDEL").arg(key);
        for id in chunk {
            cmd.arg(id.to_string());
        }
        target.call(&cmd)?;
    }
    Ok(())
}
