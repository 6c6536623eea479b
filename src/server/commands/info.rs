//! INFO: Redis 7.0's sections, each with every field Redis prints, in Redis's order, then
//! weir's own sections. Fields with no meaning for weir (replication, forks, RDB, scripting,
//! eviction) hold the values an idle standalone Redis shows; docs/server.md lists them.

use std::fmt::{Display, Write as _};
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::info_weir::{StoreSize, backlog_section, weir_section};
use super::{Ctx, Outcome, stats_names};
use crate::server::cluster_view::{ClusterView, ViewShard};
use crate::server::keys::{DATABASES, key_of};
use crate::server::process;
use crate::server::resp::Value;
use crate::server::state::{Server, unix_ms};

/// Every section in the order INFO prints them, and whether `INFO` / `INFO default` shows it.
const SECTIONS: [(&str, bool); 15] = [
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
    ("backlog", true),
    ("weir", true),
];

/// The sections `args` (INFO's arguments, without the name) ask for, in printing order:
/// the default ones without arguments, every one for `all` or `everything`.
fn wanted_sections(args: &[Bytes]) -> Vec<&'static str> {
    let asked = |name: &str| {
        args.iter()
            .any(|arg| arg.eq_ignore_ascii_case(name.as_bytes()))
    };
    let all = asked("all") || asked("everything");
    let default = args.is_empty() || asked("default");
    SECTIONS
        .iter()
        .filter(|&&(name, in_default)| all || (default && in_default) || asked(name))
        .map(|&(name, _)| name)
        .collect()
}

pub(super) fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Outcome {
    let server = ctx.server;
    let sections: Vec<String> = wanted_sections(&args[1..])
        .into_iter()
        .filter_map(|name| section(server, name))
        .collect();
    Value::Verbatim {
        format: *b"txt",
        text: Bytes::from(sections.join("\r\n")),
    }
    .into()
}

/// Lines of `name:value`, after a `# Title` line.
struct Section(String);

impl Section {
    fn new(title: &str) -> Self {
        Section(format!("# {title}\r\n"))
    }

    fn field(mut self, name: &str, value: impl Display) -> Self {
        let _ = write!(self.0, "{name}:{value}\r\n");
        self
    }
}

/// One section's text; `None` for weir's sections while the store is closed (reloading).
fn section(server: &Server, name: &str) -> Option<String> {
    Some(
        match name {
            "server" => server_section(server),
            "clients" => clients_section(server),
            "memory" => memory_section(server),
            "persistence" => persistence_section(server),
            "stats" => stats_section(server),
            "replication" => replication_section(server),
            "cpu" => cpu_section(),
            "modules" => Section::new("Modules"),
            "commandstats" => commandstats_section(server),
            "errorstats" => errorstats_section(server),
            "latencystats" => Section::new("Latencystats"),
            "cluster" => Section::new("Cluster")
                .field("cluster_enabled", u8::from(server.cluster_view().is_some())),
            "keyspace" => keyspace_section(server),
            "backlog" => return Some(backlog_section(&server.stores().ok()?)),
            _ => {
                let stores = server.stores().ok()?;
                let dir = server.config.read().dir.clone();
                return Some(weir_section(&stores, &dir));
            }
        }
        .0,
    )
}

fn server_section(server: &Server) -> Section {
    let config = server.config.read().clone();
    let uptime = server.started.elapsed().as_secs();
    let now_ms = unix_ms();
    let executable = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    Section::new("Server")
        .field("redis_version", config.redis_version)
        .field("redis_git_sha1", "00000000")
        .field("redis_git_dirty", 0)
        .field("redis_build_id", build_id())
        .field("redis_mode", "standalone")
        .field("os", process::os_name())
        .field("arch_bits", usize::BITS)
        .field("monotonic_clock", "POSIX clock_gettime")
        .field("multiplexing_api", multiplexing_api())
        .field("atomicvar_api", "c11-builtin")
        .field("gcc_version", "0.0.0")
        .field("process_id", std::process::id())
        .field("process_supervised", "no")
        .field("run_id", &server.run_id)
        .field("tcp_port", config.port)
        .field("server_time_usec", now_ms * 1000)
        .field("uptime_in_seconds", uptime)
        .field("uptime_in_days", uptime / 86_400)
        .field("hz", 10)
        .field("configured_hz", 10)
        .field("lru_clock", (now_ms / 1000) & ((1 << 24) - 1))
        .field("executable", executable)
        .field("config_file", "")
        .field("io_threads_active", 0)
        .field("weir_version", env!("CARGO_PKG_VERSION"))
        .field("weir_tls_port", config.tls.port)
}

