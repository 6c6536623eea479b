//! The checks catch what they are for, on ledgers made by hand.

use std::collections::BTreeMap;

use super::checks::{agreed_log, check_acknowledged, check_applied_once, check_no_duplicates};
use super::workload::AckedWrite;
use crate::cluster::state_machine::test_counter::{AppliedCommand, StateEvent};

fn command(index: u64, time_ms: u64, delta: u64) -> AppliedCommand {
    (index, time_ms, b"jobs".to_vec(), delta)
}

fn applied(index: u64, time_ms: u64, delta: u64) -> StateEvent {
    StateEvent::Applied(command(index, time_ms, delta))
}

#[test]
fn an_index_applied_again_after_a_restart_is_caught() {
    let ledger = [applied(1, 10, 1), applied(2, 11, 1), applied(2, 11, 1)];
    assert!(check_applied_once(1, &ledger).is_err());
}

#[test]
fn a_state_installed_behind_the_one_held_is_caught() {
    let ledger = [
        applied(5, 10, 1),
        StateEvent::Installed { applied: Some(3) },
    ];
    assert!(check_applied_once(1, &ledger).is_err());
}

#[test]
fn commands_after_an_installed_state_are_applied_once() {
    let ledger = [
        applied(1, 10, 1),
        StateEvent::Installed { applied: Some(7) },
        applied(8, 11, 1),
    ];
    assert!(check_applied_once(1, &ledger).is_ok());
}

#[test]
fn nodes_applying_different_commands_at_one_index_are_caught() {
    let ledgers = BTreeMap::from([(1, vec![applied(1, 10, 1)]), (2, vec![applied(1, 11, 1)])]);
    assert!(agreed_log(&ledgers).is_err());
}

#[test]
fn a_command_in_the_log_twice_is_caught() {
    let ledgers = BTreeMap::from([(1, vec![applied(1, 10, 1), applied(2, 10, 1)])]);
    let log = agreed_log(&ledgers).unwrap();
    assert!(check_no_duplicates(&log).is_err());
}

fn acked(index: u64, time_ms: u64, delta: u64, reply: u64) -> AckedWrite {
    AckedWrite {
        time_ms,
        index,
        name: "jobs",
        delta,
        reply: Some(reply),
    }
}

#[test]
fn an_acknowledged_write_lost_or_answered_wrong_is_caught() {
    let ledgers = BTreeMap::from([(1, vec![applied(1, 10, 4), applied(3, 11, 5)])]);
    let log = agreed_log(&ledgers).unwrap();
    assert!(check_acknowledged(&log, &acked(3, 11, 5, 9)).is_ok());
    assert!(
        check_acknowledged(&log, &acked(2, 12, 5, 9)).is_err(),
        "lost"
    );
    assert!(
        check_acknowledged(&log, &acked(3, 11, 5, 5)).is_err(),
        "wrong reply"
    );
}
