//! A Redis connection shared by every request, made lazily and re-made after an outage; every
//! operation is bounded by a timeout so an unreachable Redis means a quick 503, not a hang.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Redis could not be reached in time.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisDown(pub String);

/// The shared handle.
pub struct RedisHandle {
    client: redis::Client,
    /// Made on first use (callers arriving meanwhile wait for it); a failed attempt leaves it
    /// unmade, so the next command tries again. Once made it reconnects by itself.
    manager: OnceCell<ConnectionManager>,
    timeout: Duration,
    prefix: String,
}

impl RedisHandle {
    /// A handle for `url`; nothing is connected yet.
    pub fn new(
        url: &str,
        prefix: String,
        timeout: Duration,
    ) -> Result<RedisHandle, redis::RedisError> {
        Ok(RedisHandle {
            client: redis::Client::open(url)?,
            manager: OnceCell::new(),
            timeout,
            prefix,
        })
    }

    /// `key` with the configured prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisDown> {
        self.manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(500);
                tokio::time::timeout(
                    self.timeout * 2,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| RedisDown("connect timed out".into()))?
                .map_err(|e| RedisDown(e.to_string()))
            })
            .await
            .cloned()
    }

    /// Runs one command, bounded by the timeout.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisDown> {
        let mut conn = self.connection().await?;
        self.bounded(cmd.query_async::<T>(&mut conn)).await
    }

    /// Runs `pipeline` (its commands in order, one round trip), bounded by the timeout.
    pub async fn run_pipeline<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, RedisDown> {
        let mut conn = self.connection().await?;
        self.bounded(pipeline.query_async::<T>(&mut conn)).await
    }

    async fn bounded<T>(
        &self,
        query: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisDown> {
        tokio::time::timeout(self.timeout, query)
            .await
            .map_err(|_| RedisDown("command timed out".into()))?
            .map_err(|e| RedisDown(e.to_string()))
    }

    /// A dedicated pub/sub connection (not shared with commands).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisDown> {
        tokio::time::timeout(self.timeout * 2, self.client.get_async_pubsub())
            .await
            .map_err(|_| RedisDown("connect timed out".into()))?
            .map_err(|e| RedisDown(e.to_string()))
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), RedisDown> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisDown(format!("unexpected PING answer {pong:?}")))
        }
    }
}
