//! The changes the lab makes to a running cluster that take instances away: a
//! scale-in (some stop, some are killed) and a rolling restart onto new ports.

use std::time::{Duration, Instant};

use super::{JOINED_WITHIN, LEFT_WITHIN, Lab, Step};
use crate::Error;

/// The default probe period.
const PROBE_PERIOD: Duration = Duration::from_secs(1);

/// The documented bound for a cluster of `members` (before the death) to drop a dead
/// one. A live member probes the others in turn, shuffling them after each round, so
/// if it probed the dead one first in a round it may reach it again only last in the
/// next: `2 * members - 3` periods; the probe and the indirect probes take one more;
/// five periods of suspicion; one to tell the others.
fn down_within(members: usize) -> Duration {
    PROBE_PERIOD * u32::try_from(2 * members + 4).unwrap_or(u32::MAX)
}

impl Lab {
    /// Stops `stopped` (they leave), then kills `killed` (they are declared down).
    pub(super) async fn scale_in(
        &mut self,
        stopped: &[usize],
        killed: &[usize],
    ) -> Result<[Step; 2], Error> {
        let stop = self.take_away(stopped, false).await?;
        let kill = self.take_away(killed, true).await?;
        Ok([stop, kill])
    }

    /// Kills `which`, or stops them (they leave), and checks the others converge
    /// within the bound for that, from the cluster's size before.
    async fn take_away(&mut self, which: &[usize], kill: bool) -> Result<Step, Error> {
        let before = self.running().len();
        let since = Instant::now();
        for &i in which {
            if kill {
                self.cluster.kill(i).await;
            } else {
                self.cluster.stop(i).await;
            }
        }
        let alive = self.running();
        let (how, within) = if kill {
            ("killed", down_within(before))
        } else {
            ("stopped", LEFT_WITHIN)
        };
        let what = format!(
            "scale-in {before} → {} ({} {how})",
            alive.len(),
            which.len()
        );
        self.step(&what, since, (None, within), &[], &alive).await
    }

    /// Replaces each of `old` by a new instance on a new port, one at a time.
    pub(super) async fn rolling(&mut self, old: &[usize]) -> Result<Step, Error> {
        let since = Instant::now();
        let mut replacements = Vec::new();
        for &i in old {
            let (new, _) = self.add(1).await?;
            replacements.extend(new);
            self.cluster.stop(i).await;
        }
        let join = since.elapsed().as_secs_f64() * 1000.0;
        self.step(
            "rolling restart onto new ports, sessions held",
            since,
            (
                Some(join),
                JOINED_WITHIN * u32::try_from(old.len()).unwrap_or(u32::MAX),
            ),
            &replacements[..1],
            &replacements[1..],
        )
        .await
    }
}
