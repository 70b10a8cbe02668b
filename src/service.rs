//! The `Service` trait every background loop implements (the services, the event pipeline):
//! a name (its tracing span), an idle interval from settings (zero disables it), and a `tick`
//! that does one unit of work; `spawn` runs one until a cancellation token stops it.
//! Must not touch: storage, brokers, HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why a tick failed: any error of the layers below (storage, brokers) or a message; it is
/// logged and the tick retried after the interval.
pub type TickError = Box<dyn std::error::Error + Send + Sync>;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one tick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// There may be more work right away: tick again without waiting.
    Busy,
    /// Nothing to do: wait for the interval (or a wake-up) before the next tick.
    Idle,
}

pub trait Service: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// How long to wait after an idle tick; zero disables the service.
    fn interval(&self) -> Duration;
    /// One unit of work. Errors are logged and retried after the interval.
    fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>>;
    /// Woken early from an idle wait (e.g. when new work is written); never by default.
    fn wake(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
    /// Runs once when the service is stopped (a clean shutdown), for at most [`STOP_TIMEOUT`]:
    /// releases what belongs to this process alone. Nothing by default.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// How long a stopping service's [`Service::stop`] may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Spawns `service` on the current runtime; it stops when `token` is cancelled.
pub fn spawn(
    service: Arc<dyn Service>,
    token: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = service.interval();
    if interval.is_zero() {
        tracing::info!(service = service.name(), "disabled");
        return None;
    }
    let span = tracing::info_span!("service", name = service.name());
    Some(tokio::spawn(
        async move {
            tracing::debug!("started");
            let wake = service.wake();
            let mut failures: u32 = 0;
            loop {
                // A panicking tick is a failed tick: the service backs off and goes on, instead
                // of its task dying silently while the server keeps answering.
                let tick = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
                    service.tick(),
                ));
                let outcome = tokio::select! {
                    _ = token.cancelled() => break,
                    r = tick => r.unwrap_or_else(|panic| Err(panic_message(&*panic).into())),
                };
                let pause = match outcome {
                    Ok(Tick::Busy) => {
                        failures = 0;
                        continue;
                    }
                    Ok(Tick::Idle) => {
                        failures = 0;
                        interval
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, failures, "tick failed");
                        interval.saturating_mul(failures.min(10))
                    }
                };
                let notified = async {
                    match &wake {
                        Some(n) => n.notified().await,
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                    _ = notified => {}
                }
            }
            if tokio::time::timeout(STOP_TIMEOUT, service.stop())
                .await
                .is_err()
            {
                tracing::warn!("did not finish stopping in time");
            }
            tracing::debug!("stopped");
        }
        .instrument(span),
    ))
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    format!("panicked: {what}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Panics on its first tick, then counts the ticks that follow.
    struct PanicsOnce {
        ticks: Arc<AtomicU32>,
    }

    impl Service for PanicsOnce {
        fn name(&self) -> &'static str {
            "panics-once"
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(1)
        }
        fn tick(&self) -> BoxFuture<'_, Result<Tick, TickError>> {
            Box::pin(async move {
                if self.ticks.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("a bad row");
                }
                Ok(Tick::Idle)
            })
        }
    }

    #[tokio::test]
    async fn a_panicking_tick_does_not_end_the_service() {
        let ticks = Arc::new(AtomicU32::new(0));
        let token = CancellationToken::new();
        let handle = spawn(
            Arc::new(PanicsOnce {
                ticks: ticks.clone(),
            }),
            token.clone(),
        )
        .expect("enabled");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ticks.load(Ordering::SeqCst) < 3 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            ticks.load(Ordering::SeqCst) >= 3,
            "the service stopped ticking"
        );
        token.cancel();
        handle.await.expect("the service task ends cleanly");
    }
}
