//! Expires requests the host did not answer in time, and frees their cars.
//!
//! The sweeper finds candidates in the read model (`read.bookings`, pending with a passed
//! deadline) and sends each an `Expire` command; the aggregate decides from the event log, so a
//! stale read row (a request answered a moment ago) is simply refused. Several instances may
//! sweep at once: the second `Expire` on a booking finds it expired and is refused.

use super::service::{BookingService, BookingServiceError};
use carshare_domain::booking::{BookingAction, BookingError};
use carshare_event_store::EventMetadata;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Candidates handled per sweep.
const SWEEP_LIMIT: i64 = 500;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Requests expired.
    pub expired: usize,
    /// Approved bookings cancelled because their payment deadline passed unpaid.
    pub cancelled_unpaid: usize,
    /// Candidates the log showed were already answered or expired.
    pub skipped: usize,
    /// Candidates that failed for an infrastructure reason (retried next sweep).
    pub failed: usize,
}

/// Periodically expires unanswered requests.
pub struct ExpirySweeper {
    pool: PgPool,
    service: Arc<BookingService>,
    interval: Duration,
}

impl ExpirySweeper {
    /// A sweeper over `service`, looking every `interval`.
    pub fn new(pool: PgPool, service: Arc<BookingService>, interval: Duration) -> ExpirySweeper {
        ExpirySweeper {
            pool,
            service,
            interval,
        }
    }

    /// Sweeps until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            interval_ms = self.interval.as_millis() as u64,
            "booking expiry sweeper started"
        );
        loop {
            match self.sweep().await {
                Ok(report)
                    if report.expired > 0 || report.cancelled_unpaid > 0 || report.failed > 0 =>
                {
                    tracing::info!(?report, "booking expiry sweep")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "booking expiry sweep failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass: expires every request whose deadline has passed by the service's clock.
    pub async fn sweep(&self) -> Result<SweepReport, sqlx::Error> {
        let now = self.service.now();
        let due: Vec<Uuid> = due_requests(&self.pool, now, SWEEP_LIMIT).await?;
        let mut report = SweepReport::default();
        for booking_id in due {
            let meta = EventMetadata::system("ExpireBooking", now);
            match self
                .service
                .execute(None, booking_id, BookingAction::Expire, &meta)
                .await
            {
                Ok(_) => report.expired += 1,
                Err(BookingServiceError::Booking(
                    BookingError::InvalidTransition { .. } | BookingError::NotDueToExpire,
                )) => report.skipped += 1,
                Err(e) => {
                    tracing::warn!(%booking_id, error = %e, "could not expire a booking request");
                    report.failed += 1;
                }
            }
        }
        for booking_id in unpaid_candidates(&self.pool, now, SWEEP_LIMIT).await? {
            let meta = EventMetadata::system("CancelUnpaidBooking", now);
            match self
                .service
                .execute(None, booking_id, BookingAction::CancelUnpaid, &meta)
                .await
            {
                Ok(_) => report.cancelled_unpaid += 1,
                Err(BookingServiceError::Booking(
                    BookingError::InvalidTransition { .. } | BookingError::NotDueToExpire,
                )) => report.skipped += 1,
                Err(e) => {
                    tracing::warn!(%booking_id, error = %e, "could not cancel an unpaid booking");
                    report.failed += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Approved bookings whose payment may be overdue (approved more than the payment window ago,
/// or starting now); the command checks the payment itself.
async fn unpaid_candidates(
    pool: &PgPool,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let window = carshare_domain::payment::DEFAULT_PAYMENT_WINDOW;
    sqlx::query_scalar(
        "SELECT id FROM read.bookings WHERE status = 'approved' \
           AND (updated_at <= $1 OR start_datetime <= $2) \
         ORDER BY updated_at LIMIT $3",
    )
    .bind(now - window)
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Pending requests past their deadline, from the read model.
async fn due_requests(
    pool: &PgPool,
    now: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM read.bookings WHERE status = 'pending' AND respond_by <= $1 \
         ORDER BY respond_by LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}
