//! The one deadline of a check (or a `--query`): where it starts, when it ends, and the rule that sets its
//! length. Created once, when the run starts, and passed down to every stage that can wait: discovery
//! (postconf), domain tables (postmap), and every network operation (as a tokio instant).

use std::time::{Duration, Instant};

/// Postfix's default `timeout`: the deadline when `-t` is not given and no map could be read (also while the
/// maps are being discovered, before their own `timeout` is known).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest default deadline: however slow the maps allow Postfix to be, a check ends within this without
/// `-t` (the systemd unit's TimeoutStartSec= is above it).
pub const MAX_DEFAULT: Duration = Duration::from_secs(120);

/// A point in time by which a run must be over, and when the run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    start: Instant,
    until: Instant,
}

impl Deadline {
    /// The deadline of a run that started at `start`: `-t` when `given`, else the longest a Postfix lookup could
    /// take among the maps (`longest`, see [`crate::plan::longest`]; at most [`MAX_DEFAULT`]), else
    /// [`DEFAULT_TIMEOUT`]. The per-operation timeouts of each map bound what happens within it.
    pub fn for_maps(start: Instant, given: Option<Duration>, longest: impl IntoIterator<Item = Duration>) -> Deadline {
        let length = given.unwrap_or_else(|| longest.into_iter().max().map_or(DEFAULT_TIMEOUT, |d| d.min(MAX_DEFAULT)));
        Deadline { start, until: start + length }
    }

    /// When the deadline passes.
    pub fn until(&self) -> Instant {
        self.until
    }

    /// The whole length of the deadline.
    pub fn length(&self) -> Duration {
        self.until - self.start
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.until
    }

    /// The deadline as a tokio instant, for `tokio::time::timeout_at`.
    pub fn until_tokio(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.until)
    }

    /// The start as a tokio instant.
    pub fn start_tokio(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_wins_then_the_longest_map_then_the_default() {
        let start = Instant::now();
        let s = Duration::from_secs;
        let given = Some(Duration::from_millis(1500));
        assert_eq!(Deadline::for_maps(start, given, [s(5), s(30)]).length(), Duration::from_millis(1500));
        assert_eq!(Deadline::for_maps(start, None, [s(5), s(30), s(2)]).length(), s(30));
        assert_eq!(Deadline::for_maps(start, None, []).length(), DEFAULT_TIMEOUT);
        assert_eq!(Deadline::for_maps(start, None, [s(600)]).length(), MAX_DEFAULT);
        // `timeout = 0`: Postfix times out at once (postmap: "Timed out"), and so does the check.
        assert_eq!(Deadline::for_maps(start, None, [s(0)]).length(), Duration::ZERO);
    }

    #[test]
    fn a_zero_deadline_has_passed_at_once() {
        let d = Deadline::for_maps(Instant::now(), Some(Duration::ZERO), []);
        assert!(d.passed());
        assert_eq!(d.until_tokio() - d.start_tokio(), Duration::ZERO);
    }
}
