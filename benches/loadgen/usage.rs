//! What a server process has used, from `/proc`: CPU time (user and system), minor page
//! faults, and context switches summed over its threads. The difference of two readings,
//! divided by the operations done in between, is a cost per operation that does not depend on
//! how busy the machine is.

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User-space CPU time, in clock ticks.
    pub user_ticks: u64,
    /// Kernel CPU time on the process's behalf, in clock ticks.
    pub system_ticks: u64,
    /// Page faults served without I/O (a fresh or already cached page mapped in).
    pub minor_faults: u64,
    /// Voluntary and involuntary context switches of the threads alive at the reading.
    pub context_switches: u64,
}

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`): 100 on Linux for
/// every architecture the load generator runs on.
const TICKS_PER_SECOND: f64 = 100.0;

impl Usage {
    /// The counters of process `pid`, or `None` if they cannot be read (no `/proc`, the
    /// process is gone).
    pub fn read(pid: u32) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // stat(5) numbers fields from 1, the state (field 3) first after the name.
        let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
        Some(Usage {
            user_ticks: field(14)?,
            system_ticks: field(15)?,
            minor_faults: field(10)?,
            context_switches: thread_context_switches(pid)?,
        })
    }

    /// What was used from `earlier` to this reading.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            user_ticks: self.user_ticks.saturating_sub(earlier.user_ticks),
            system_ticks: self.system_ticks.saturating_sub(earlier.system_ticks),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
            context_switches: self
                .context_switches
                .saturating_sub(earlier.context_switches),
        }
    }

    /// The costs of each of `operations`, for the summary line.
    pub fn per_operation(&self, operations: u64) -> String {
        let n = operations.max(1) as f64;
        let micros = |ticks: u64| ticks as f64 * 1e6 / TICKS_PER_SECOND / n;
        format!(
            "server_cpu_us/op={:.3} (user={:.3} sys={:.3}) ctx_switches/op={:.4} minflt/op={:.4}",
            micros(self.user_ticks + self.system_ticks),
            micros(self.user_ticks),
            micros(self.system_ticks),
            self.context_switches as f64 / n,
            self.minor_faults as f64 / n,
        )
    }
}

/// Context switches summed over the process's threads (`/proc/PID/task/*/status`).
fn thread_context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // The thread exited after the listing.
        };
        total += status
            .lines()
            .filter(|line| line.contains("ctxt_switches:"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}