/// 16 hex digits that change with weir's version, as Redis's build ID changes with its build.
fn build_id() -> String {
    // FNV-1a: stable across runs and platforms, unlike the standard library's hasher.
    let hash = env!("CARGO_PKG_VERSION")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The readiness API the runtime waits on, as Redis names its own.
fn multiplexing_api() -> &'static str {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        "epoll"
    } else if cfg!(windows) {
        "iocp"
    } else {
        "kqueue"
    }
}

fn clients_section(server: &Server) -> Section {
    let config = server.config.read();
    Section::new("Clients")
        .field("connected_clients", server.clients.lock().len())
        .field("cluster_connections", 0)
        .field("maxclients", config.maxclients)
        .field("client_recent_max_input_buffer", 0)
        .field("client_recent_max_output_buffer", 0)
        .field(
            "blocked_clients",
            server.blocked_clients.load(Ordering::Relaxed),
        )
        .field("tracking_clients", 0)
        .field("clients_in_timeout_table", 0)
}

/// Bytes as Redis shows them to people: `512B`, `1.50K`, `3.25M`, …
fn human(bytes: u64) -> String {
    const UNITS: [(u32, char); 5] = [(1, 'K'), (2, 'M'), (3, 'G'), (4, 'T'), (5, 'P')];
    let fits = |power: u32| bytes < 1024u64.saturating_pow(power);
    if fits(1) {
        return format!("{bytes}B");
    }
    UNITS
        .iter()
        .find(|&&(power, _)| fits(power + 1))
        .map_or_else(
            || format!("{bytes}B"),
            |&(power, unit)| format!("{:.2}{unit}", bytes as f64 / 1024f64.powi(power as i32)),
        )
}

/// `part` as a percentage of `whole`, with two decimals and a `%`.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.00%".to_owned();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}

fn ratio(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.00".to_owned();
    }
    format!("{:.2}", part as f64 / whole as f64)
}

fn memory_section(server: &Server) -> Section {
    let memory = process::memory();
    let used = memory.heap;
    let peak = server
        .stats
        .peak_memory
        .fetch_max(used, Ordering::Relaxed)
        .max(used);
    let startup = server.startup_memory.min(used);
    let dataset = used - startup;
    let total = process::total_system_memory();
    let rss_overhead = i128::from(memory.rss) - i128::from(used);
    Section::new("Memory")
        .field("used_memory", used)
        .field("used_memory_human", human(used))
        .field("used_memory_rss", memory.rss)
        .field("used_memory_rss_human", human(memory.rss))
        .field("used_memory_peak", peak)
        .field("used_memory_peak_human", human(peak))
        .field("used_memory_peak_perc", percent(used, peak))
        .field("used_memory_overhead", startup)
        .field("used_memory_startup", startup)
        .field("used_memory_dataset", dataset)
        .field("used_memory_dataset_perc", percent(dataset, used - startup))
        .field("allocator_allocated", used)
        .field("allocator_active", used)
        .field("allocator_resident", used)
        .field("total_system_memory", total)
        .field("total_system_memory_human", human(total))
        .field("used_memory_lua", 0)
        .field("used_memory_vm_eval", 0)
        .field("used_memory_lua_human", "0B")
        .field("used_memory_scripts_eval", 0)
        .field("number_of_cached_scripts", 0)
        .field("number_of_functions", 0)
        .field("number_of_libraries", 0)
        .field("used_memory_vm_functions", 0)
        .field("used_memory_vm_total", 0)
        .field("used_memory_vm_total_human", "0B")
        .field("used_memory_functions", 0)
        .field("used_memory_scripts", 0)
        .field("used_memory_scripts_human", "0B")
        .field("maxmemory", 0)
        .field("maxmemory_human", "0B")
        .field("maxmemory_policy", "noeviction")
        .field("allocator_frag_ratio", "1.00")
        .field("allocator_frag_bytes", 0)
        .field("allocator_rss_ratio", "1.00")
        .field("allocator_rss_bytes", 0)
        .field("rss_overhead_ratio", ratio(memory.rss, used))
        .field("rss_overhead_bytes", rss_overhead)
        .field("mem_fragmentation_ratio", ratio(memory.rss, used))
        .field("mem_fragmentation_bytes", rss_overhead)
        .field("mem_not_counted_for_evict", 0)
        .field("mem_replication_backlog", 0)
        .field("mem_total_replication_buffers", 0)
        .field("mem_clients_slaves", 0)
        .field("mem_clients_normal", 0)
        .field("mem_cluster_links", 0)
        .field("mem_aof_buffer", 0)
        .field("mem_allocator", "libc")
        .field("active_defrag_running", 0)
        .field("lazyfree_pending_objects", 0)
        .field("lazyfreed_objects", 0)
}

