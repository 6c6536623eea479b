//! What a stream is, besides its entries, read from a server with `XINFO`: its counters and
//! every consumer group with its consumers and full pending list. The same reading serves the
//! copy (from Redis) and the verification (of both servers).

use std::collections::BTreeSet;

use redis::{Cmd, Value};

use crate::Failure;
use crate::conn::Conn;
use crate::reply::{Id, count, field, id, int, items, pairs};

/// A stream's state, without its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    pub length: u64,
    pub last_generated_id: Id,
    pub max_deleted_id: Id,
    pub entries_added: u64,
    /// The oldest live entry's ID, if any.
    pub first_entry: Option<Id>,
    /// By name.
    pub groups: Vec<GroupState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub name: Vec<u8>,
    pub last_delivered_id: Id,
    /// `None` when the server does not know it (Redis's nil).
    pub entries_read: Option<u64>,
    /// Every consumer's name, sorted.
    pub consumers: Vec<Vec<u8>>,
    /// By ID.
    pub pending: Vec<Pending>,
}

/// One entry of a group's pending list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: Id,
    pub consumer: Vec<u8>,
    /// When it was last delivered, in Unix milliseconds.
    pub delivered_ms: u64,
    pub deliveries: u64,
}

/// Reads `key`'s state. Memory: the largest pending list of its groups (`XINFO STREAM … FULL
/// COUNT n` also lists `n` entries, which are not kept).
pub fn describe(con: &mut Conn, key: &[u8]) -> Result<StreamState, Failure> {
    let info = con.call(Cmd::new().arg("XINFO").arg("STREAM").arg(key))?;
    let info = pairs(&info)?;
    let first_entry = match field(&info, "first-entry")? {
        Value::Nil => None,
        entry => Some(crate::reply::entry(entry)?.id),
    };
    let group_count = count(field(&info, "groups")?)?;
    let groups = if group_count == 0 {
        Vec::new()
    } else {
        describe_groups(con, key)?
    };
    Ok(StreamState {
        length: count(field(&info, "length")?)?,
        last_generated_id: id(field(&info, "last-generated-id")?)?,
        max_deleted_id: id(field(&info, "max-deleted-entry-id")?)?,
        entries_added: count(field(&info, "entries-added")?)?,
        first_entry,
        groups,
    })
}

/// Every group, from `XINFO STREAM key FULL COUNT n` with `n` the largest pending count that
/// `XINFO GROUPS` reports, so that no pending list is cut short.
fn describe_groups(con: &mut Conn, key: &[u8]) -> Result<Vec<GroupState>, Failure> {
    let summary = con.call(Cmd::new().arg("XINFO").arg("GROUPS").arg(key))?;
    let mut largest = 1;
    for group in items(&summary)? {
        largest = largest.max(count(field(&pairs(group)?, "pending")?)?);
    }
    let full = con.call(
        Cmd::new()
            .arg("XINFO")
            .arg("STREAM")
            .arg(key)
            .arg("FULL")
            .arg("COUNT")
            .arg(largest),
    )?;
    let full = pairs(&full)?;
    let mut groups = items(field(&full, "groups")?)?
        .iter()
        .map(group_state)
        .collect::<Result<Vec<_>, _>>()?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

fn group_state(value: &Value) -> Result<GroupState, Failure> {
    let map = pairs(value)?;
    let name = crate::reply::bytes(field(&map, "name")?)?;
    let entries_read = match field(&map, "entries-read")? {
        Value::Nil => None,
        value => Some(count(value)?),
    };
    let mut pending = items(field(&map, "pending")?)?
        .iter()
        .map(pending_row)
        .collect::<Result<Vec<_>, _>>()?;
    pending.sort_by_key(|row| row.id);
    let listed = pending.len() as u64;
    if count(field(&map, "pel-count")?)? != listed {
        return Err(Failure::Protocol(format!(
            "group {} lists {listed} pending entries, not the {} it counts: did it change \
             during the copy? Stop the writers and consumers and run again",
            name.escape_ascii(),
            int(field(&map, "pel-count")?)?
        )));
    }
    let mut consumers = items(field(&map, "consumers")?)?
        .iter()
        .map(|consumer| crate::reply::bytes(field(&pairs(consumer)?, "name")?))
        .collect::<Result<Vec<_>, _>>()?;
    consumers.sort();
    Ok(GroupState {
        name,
        last_delivered_id: id(field(&map, "last-delivered-id")?)?,
        entries_read,
        consumers,
        pending,
    })
}

/// `[id, consumer, delivery-time, delivery-count]`.
fn pending_row(value: &Value) -> Result<Pending, Failure> {
    let [entry_id, consumer, delivered, deliveries] = items(value)? else {
        return Err(Failure::Protocol(format!(
            "expected a pending entry, got {value:?}"
        )));
    };
    Ok(Pending {
        id: id(entry_id)?,
        consumer: crate::reply::bytes(consumer)?,
        delivered_ms: count(delivered)?,
        deliveries: count(deliveries)?,
    })
}

/// The pending IDs, of any group, whose entries are gone from the stream (deleted or trimmed
/// after delivery): Redis keeps them pending until they are acknowledged or claimed.
pub fn pending_without_entry(
    con: &mut Conn,
    key: &[u8],
    state: &StreamState,
) -> Result<BTreeSet<Id>, Failure> {
    let pending: BTreeSet<Id> = state
        .groups
        .iter()
        .flat_map(|group| group.pending.iter().map(|row| row.id))
        .collect();
    let mut missing = BTreeSet::new();
    let ids: Vec<Id> = pending.into_iter().collect();
    for chunk in ids.chunks(PROBES_PER_PIPELINE) {
        let probes: Vec<Cmd> = chunk
            .iter()
            .map(|id| {
                let id = id.to_string();
                let mut cmd = Cmd::new();
                cmd.arg("XRANGE").arg(key).arg(&id).arg(&id);
                cmd
            })
            .collect();
        for (id, reply) in chunk.iter().zip(con.pipeline(&probes)?) {
            if items(&reply)?.is_empty() {
                missing.insert(*id);
            }
        }
    }
    Ok(missing)
}

/// How many existence checks go in one round trip.
const PROBES_PER_PIPELINE: usize = 1000;
