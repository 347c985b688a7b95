//! The UTC second as RFC 3339 text (`2026-11-29T22:47:51Z`), formatted once per second per thread:
//! the envelope's `timestamp` and the log line's time both start from it.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second this thread formatted last, and its text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Whole seconds from the Unix epoch to `time`; 0 for a time before it.
pub fn unix_second(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Calls `use_it` with `second` (seconds from the Unix epoch) in UTC as `2025-11-04T09:20:31Z`.
/// Past the year 9999, which RFC 3339 cannot write, the text is empty.
pub fn with_utc_second<T>(second: u64, use_it: impl FnOnce(&str) -> T) -> T {
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            let mut text = String::new();
            let time = UNIX_EPOCH + Duration::from_secs(second);
            if write!(text, "{}", humantime::format_rfc3339_seconds(time)).is_err() {
                text.clear();
            }
            *cached = (second, text);
        }
        use_it(&cached.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_in_utc_and_reused_only_for_the_same_second() {
        let check = |second: u64, expected: &str| {
            assert_eq!(with_utc_second(second, str::to_owned), expected);
        };
        check(0, "1970-01-01T00:00:00Z");
        check(1_764_410_400, "2025-11-29T10:00:00Z");
        check(1_764_410_400, "2025-11-29T10:00:00Z");
        check(1_764_410_401, "2025-11-29T10:00:01Z");
        check(253_402_300_800, "");
        assert_eq!(unix_second(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}
