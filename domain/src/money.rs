//! Korean won. KRW has no minor unit, so amounts are whole numbers held in `i64`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};

/// An amount of Korean won.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Won(pub i64);

impl Won {
    /// Zero won.
    pub const ZERO: Won = Won(0);

    /// The raw number of won.
    pub fn amount(self) -> i64 {
        self.0
    }

    /// `self × numerator / denominator`, rounded down, or `None` on overflow or a zero denominator.
    pub fn mul_div_floor(self, numerator: i64, denominator: i64) -> Option<Won> {
        if denominator == 0 {
            return None;
        }
        let product = i128::from(self.0).checked_mul(i128::from(numerator))?;
        let quotient = product.div_euclid(i128::from(denominator));
        i64::try_from(quotient).ok().map(Won)
    }

    /// Checked addition.
    pub fn checked_add(self, other: Won) -> Option<Won> {
        self.0.checked_add(other.0).map(Won)
    }

    /// Checked subtraction.
    pub fn checked_sub(self, other: Won) -> Option<Won> {
        self.0.checked_sub(other.0).map(Won)
    }
}

impl Add for Won {
    type Output = Won;
    fn add(self, rhs: Won) -> Won {
        Won(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Won {
    type Output = Won;
    fn sub(self, rhs: Won) -> Won {
        Won(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for Won {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "₩{}", self.0)
    }
}

/// The platform's share of every amount kept, in percent.
pub const PLATFORM_FEE_PERCENT: i64 = 15;

/// How an amount divides between the platform and the host.
///
/// Rounding rule: the fee is 15% rounded *down* to the whole won; the host receives the rest, so
/// `platform_fee + host_share == total` always holds and any fraction of a won favours the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSplit {
    /// The amount being divided.
    pub total: Won,
    /// The platform's fee.
    pub platform_fee: Won,
    /// What the host receives.
    pub host_share: Won,
}

impl FeeSplit {
    /// Splits a non-negative total by the platform fee rule.
    pub fn of(total: Won) -> FeeSplit {
        let total = Won(total.0.max(0));
        // 15/100 of a non-negative i64 always fits back into an i64.
        let platform_fee = total
            .mul_div_floor(PLATFORM_FEE_PERCENT, 100)
            .unwrap_or(Won::ZERO);
        FeeSplit {
            total,
            platform_fee,
            host_share: total - platform_fee,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_and_host_share_always_add_up() {
        for total in [0, 1, 6, 7, 99, 100, 12_345, 99_999, 1_000_000, i64::MAX] {
            let split = FeeSplit::of(Won(total));
            assert_eq!(split.platform_fee.0 + split.host_share.0, total);
        }
    }

    #[test]
    fn fee_rounds_down_to_the_won() {
        assert_eq!(FeeSplit::of(Won(10_000)).platform_fee, Won(1_500));
        assert_eq!(FeeSplit::of(Won(10_001)).platform_fee, Won(1_500));
        assert_eq!(FeeSplit::of(Won(10_007)).platform_fee, Won(1_501));
        assert_eq!(FeeSplit::of(Won(10_007)).host_share, Won(8_506));
    }

    #[test]
    fn negative_totals_split_as_zero() {
        assert_eq!(FeeSplit::of(Won(-5)).total, Won::ZERO);
    }

    #[test]
    fn arithmetic_never_wraps() {
        assert_eq!(Won(7).amount(), 7);
        assert_eq!(Won(10_000).mul_div_floor(3, 2), Some(Won(15_000)));
        assert_eq!(Won(10_000).mul_div_floor(1, 0), None);
        assert_eq!(Won(i64::MAX).mul_div_floor(2, 1), None);
        assert_eq!(Won(1).checked_add(Won(2)), Some(Won(3)));
        assert_eq!(Won(i64::MAX).checked_add(Won(1)), None);
        assert_eq!(Won(5).checked_sub(Won(7)), Some(Won(-2)));
        assert_eq!(Won(i64::MIN).checked_sub(Won(1)), None);
        assert_eq!(Won(i64::MAX) + Won(1), Won(i64::MAX));
        assert_eq!(Won(i64::MIN) - Won(1), Won(i64::MIN));
        assert_eq!(Won(54_000) - Won(4_000), Won(50_000));
        assert_eq!(Won(54_000).to_string(), "₩54000");
    }
}
