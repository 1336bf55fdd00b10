//! The per-channel rate limit as data: a GCRA (generic cell rate algorithm) state, i.e. one
//! number per channel, the theoretical arrival time (`tat`) of the next message. Kept in the
//! `rate_budget` table so that every daemon on one database draws on the same budget; this
//! module is the arithmetic, pure and in microseconds.
//!
//! `per_minute = n` means what governor's `Quota::per_minute(n)` meant before the budget
//! moved to the database: a burst of up to `n` messages, refilled at one every `60 s / n`.

/// A rate of `n` messages a minute with a burst of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds between two messages at the steady rate.
    interval_us: i64,
    /// Messages that may go at once after a quiet period.
    burst: i64,
}

impl Rate {
    /// `n` messages a minute (at least one).
    pub fn per_minute(n: u32) -> Rate {
        let n = i64::from(n.max(1));
        Rate {
            interval_us: 60_000_000 / n,
            burst: n,
        }
    }

    /// How many messages may go at `now_us` given the stored `tat_us`.
    pub fn available(&self, tat_us: i64, now_us: i64) -> i64 {
        let ahead = tat_us.saturating_sub(now_us).max(0);
        let interval = self.interval_us.max(1);
        let in_use = (ahead + interval - 1) / interval;
        (self.burst - in_use).clamp(0, self.burst)
    }

    /// The stored state after `k` messages go at `now_us`.
    pub fn take(&self, tat_us: i64, now_us: i64, k: i64) -> i64 {
        tat_us
            .max(now_us)
            .saturating_add(k.saturating_mul(self.interval_us))
    }

    /// The stored state after `k` messages taken earlier were not sent after all.
    pub fn refund(&self, tat_us: i64, k: i64) -> i64 {
        tat_us.saturating_sub(k.saturating_mul(self.interval_us))
    }

    /// The first instant (microseconds) at which one message may go again.
    pub fn next_free_us(&self, tat_us: i64) -> i64 {
        tat_us.saturating_sub((self.burst - 1).saturating_mul(self.interval_us))
    }
}

#[cfg(test)]
mod tests {
    use super::Rate;

    #[test]
    fn a_fresh_budget_allows_one_minutes_quota_at_once_then_one_per_interval() {
        let r = Rate::per_minute(60); // one a second
        let now = 1_000_000_000;
        assert_eq!(r.available(0, now), 60);
        let tat = r.take(0, now, 60);
        assert_eq!(r.available(tat, now), 0);
        assert_eq!(r.next_free_us(tat), now + 1_000_000);
        assert_eq!(r.available(tat, now + 999_999), 0);
        assert_eq!(r.available(tat, now + 1_000_000), 1);
        assert_eq!(r.available(tat, now + 60_000_000), 60);
        assert_eq!(
            r.available(tat, now + 600_000_000),
            60,
            "never more than the burst"
        );
    }

    #[test]
    fn two_takers_share_one_budget_and_a_refund_gives_back_what_was_not_sent() {
        let r = Rate::per_minute(120);
        let now = 5_000_000;
        let tat = r.take(0, now, 100); // daemon A
        assert_eq!(r.available(tat, now), 20, "daemon B sees what A left");
        let tat = r.take(tat, now, 20);
        assert_eq!(r.available(tat, now), 0);
        let tat = r.refund(tat, 3);
        assert_eq!(r.available(tat, now), 3);
    }

    #[test]
    fn over_any_span_the_budget_never_exceeds_burst_plus_the_steady_rate() {
        let r = Rate::per_minute(7); // an interval that does not divide a minute evenly
        let start = 0;
        let (mut tat, mut sent) = (0, 0);
        let mut t = start;
        while t <= start + 600_000_000 {
            let k = r.available(tat, t);
            tat = r.take(tat, t, k);
            sent += k;
            t += 250_000;
        }
        // 7 at once, then 7 a minute for ten minutes.
        assert!((70..=77).contains(&sent), "{sent}");
    }
}