fn persistence_section(server: &Server) -> Section {
    let store = server.store().ok();
    let recovery = server.recovery();
    let flushes = store
        .as_ref()
        .map(|store| store.flush_stats())
        .unwrap_or_default();
    let size = server
        .stores()
        .map(|stores| StoreSize::of(&stores))
        .unwrap_or_default();
    Section::new("Persistence")
        .field("loading", u8::from(store.is_none()))
        .field("async_loading", 0)
        .field("current_cow_peak", 0)
        .field("current_cow_size", 0)
        .field("current_cow_size_age", 0)
        .field("current_fork_perc", "0.00")
        .field("current_save_keys_processed", 0)
        .field("current_save_keys_total", 0)
        .field("rdb_changes_since_last_save", 0)
        .field("rdb_bgsave_in_progress", 0)
        .field("rdb_last_save_time", server.started_unix_ms / 1000)
        .field("rdb_last_bgsave_status", "ok")
        .field("rdb_last_bgsave_time_sec", -1)
        .field("rdb_current_bgsave_time_sec", -1)
        .field("rdb_saves", 0)
        .field("rdb_last_cow_size", 0)
        .field("rdb_last_load_keys_expired", 0)
        .field("rdb_last_load_keys_loaded", 0)
        .field("aof_enabled", 1)
        .field("aof_rewrite_in_progress", 0)
        .field("aof_rewrite_scheduled", 0)
        .field("aof_last_rewrite_time_sec", -1)
        .field("aof_current_rewrite_time_sec", -1)
        .field("aof_last_bgrewrite_status", "ok")
        .field("aof_rewrites", 0)
        .field("aof_rewrites_consecutive_failures", 0)
        .field("aof_last_write_status", "ok")
        .field("aof_last_cow_size", 0)
        .field("module_fork_in_progress", 0)
        .field("module_fork_last_cow_size", 0)
        .field("aof_current_size", size.bytes)
        .field("aof_base_size", 0)
        .field("aof_pending_rewrite", 0)
        .field("aof_buffer_length", 0)
        .field("aof_pending_bio_fsync", 0)
        .field("aof_delayed_fsync", 0)
        .field("appendfsync", server.config.read().fsync.as_str())
        .field("weir_last_open_clean", u8::from(recovery.clean))
        .field("weir_last_open_lost_records", recovery.lost_records())
        .field("weir_flush_rounds", flushes.rounds)
        .field("weir_flush_requests", flushes.requests)
        .field("weir_flush_usec", flushes.flush_us)
        .field("weir_flush_max_usec", flushes.max_flush_us)
}

