//! Accounts: the value types users and corporate hosts are made of. Users are not
//! event-sourced (their personal data must be erasable), so there is no aggregate here, only
//! validation that the application layer applies before it writes.

mod brn;
mod email;
mod password;
mod phone;

pub use brn::{BusinessRegistrationNumber, InvalidBrn};
pub use email::{Email, InvalidEmail};
pub use password::{PasswordPolicy, WeakPassword};
pub use phone::{InvalidPhone, MobilePhone};
