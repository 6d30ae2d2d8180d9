//! Call tasks, tracked so that shutdown can end them all. Cancelling drops
//! each task's future, and with it its calls: their drop guards hang up
//! (480 before answer, CANCEL while ringing, BYE once answered). A task
//! may name clean-up to run after it was cancelled (an offer puts its
//! callback back in the queue).

use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct CallTasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl CallTasks {
    pub fn new() -> CallTasks {
        CallTasks::default()
    }

    /// Runs `work` until it ends or the tasks are cancelled.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.spawn_with_cleanup(work, async {});
    }

    /// Like `spawn`; if cancelled, `cleanup` runs once `work` is dropped.
    pub fn spawn_with_cleanup(
        &self,
        work: impl Future<Output = ()> + Send + 'static,
        cleanup: impl Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            let cancelled = tokio::select! {
                _ = work => false,
                _ = stop.cancelled() => true,
            };
            if cancelled {
                cleanup.await;
            }
        });
    }

    /// Live tasks.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Resolves once the tasks were told to stop.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Ends every task, then waits up to `bound` for them (and their
    /// clean-up) to finish. False if some were still running.
    pub async fn cancel_and_wait(&self, bound: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn cancelling_drops_the_work_then_cleans_up() {
        let tasks = CallTasks::new();
        let dropped = Arc::new(AtomicUsize::new(0));
        let cleaned = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let g = Guard(dropped.clone());
            let c = cleaned.clone();
            tasks.spawn_with_cleanup(
                async move {
                    let _g = g;
                    std::future::pending::<()>().await;
                },
                async move {
                    c.fetch_add(1, Ordering::SeqCst);
                },
            );
        }
        tasks.spawn(async {});
        tokio::task::yield_now().await;
        assert_eq!(tasks.len(), 3, "the finished one is gone");
        assert!(tasks.cancel_and_wait(Duration::from_secs(1)).await);
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
        assert_eq!(cleaned.load(Ordering::SeqCst), 3);
        assert!(tasks.is_empty());
    }
}
