//! The Redis Cluster protocol surface: hash slots, node names, the `CLUSTER` replies built from
//! a [`ClusterView`](super::cluster_view::ClusterView), and the errors that route a client to
//! the node that serves a key. Pure functions of their arguments: the server decides when to
//! call them.

mod keyslot;
mod node_name;
mod redirect;
pub(crate) mod replies;
mod shard_map;
mod topology;

pub(crate) use keyslot::{SLOTS, key_slot};
pub(crate) use redirect::{cluster_down, keys_slot, moved, redirection, try_again};
pub(crate) use shard_map::{shard_of_slot, slots_of_shard};
