//! Who issues a command.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A user's role on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Books cars.
    Guest,
    /// Lists cars (corporate hosts).
    Host,
    /// Platform staff.
    Admin,
}

impl Role {
    /// The lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Host => "host",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown role name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown role `{0}`")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "guest" => Ok(Role::Guest),
            "host" => Ok(Role::Host),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// The authenticated user behind a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user's id (never personal data).
    pub user_id: Uuid,
    /// The role the user acted in.
    pub role: Role,
}

impl Actor {
    /// A new actor.
    pub fn new(user_id: Uuid, role: Role) -> Self {
        Self { user_id, role }
    }

    /// Whether this actor is a platform admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_wire_names() {
        for role in [Role::Guest, Role::Host, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert_eq!(
            "Admin".parse::<Role>(),
            Err(UnknownRole("Admin".to_string()))
        );
        assert_eq!(
            UnknownRole("root".into()).to_string(),
            "unknown role `root`"
        );
    }

    #[test]
    fn only_the_admin_role_is_admin() {
        let id = Uuid::from_u128(1);
        assert!(Actor::new(id, Role::Admin).is_admin());
        assert!(!Actor::new(id, Role::Host).is_admin());
        assert!(!Actor::new(id, Role::Guest).is_admin());
    }
}
