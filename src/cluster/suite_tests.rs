//! openraft's own storage test suite, run against the log store and the state machine over a
//! test state, each built fresh in a temporary directory.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::state_machine::test_counter::CounterMap;
use super::types::{StorageError, TypeConfig};
use super::wal::WalOptions;

struct FreshStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachine<CounterMap>, TempDir> for FreshStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine<CounterMap>), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            max_file_bytes: 128,
            ..WalOptions::default()
        };
        let (log, recovery) = LogStore::open(&dir.path().join("log"), options).unwrap();
        assert!(recovery.is_whole());
        let counters = Arc::new(CounterMap::open(dir.path()).unwrap());
        let machine = StateMachine::open(dir.path(), counters).unwrap();
        Ok((dir, log, machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(FreshStores).unwrap();
}
