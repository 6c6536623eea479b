//! Fitting `maxclients` to the open-files limit, as Redis does: each client is a descriptor, and
//! a server that accepts more clients than it can open files for runs out of descriptors for its
//! streams, its log and `accept` itself.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but clients and streams: the listener, standard streams, the
/// data directory, the runtime's own, and files a store opens for a moment (segments while they
/// are mapped, snapshots while they are written). Redis keeps 32.
const RESERVED_FILES: u64 = 32;

/// Descriptors each stream keeps open: its two journals.
const FILES_PER_STREAM: u64 = 2;

/// What fitting `maxclients` to the open-files limit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFiles {
    /// The limit was high enough already.
    Enough,
    /// The soft limit was raised (toward the hard limit) to fit the clients.
    Raised {
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// The limit could not be raised far enough: `maxclients` must be lowered to fit it.
    TooFew {
        /// The open-files limit in force.
        limit: u64,
        /// The most clients that fit within it.
        maxclients: usize,
    },
}

/// Descriptors the server needs besides its clients, for `streams` streams.
fn reserved(streams: usize) -> u64 {
    RESERVED_FILES.saturating_add(FILES_PER_STREAM.saturating_mul(streams as u64))
}

/// Makes room for `maxclients` clients and `streams` streams: raises the soft open-files limit
/// toward the hard one if it is too low, and says how many clients fit when that is not enough.
/// Fails when not even one client fits.
pub fn fit_maxclients(maxclients: usize, streams: usize) -> Result<OpenFiles, String> {
    let reserve = reserved(streams);
    let wanted = reserve.saturating_add(maxclients as u64);
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let Some(soft) = current.filter(|&soft| soft < wanted) else {
        return Ok(OpenFiles::Enough);
    };
    let target = maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = target > soft
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum,
            },
        )
        .is_ok();
    let limit = if raised { target } else { soft };
    if limit >= wanted {
        return Ok(OpenFiles::Raised {
            from: soft,
            to: limit,
        });
    }
    match usize::try_from(limit.saturating_sub(reserve)) {
        Ok(fitting) if fitting >= 1 => Ok(OpenFiles::TooFew {
            limit,
            maxclients: fitting,
        }),
        _ => Err(format!(
            "the open-files limit ({limit}) leaves no descriptor for clients: the server needs {reserve} for itself and its {streams} streams; raise it with `ulimit -n` to at least {}",
            reserve + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_add_to_the_reserve() {
        assert_eq!(reserved(0), 32);
        assert_eq!(reserved(10), 52);
    }

    #[test]
    fn a_small_client_count_fits_any_usual_limit() {
        assert_eq!(fit_maxclients(1, 0), Ok(OpenFiles::Enough));
    }
}
