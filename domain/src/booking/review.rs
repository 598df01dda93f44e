//! Reviews: after a completed trip, the guest reviews the host and the host reviews the guest,
//! once each, within [`REVIEW_WINDOW_DAYS`] days of the return. A review is an event of the
//! booking (`ReviewSubmitted`), so who reviewed whom is part of the booking's history.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Days after the return during which both sides may review.
pub const REVIEW_WINDOW_DAYS: i64 = 14;
/// Lowest rating.
pub const MIN_RATING: i32 = 1;
/// Highest rating.
pub const MAX_RATING: i32 = 5;
/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

/// Which side of the booking wrote a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewerRole {
    /// The guest, reviewing the host (and the car).
    Guest,
    /// The host, reviewing the guest.
    Host,
}

impl ReviewerRole {
    /// The name used in the API and the read tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewerRole::Guest => "guest",
            ReviewerRole::Host => "host",
        }
    }
}

/// Ratings per category (청결도, 시간준수, 매너), each 1–5 when given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRatings {
    /// 청결도: how clean the car was handed over (or returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanliness: Option<i32>,
    /// 시간준수: punctuality at pickup and return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punctuality: Option<i32>,
    /// 매너: courtesy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manners: Option<i32>,
}

impl CategoryRatings {
    /// Each given category with its field name, for validation.
    pub fn fields(&self) -> [(&'static str, Option<i32>); 3] {
        [
            ("category_ratings.cleanliness", self.cleanliness),
            ("category_ratings.punctuality", self.punctuality),
            ("category_ratings.manners", self.manners),
        ]
    }
}

/// A review as its author writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    /// The id the review will have.
    pub review_id: Uuid,
    /// Overall rating, 1–5.
    pub rating: i32,
    /// Per-category ratings.
    pub category_ratings: CategoryRatings,
    /// Free text.
    pub comment: Option<String>,
    /// Whether the author recommends the other side.
    pub is_recommended: bool,
}
