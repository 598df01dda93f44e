//! What every request handler shares.

use crate::auth::{RedisRevocations, TokenKeys};
use crate::config::Settings;
use crate::redis_client::RedisHandle;
use carshare_commands::accounts::AccountService;
use carshare_commands::bookings::BookingService;
use carshare_commands::vehicles::VehicleService;
use carshare_event_store::StreamCursor;
use carshare_projections::ProgressBoard;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Shared state, cloned into each worker.
#[derive(Clone)]
pub struct AppState {
    /// Postgres.
    pub pool: PgPool,
    /// Redis.
    pub redis: Arc<RedisHandle>,
    /// Vehicle commands.
    pub vehicles: Arc<VehicleService>,
    /// Booking commands.
    pub bookings: Arc<BookingService>,
    /// Payments.
    pub payments: Arc<carshare_commands::payments::PaymentService>,
    /// Announcements.
    pub announcements: Arc<carshare_commands::notifications::AnnouncementService>,
    /// Uploaded images.
    pub images: carshare_commands::storage::ImageStore,
    /// Accounts and sessions.
    pub accounts: Arc<AccountService>,
    /// Access-token signing.
    pub tokens: TokenKeys,
    /// The token denylist.
    pub revocations: Arc<RedisRevocations>,
    /// In-process projection progress.
    pub progress: ProgressBoard,
    /// Bound on read-your-writes waits.
    pub read_your_writes_timeout: Duration,
    /// Settings.
    pub settings: Arc<Settings>,
}

impl AppState {
    /// Waits (bounded) until the named projections have applied the event at `cursor`.
    /// Returns whether they did in time.
    pub async fn settle(&self, projections: &[&str], cursor: Option<StreamCursor>) -> bool {
        match cursor {
            None => true,
            Some(cursor) => {
                self.progress
                    .wait_for(
                        &self.pool,
                        projections,
                        cursor,
                        self.read_your_writes_timeout,
                    )
                    .await
            }
        }
    }
}
