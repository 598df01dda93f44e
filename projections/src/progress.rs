//! Where each projection stands, for read-your-writes: after a command, the API waits (bounded)
//! until the projections it reads from have passed the command's events.

use carshare_event_store::StreamCursor;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// In-process progress of the projection runners of this process. Projections run by other
/// processes are followed through their checkpoint rows instead.
#[derive(Clone, Default)]
pub struct ProgressBoard {
    inner: Arc<RwLock<HashMap<&'static str, watch::Sender<StreamCursor>>>>,
}

/// How often a projection run elsewhere is polled while waiting.
const POLL: Duration = Duration::from_millis(10);

impl ProgressBoard {
    /// Records that `projection` has applied everything up to `cursor`.
    pub fn publish(&self, projection: &'static str, cursor: StreamCursor) {
        let existing = self
            .inner
            .read()
            .ok()
            .and_then(|map| map.get(projection).cloned());
        match existing {
            Some(tx) => {
                tx.send_if_modified(|c| {
                    let advanced = cursor > *c;
                    if advanced {
                        *c = cursor;
                    }
                    advanced
                });
            }
            None => {
                let (tx, _) = watch::channel(cursor);
                if let Ok(mut map) = self.inner.write() {
                    map.entry(projection).or_insert(tx);
                }
            }
        }
    }

    fn local(&self, projection: &str) -> Option<watch::Receiver<StreamCursor>> {
        self.inner
            .read()
            .ok()
            .and_then(|map| map.get(projection).map(|tx| tx.subscribe()))
    }

    /// Waits until every named projection has passed `target`, at most `timeout`. Returns
    /// whether they all did.
    pub async fn wait_for(
        &self,
        pool: &PgPool,
        projections: &[&str],
        target: StreamCursor,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        for name in projections {
            let reached = match self.local(name) {
                Some(mut rx) => tokio::time::timeout_at(deadline, rx.wait_for(|c| *c >= target))
                    .await
                    .is_ok_and(|r| r.is_ok()),
                None => poll_checkpoint(pool, name, target, deadline).await,
            };
            if !reached {
                return false;
            }
        }
        true
    }
}

async fn poll_checkpoint(
    pool: &PgPool,
    name: &str,
    target: StreamCursor,
    deadline: Instant,
) -> bool {
    loop {
        match crate::runner::checkpoint(pool, name).await {
            Ok(Some(cursor)) if cursor >= target => return true,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "checkpoint poll failed"),
        }
        if Instant::now() + POLL > deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
