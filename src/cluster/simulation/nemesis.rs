//! The fault schedule: at random steps drawn from the seed, it splits the nodes into sides,
//! heals the split, crashes a running node, restarts a crashed one, changes the membership, or
//! changes how the links lose and delay messages.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::cluster::SimCluster;
use super::membership;
use super::network::LinkFaults;
use super::rng::SimRng;

/// The link behaviours a step may switch to: clean, lossy, slow (past the heartbeat, the
/// append timeout), and both.
const LINK_FAULTS: [LinkFaults; 5] = [
    LinkFaults::NONE,
    LinkFaults {
        drop_per_mille: 50,
        drop_reply_per_mille: 50,
        max_delay_ms: 20,
    },
    LinkFaults {
        drop_per_mille: 200,
        drop_reply_per_mille: 100,
        max_delay_ms: 50,
    },
    LinkFaults {
        drop_per_mille: 0,
        drop_reply_per_mille: 0,
        max_delay_ms: 250,
    },
    LinkFaults {
        drop_per_mille: 100,
        drop_reply_per_mille: 100,
        max_delay_ms: 150,
    },
];

/// Runs faults until `until`.
pub(super) async fn run(
    cluster: &mut SimCluster,
    mut rng: SimRng,
    until: Instant,
    voters_at_start: usize,
) -> Result<(), String> {
    let mut changes = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.between(50, 1500))).await;
        if rng.below(100) < 10 {
            changes.extend(membership::start_change(cluster, &mut rng, voters_at_start));
        } else {
            step(cluster, &mut rng).await?;
        }
    }
    // A change still waiting is abandoned: its entries are committed or not, as the log has it.
    for change in changes {
        change.abort();
    }
    Ok(())
}

async fn step(cluster: &mut SimCluster, rng: &mut SimRng) -> Result<(), String> {
    match rng.below(100) {
        0..20 => partition(cluster, rng),
        20..35 => {
            cluster.network.heal();
            cluster.events().record("heal the partition");
        }
        35..55 => {
            let up = cluster.ids_where(true);
            if !up.is_empty() {
                cluster.crash(rng.pick(&up)).await?;
            }
        }
        55..80 => {
            let down = cluster.ids_where(false);
            if !down.is_empty() {
                cluster.restart(rng.pick(&down)).await?;
            }
        }
        _ => {
            let faults = rng.pick(&LINK_FAULTS);
            cluster.network.set_faults(faults);
            cluster
                .events()
                .record(format_args!("links now {faults:?}"));
        }
    }
    Ok(())
}

/// Puts each node on one of two sides at random.
fn partition(cluster: &SimCluster, rng: &mut SimRng) {
    let sides: BTreeMap<_, _> = cluster
        .nodes
        .keys()
        .map(|id| (*id, rng.below(2) as u8))
        .collect();
    cluster
        .events()
        .record(format_args!("partition: sides {sides:?}"));
    cluster.network.partition(sides);
}
