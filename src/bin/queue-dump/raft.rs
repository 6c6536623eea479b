//! The forms that read a cluster node's Raft log alone: `DIR/raft` or one `raft.<n>.wal` file
//! given as the path (a summary, or `--verify`), and `--records` on either, which lists the
//! entries by index.

use std::path::Path;

use weir::StreamId;
use weir::inspect;
use weir::names::STREAMS_DIR;

use crate::{Args, Failure, exit_code, json, print, print_json, text};

/// Which Raft log form a path calls for.
pub(crate) enum Form {
    /// A Raft log directory.
    Dir,
    /// One Raft log file.
    File,
}

/// The form `path` calls for; `None` when it is not a Raft log directory or file (a data
/// directory, whose summary includes its Raft log, is not one).
pub(crate) fn form(path: &Path) -> Option<Form> {
    if path.is_file() {
        inspect::is_raft_log_file(path).then_some(Form::File)
    } else {
        let log_dir = !path.join(STREAMS_DIR).is_dir() && inspect::is_raft_dir(path);
        log_dir.then_some(Form::Dir)
    }
}

pub(crate) fn dump(args: &Args, form: Form) -> Result<u8, Failure> {
    if args.stream.is_some() {
        return Err(Failure::Usage(format!(
            "{}: --stream needs a data directory, not a Raft log",
            args.path.display()
        )));
    }
    if args.hex {
        return Err(Failure::Usage(
            "--hex dumps the bodies of a stream's entries; a Raft log listing shows each entry's \
             kind and data length"
                .into(),
        ));
    }
    if args.records {
        return list(args);
    }
    let path = &args.path;
    match form {
        Form::Dir => {
            let report = inspect::inspect_raft(path);
            if args.json {
                print_json(&json::raft_dir_json(&report, args.verify));
            } else if args.verify {
                print(&text::raft_verify_text(&report));
            } else {
                print(&text::raft_text(&report));
            }
            Ok(exit_code(args, report.findings.iter()))
        }
        Form::File => {
            let report = inspect::inspect_raft_file(path);
            if args.json {
                print_json(&json::raft_log_file_json(path, &report));
            } else {
                print(&text::raft_log_file_text(path, &report));
            }
            Ok(exit_code(args, report.findings.iter()))
        }
    }
}

/// `--records`: the entries from `--from` (an index here), at most `--count` of them.
fn list(args: &Args) -> Result<u8, Failure> {
    let from = start_index(args.from)?;
    let end = args
        .count
        .map_or(u64::MAX, |count| from.saturating_add(count as u64));
    let entries = inspect::raft_entries(&args.path, from..end)?;
    if args.json {
        let records: Vec<_> = entries.iter().map(json::raft_entry_json).collect();
        print_json(&serde_json::json!({ "records": records, "listed": entries.len() }));
    } else {
        print(
            &entries
                .iter()
                .map(text::raft_entry_text)
                .collect::<String>(),
        );
        eprintln!("{} entries listed", entries.len());
    }
    Ok(crate::EXIT_CLEAN)
}

/// The index `--from` names: a Raft log's entries are numbered by index alone.
fn start_index(from: Option<StreamId>) -> Result<u64, Failure> {
    match from {
        None => Ok(0),
        Some(id) if id.seq == 0 => Ok(id.ms),
        Some(id) => Err(Failure::Usage(format!(
            "--from {id}: on a Raft log, --from is an entry index (a number)"
        ))),
    }
}
