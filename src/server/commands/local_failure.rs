//! Failures of this machine (its disk, its files) met while a command ran, as opposed to the
//! errors a command and the data cause. A single node answers both alike. A node of a cluster
//! must not: another node running the same command would not fail, so answering would make this
//! node's state differ from theirs. The state machine asks after each replicated command whether
//! one happened; the handlers that turn a store error into a reply note it here.
//!
//! A replicated command runs synchronously on the thread that applies it, so a thread-local
//! slot sees exactly the failures of that command.

use std::cell::RefCell;

use crate::StoreError;

thread_local! {
    static LOCAL_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Notes `error` if it is this machine's failure; the first one noted since the last
/// [`take`] is kept.
pub(crate) fn note(error: &StoreError) {
    if error.is_local() {
        LOCAL_FAILURE.with_borrow_mut(|slot| {
            slot.get_or_insert_with(|| error.to_string());
        });
    }
}

/// The failure noted on this thread since the last call, if any; clears it.
pub(crate) fn take() -> Option<String> {
    LOCAL_FAILURE.with_borrow_mut(Option::take)
}
