//! Bounded retries: exponential backoff with full jitter, `Retry-After` honoured.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::Error;

/// How hard to try. Every loop is bounded by `attempts`; a `Retry-After` longer than
/// `max_wait` ends the loop at once instead of sleeping less than the registry asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, including the first.
    pub attempts: u32,
    /// Backoff before the second try; doubles each time, capped at `max_backoff`.
    pub base: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` we agree to wait.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniform in `[0, min(max_backoff, base·2^(n-1))]` after failed try `n`.
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failed_attempt.saturating_sub(1).min(20));
        let ceiling = exp.min(self.max_backoff);
        ceiling.mul_f64(random_unit())
    }
}

/// Why one try failed.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Worth another try: connect error, reset, truncated body, 408/429/5xx.
    Retry {
        cause: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help.
    Fatal(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Fatal(e)
    }
}

/// Runs `op` until it succeeds, fails fatally, or the policy is spent.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    registry: &str,
    what: &str,
    mut op: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let attempts = policy.attempts.max(1);
    let mut n = 1;
    loop {
        tracing::debug!(registry, "{what}: attempt {n}/{attempts}");
        match op().await {
            Ok(v) => return Ok(v),
            Err(Fail::Fatal(e)) => return Err(e),
            Err(Fail::Retry { cause, after }) => {
                if n >= attempts {
                    return Err(Error::Unreachable {
                        registry: registry.to_owned(),
                        what: what.to_owned(),
                        attempts,
                        cause,
                    });
                }
                if let Some(after) = after
                    && after > policy.max_wait
                {
                    return Err(Error::RetryAfterTooLong {
                        registry: registry.to_owned(),
                        what: what.to_owned(),
                        after,
                        budget: policy.max_wait,
                    });
                }
                let backoff = policy.backoff(n);
                let sleep = after.map_or(backoff, |a| a.max(backoff));
                tracing::debug!(
                    registry,
                    "{what}: attempt {n}/{attempts} failed: {cause}; retrying in {} ms",
                    sleep.as_millis()
                );
                tokio::time::sleep(sleep).await;
                n += 1;
            }
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A number in `[0, 1)`; jitter needs spread, not cryptographic quality.
fn random_unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_is_bounded_by_the_exponential_ceiling() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_wait: Duration::from_secs(5),
        };
        for _ in 0..200 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(3) <= Duration::from_millis(400));
            assert!(p.backoff(30) <= Duration::from_millis(1000));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_cap_and_counts_tries() {
        let p = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        };
        let mut tries = 0;
        let r: Result<(), Error> = retry(&p, "r.example", "HEAD x", || {
            tries += 1;
            async {
                Err(Fail::Retry {
                    cause: "503".into(),
                    after: None,
                })
            }
        })
        .await;
        assert_eq!(tries, 3);
        assert!(matches!(r, Err(Error::Unreachable { attempts: 3, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_at_least_retry_after() {
        let p = RetryPolicy {
            attempts: 2,
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        let start = tokio::time::Instant::now();
        let mut tries = 0;
        let r = retry(&p, "r.example", "HEAD x", || {
            tries += 1;
            let first = tries == 1;
            async move {
                if first {
                    Err(Fail::Retry {
                        cause: "503".into(),
                        after: Some(Duration::from_secs(2)),
                    })
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(r.is_ok());
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_a_retry_after_beyond_the_budget() {
        let p = RetryPolicy {
            attempts: 5,
            max_wait: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let r: Result<(), Error> = retry(&p, "r.example", "HEAD x", || async {
            Err(Fail::Retry {
                cause: "503".into(),
                after: Some(Duration::from_secs(30)),
            })
        })
        .await;
        assert!(matches!(r, Err(Error::RetryAfterTooLong { .. })));
    }
}
