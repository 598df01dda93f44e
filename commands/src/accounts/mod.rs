//! Accounts, sessions and corporate host profiles. Plain tables, not event-sourced: personal
//! data must be erasable, and the event log names people by id only.

mod corporate;
mod error;
mod passwords;
mod service;
mod sessions;

pub use corporate::{CorporateProfile, NewCorporateProfile, ProfileStatus};
pub use error::{AccountError, AccountProblem};
pub use passwords::PasswordHasher;
pub use service::{AccountService, NewAccount, User, UserPatch};
pub use sessions::Session;