fn stats_section(server: &Server) -> Section {
    let stats = &server.stats;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let zeros = |section: Section, names: &[&str]| {
        names
            .iter()
            .fold(section, |section, name| section.field(name, 0))
    };
    let section = Section::new("Stats")
        .field(
            "total_connections_received",
            load(&stats.connections_received),
        )
        .field("total_commands_processed", load(&stats.commands_processed))
        .field("instantaneous_ops_per_sec", 0)
        .field("total_net_input_bytes", load(&stats.net_input_bytes))
        .field("total_net_output_bytes", load(&stats.net_output_bytes))
        .field("total_net_repl_input_bytes", 0)
        .field("total_net_repl_output_bytes", 0)
        .field("instantaneous_input_kbps", "0.00")
        .field("instantaneous_output_kbps", "0.00")
        .field("instantaneous_input_repl_kbps", "0.00")
        .field("instantaneous_output_repl_kbps", "0.00")
        .field("rejected_connections", load(&stats.rejected_connections));
    let section = zeros(
        section,
        &[
            "sync_full",
            "sync_partial_ok",
            "sync_partial_err",
            "expired_keys",
        ],
    )
    .field("expired_stale_perc", "0.00");
    let section = zeros(
        section,
        &[
            "expired_time_cap_reached_count",
            "expire_cycle_cpu_milliseconds",
            "evicted_keys",
            "evicted_clients",
            "total_eviction_exceeded_time",
            "current_eviction_exceeded_time",
            "keyspace_hits",
            "keyspace_misses",
            "pubsub_channels",
            "pubsub_patterns",
            "pubsubshard_channels",
            "latest_fork_usec",
            "total_forks",
            "migrate_cached_sockets",
            "slave_expires_tracked_keys",
            "active_defrag_hits",
            "active_defrag_misses",
            "active_defrag_key_hits",
            "active_defrag_key_misses",
            "total_active_defrag_time",
            "current_active_defrag_time",
            "tracking_total_keys",
            "tracking_total_items",
            "tracking_total_prefixes",
            "unexpected_error_replies",
        ],
    )
    .field("total_error_replies", stats.errors.total());
    zeros(
        section,
        &[
            "dump_payload_sanitizations",
            "total_reads_processed",
            "total_writes_processed",
            "io_threaded_reads_processed",
            "io_threaded_writes_processed",
            "reply_buffer_shrinks",
            "reply_buffer_expands",
        ],
    )
    .field("acl_access_denied_auth", load(&server.acl.denied.auth))
    .field("acl_access_denied_cmd", load(&server.acl.denied.command))
    .field("acl_access_denied_key", load(&server.acl.denied.key))
    .field(
        "acl_access_denied_channel",
        load(&server.acl.denied.channel),
    )
}

fn replication_section(server: &Server) -> Section {
    let section = Section::new("Replication");
    let view = server.cluster_view();
    // A node of a cluster counts its offset in Raft log entries applied.
    let offset = view
        .as_ref()
        .and_then(own_shard)
        .map_or(0, |shard| shard.applied_index);
    let section = match &view {
        Some(view) => cluster_replication_fields(section, view),
        None => section.field("role", "master").field("connected_slaves", 0),
    };
    section
        .field("master_failover_state", "no-failover")
        .field("master_replid", &server.run_id)
        .field("master_replid2", "0".repeat(40))
        .field("master_repl_offset", offset)
        .field("second_repl_offset", -1)
        .field("repl_backlog_active", 0)
        .field("repl_backlog_size", 1_048_576)
        .field("repl_backlog_first_byte_offset", 0)
        .field("repl_backlog_histlen", 0)
}

/// The shard a node reports its replication of: the first it leads, else the first shard.
fn own_shard(view: &ClusterView) -> Option<&ViewShard> {
    let led = view
        .shards
        .iter()
        .find(|shard| shard.leader == Some(view.myself));
    led.or(view.shards.first())
}

/// A node of a cluster reports its Raft role as Redis replication does: the leader as the
/// master with its followers as replicas, a follower as the leader's replica. With several
/// shards, a node that leads one reports that one, as a Redis Cluster master.
fn cluster_replication_fields(section: Section, view: &ClusterView) -> Section {
    let Some(shard) = own_shard(view) else {
        return section.field("role", "master").field("connected_slaves", 0);
    };
    let offset = shard.applied_index;
    let leader = shard.leader.and_then(|leader| view.node(leader));
    if shard.leader == Some(view.myself) {
        let replicas: Vec<_> = view
            .nodes
            .iter()
            .filter(|node| node.id != view.myself && node.connected)
            .collect();
        let mut section = section
            .field("role", "master")
            .field("connected_slaves", replicas.len());
        for (at, node) in replicas.iter().enumerate() {
            section = section.field(
                &format!("slave{at}"),
                format_args!(
                    "ip={},port={},state=online,offset={offset},lag=0",
                    node.client_ip, node.client_port
                ),
            );
        }
        return section;
    }
    let (host, port, link) = match leader {
        Some(node) => (node.client_ip.as_str(), node.client_port, "up"),
        None => ("?", 0, "down"),
    };
    section
        .field("role", "slave")
        .field("master_host", host)
        .field("master_port", port)
        .field("master_link_status", link)
        .field("slave_repl_offset", offset)
        .field("slave_read_only", 1)
        .field("connected_slaves", 0)
}

