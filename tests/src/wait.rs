//! Polling with a deadline: the only way tests wait for something.

use std::future::Future;
use std::time::Duration;

/// How often a condition is re-checked.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Re-evaluates `check` until it returns `Some`, or fails after `timeout`
/// with `what` in the message.
pub async fn poll_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
