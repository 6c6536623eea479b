//! The replicated cluster: Raft consensus (openraft) over weir's own storage.
//!
//! Client commands are replicated through a Raft log ([`wal`]), a write-ahead log of commands
//! in its own files, and applied, in log order, by a state machine that the store provides
//! through the narrow [`state_machine::Replicated`] trait. Only this module names openraft:
//! [`types`] declares weir's Raft types, [`log_store`] and [`state_machine`] adapt weir's
//! storage to openraft's traits, so an upgrade of openraft changes this module alone.
//!
//! An entry is acknowledged when it is durable in the Raft log of a majority of the nodes:
//! openraft hears that an append is done only after its fdatasync (or at once, if the node's
//! durability policy explicitly says not to wait).

pub mod entry_codec;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod state_machine;
pub mod types;
pub mod wal;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod simulation;
#[cfg(test)]
mod suite_tests;
#[cfg(test)]
mod tcp_cluster_tests;