fn cpu_section() -> Section {
    let cpu = process::cpu_time();
    let seconds = |time: std::time::Duration| format!("{:.6}", time.as_secs_f64());
    Section::new("CPU")
        .field("used_cpu_sys", seconds(cpu.system))
        .field("used_cpu_user", seconds(cpu.user))
        .field("used_cpu_sys_children", seconds(cpu.children_system))
        .field("used_cpu_user_children", seconds(cpu.children_user))
        // Every thread serves clients: the process's time is the main thread's.
        .field("used_cpu_sys_main_thread", seconds(cpu.system))
        .field("used_cpu_user_main_thread", seconds(cpu.user))
}

fn commandstats_section(server: &Server) -> Section {
    let mut section = Section::new("Commandstats");
    for (name, slot) in stats_names() {
        let counts = server.stats.commands.counts(slot);
        if counts.calls == 0 && counts.rejected == 0 && counts.failed == 0 {
            continue;
        }
        let per_call = if counts.calls == 0 {
            0.0
        } else {
            counts.usec as f64 / counts.calls as f64
        };
        section = section.field(
            &format!("cmdstat_{name}"),
            format_args!(
                "calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}",
                counts.calls, counts.usec, counts.rejected, counts.failed
            ),
        );
    }
    section
}

fn errorstats_section(server: &Server) -> Section {
    server.stats.errors.by_code().into_iter().fold(
        Section::new("Errorstats"),
        |section, (code, count)| {
            section.field(&format!("errorstat_{code}"), format_args!("count={count}"))
        },
    )
}

fn keyspace_section(server: &Server) -> Section {
    let mut section = Section::new("Keyspace");
    let Ok(stores) = server.stores() else {
        return section;
    };
    let names: Vec<Vec<u8>> = stores
        .iter()
        .flat_map(|store| store.stream_names())
        .collect();
    for db in 0..DATABASES {
        let keys = names.iter().filter(|n| key_of(db, n).is_some()).count();
        if keys > 0 {
            section = section.field(
                &format!("db{db}"),
                format_args!("keys={keys},expires=0,avg_ttl=0"),
            );
        }
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(args: &[&str]) -> Vec<&'static str> {
        let args: Vec<Bytes> = args
            .iter()
            .map(|arg| Bytes::copy_from_slice(arg.as_bytes()))
            .collect();
        wanted_sections(&args)
    }

    #[test]
    fn sections_come_in_redis_order_once_each() {
        let default = [
            "server",
            "clients",
            "memory",
            "persistence",
            "stats",
            "replication",
            "cpu",
            "modules",
            "errorstats",
            "cluster",
            "keyspace",
            "backlog",
            "weir",
        ];
        assert_eq!(wanted(&[]), default);
        assert_eq!(wanted(&["DEFAULT"]), default);
        assert_eq!(wanted(&["default", "server"]), default);
        assert_eq!(wanted(&["all"]).len(), SECTIONS.len());
        assert_eq!(wanted(&["everything"]).len(), SECTIONS.len());
        assert_eq!(
            wanted(&["Cluster", "server", "CLUSTER"]),
            ["server", "cluster"]
        );
        assert_eq!(
            wanted(&["commandstats", "default"]).len(),
            default.len() + 1
        );
        assert!(wanted(&["nosuch"]).is_empty());
    }

    #[test]
    fn bytes_read_as_redis_shows_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(916_592), "895.11K");
        assert_eq!(human(6_877_184), "6.56M");
        assert_eq!(human(25_276_182_528), "23.54G");
    }

    #[test]
    fn the_build_id_is_sixteen_hex_digits() {
        let id = build_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
