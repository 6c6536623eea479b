//! `WAIT numreplicas timeout`: how many replicas hold the connection's writes. A single node has
//! none: it answers 0, at once when no replica is asked for, else when the timeout passes (0
//! waits forever), as a Redis master without replicas does. The leader of a cluster counts the
//! followers whose Raft log holds the connection's last write; a follower refuses, as a Redis
//! replica does.

use std::sync::Arc;

use bytes::Bytes;

use super::describe::{About, Group};
use super::parse::{block, integer};
use super::{Client, CommandSpec, Ctx, Outcome};
use crate::server::Server;
use crate::server::resp::Value;

pub(super) fn commands() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new("wait", 3, &["noscript"], (0, 0, 0), wait_in_transaction).about(About {
            categories: &["@connection"],
            tips: &["request_policy:all_shards", "response_policy:agg_min"],
            ..About::new(
                Group::Generic,
                "3.0.0",
                "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
            )
        }),
    ]
}

/// Inside `MULTI`, `WAIT` does not wait: it counts the replicas that hold the writes now.
fn wait_in_transaction(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    if let Err(error) = block(&args[2], std::time::Instant::now()).and_then(|_| integer(&args[1])) {
        return error.into();
    }
    Value::Integer(replicas_now(ctx.server, ctx.client)).into()
}

#[cfg(feature = "cluster")]
fn replicas_now(server: &Server, client: &Client) -> i64 {
    server.replication().map_or(0, |replication| {
        replication.replicas_holding(client.last_write_shard, client.last_write_index) as i64
    })
}

#[cfg(not(feature = "cluster"))]
fn replicas_now(_: &Server, _: &Client) -> i64 {
    0
}

/// `WAIT` outside a transaction.
pub(super) async fn wait(server: &Arc<Server>, client: &Client, args: &[Bytes]) -> Outcome {
    // Redis reads the timeout first, then the count.
    let until = match block(&args[2], std::time::Instant::now()) {
        Ok(until) => until,
        Err(error) => return error.into(),
    };
    let wanted = match integer(&args[1]) {
        Ok(wanted) => wanted,
        Err(error) => return error.into(),
    };
    #[cfg(feature = "cluster")]
    if let Some(replication) = server.replication() {
        return match replication
            .wait_for_replicas(
                (client.last_write_shard, client.last_write_index),
                wanted,
                until.deadline(),
            )
            .await
        {
            Some(count) => Value::Integer(count as i64).into(),
            None => Value::error(
                "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
            )
            .into(),
        };
    }
    if wanted > 0 {
        let mut shutdown = server.shutdown.subscribe();
        match until.deadline() {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => {}
                    _ = shutdown.changed() => {}
                }
            }
            None => {
                let _ = shutdown.changed().await;
            }
        }
    }
    Value::Integer(replicas_now(server, client)).into()
}
