//! The application layer: command services over the event store, and the ports and clients of
//! the systems the platform talks to (Kakao Local; later Toss Payments, FCM, object storage).

pub mod accounts;
pub mod append;
pub mod audit;
pub mod bookings;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod error;
pub mod external;
pub mod geocoding;
pub mod metrics;
pub mod notifications;
pub mod payments;
pub mod storage;
pub mod vehicles;

pub use bus::{CommandBus, CommandError, Committed};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::InfraError;
