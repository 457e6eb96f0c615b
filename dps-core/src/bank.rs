//! The banker (section 5.4.2): a pluggable routine that turns a program's bank balance and its
//! VMs' shortages into grants every B seconds. [`SpecBanker`] is the plain SPEC rule
//! ([`crate::bank_redistribute`]); [`CappedBanker`] is the safeguarded one of "beyond the
//! dissertation": no grant exceeds the room on the VM's host, and whatever cannot be placed
//! stays in the bank instead of bouncing off a full host.

use crate::error::{DpsError, non_negative};
use crate::formula::bank_redistribute;

/// What a banker sees at a redistribution.
///
/// ```
/// let r = dps_core::BankRound { shares: &[0.1], shortages: &[0.05], headroom: &[0.5], balance: 0.2 };
/// assert_eq!(r.shares.len(), 1);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct BankRound<'a> {
    /// Each VM's share now.
    pub shares: &'a [f64],
    /// Each VM's reported shortage f_i.
    pub shortages: &'a [f64],
    /// How much more each VM's host can take (unbooked capacity), in shares.
    pub headroom: &'a [f64],
    /// The bank balance E.
    pub balance: f64,
}

impl BankRound<'_> {
    fn validate(&self, grants: &[f64]) -> Result<(), DpsError> {
        let n = self.shares.len();
        for (what, len) in [
            ("shortages", self.shortages.len()),
            ("headroom", self.headroom.len()),
            ("grants", grants.len()),
        ] {
            if len != n {
                return Err(DpsError::LengthMismatch {
                    what,
                    got: len,
                    expected: n,
                });
            }
        }
        for &h in self.headroom {
            non_negative(h, DpsError::InvalidCapacity)?;
        }
        Ok(())
    }
}

/// A banker routine: writes one grant per VM (only on success; grants sum to at most the
/// balance).
///
/// ```
/// use dps_core::{BankRound, BankerPolicy, SpecBanker};
/// let mut g = [0.0; 2];
/// SpecBanker.grants(&BankRound { shares: &[0.5, 0.5], shortages: &[0.17, 0.43], headroom: &[1.0, 1.0], balance: 0.3 }, &mut g).unwrap();
/// assert!((g[0] - 0.085).abs() < 1e-12);
/// ```
pub trait BankerPolicy: Send + Sync + std::fmt::Debug {
    /// Computes the grants of one redistribution.
    fn grants(&self, round: &BankRound<'_>, grants: &mut [f64]) -> Result<(), DpsError>;
}

/// SPEC section 6 exactly: eq. 5.2 (min form) and the proportional remainder; ignores headroom
/// (the receiving host rejects what it cannot take).
///
/// ```
/// # use dps_core::*;
/// let mut g = [0.0; 1];
/// SpecBanker.grants(&BankRound { shares: &[0.1], shortages: &[0.0], headroom: &[0.0], balance: 0.2 }, &mut g).unwrap();
/// assert!((g[0] - 0.2).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecBanker;

impl BankerPolicy for SpecBanker {
    fn grants(&self, round: &BankRound<'_>, grants: &mut [f64]) -> Result<(), DpsError> {
        round.validate(grants)?;
        bank_redistribute(round.shares, round.shortages, round.balance, grants)
    }
}

/// Eq. 5.2 for the shortages, then the remainder in proportion to shares but never above a
/// VM's headroom (water-filling); what fits nowhere stays in the bank.
///
/// ```
/// # use dps_core::*;
/// let mut g = [0.0; 2];
/// CappedBanker.grants(&BankRound { shares: &[0.1, 0.1], shortages: &[0.0, 0.0], headroom: &[0.05, 1.0], balance: 0.4 }, &mut g).unwrap();
/// assert!((g[0] - 0.05).abs() < 1e-12 && (g[1] - 0.35).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CappedBanker;

impl BankerPolicy for CappedBanker {
    fn grants(&self, round: &BankRound<'_>, grants: &mut [f64]) -> Result<(), DpsError> {
        round.validate(grants)?;
        let n = round.shares.len();
        let mut g = vec![0.0; n];
        // Shortages are already capped by r_j at the node; cap again in case headroom shrank.
        let capped: Vec<f64> = round
            .shortages
            .iter()
            .zip(round.headroom)
            .map(|(f, h)| f.min(*h))
            .collect();
        bank_redistribute(round.shares, &capped, round.balance, &mut g)?;
        let total_f: f64 = capped.iter().sum();
        if round.balance > total_f {
            // Redo the remainder with caps.
            let mut left = round.balance - total_f;
            let mut room: Vec<f64> = capped
                .iter()
                .zip(round.headroom)
                .map(|(f, h)| (h - f).max(0.0))
                .collect();
            let weight: Vec<f64> = round
                .shares
                .iter()
                .zip(&capped)
                .map(|(w, f)| w + f)
                .collect();
            g.copy_from_slice(&capped);
            for _ in 0..n + 1 {
                let open: Vec<usize> = (0..n).filter(|&i| room[i] > 1e-15).collect();
                if open.is_empty() || left <= 1e-15 {
                    break;
                }
                let wsum: f64 = open.iter().map(|&i| weight[i]).sum();
                let mut placed = 0.0;
                for &i in &open {
                    let part = if wsum > 0.0 {
                        weight[i] / wsum
                    } else {
                        1.0 / open.len() as f64
                    };
                    let x = (left * part).min(room[i]);
                    g[i] += x;
                    room[i] -= x;
                    placed += x;
                }
                left -= placed;
                if placed <= 1e-15 {
                    break;
                }
            }
        }
        grants.copy_from_slice(&g);
        Ok(())
    }
}
