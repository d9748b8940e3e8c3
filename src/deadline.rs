//! The one deadline of a check (or a `--query`): where it starts, when it ends, and the rule that sets its
//! length. Created once, when the run starts, and passed down to every stage that can wait: discovery
//! (postconf), domain tables (postmap), and every network operation (as a tokio instant).

use std::time::{Duration, Instant};

/// Postfix's default `timeout`: the deadline when `-t` is not given and no map could be read (also while the
/// maps are being discovered, before their own `timeout` is known).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A point in time by which a run must be over, and when the run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    start: Instant,
    until: Instant,
}

impl Deadline {
    /// The deadline of a run that started at `start`: `-t` when `given`, else the largest `timeout` among the
    /// maps (`timeouts`, in seconds, as Postfix reads them), else [`DEFAULT_TIMEOUT`].
    pub fn for_maps(start: Instant, given: Option<Duration>, timeouts: impl IntoIterator<Item = u32>) -> Deadline {
        let length = given.unwrap_or_else(|| {
            timeouts.into_iter().max().map(|t| Duration::from_secs(u64::from(t))).unwrap_or(DEFAULT_TIMEOUT)
        });
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
    fn given_wins_then_the_largest_map_timeout_then_the_default() {
        let start = Instant::now();
        let given = Some(Duration::from_millis(1500));
        assert_eq!(Deadline::for_maps(start, given, [5, 30]).length(), Duration::from_millis(1500));
        assert_eq!(Deadline::for_maps(start, None, [5, 30, 2]).length(), Duration::from_secs(30));
        assert_eq!(Deadline::for_maps(start, None, []).length(), DEFAULT_TIMEOUT);
        // `timeout = 0`: Postfix times out at once (postmap: "Timed out"), and so does the check.
        assert_eq!(Deadline::for_maps(start, None, [0]).length(), Duration::ZERO);
    }

    #[test]
    fn a_zero_deadline_has_passed_at_once() {
        let d = Deadline::for_maps(Instant::now(), Some(Duration::ZERO), []);
        assert!(d.passed());
        assert_eq!(d.until_tokio() - d.start_tokio(), Duration::ZERO);
    }
}
