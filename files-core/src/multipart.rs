//! Multipart uploads: the part plan a caller declares, the S3 limits it must fit, and the
//! composite checksum the store gives the object.
//!
//! A file above one PUT's reach is sent in parts of one size (the last may be smaller), each
//! through its own URL signed for the part's length and SHA-256, so the store refuses other
//! bytes part by part. S3 cannot verify a whole-object SHA-256 of a multipart upload; it gives
//! the object a composite checksum, `base64(sha256(d1‖d2‖…‖dN))-N` where `dᵢ` is the SHA-256 of
//! part `i`. The service computes it from the plan ([`PartPlan::sha256_of_parts`]) and checks
//! the store's against it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::values::Sha256;

/// The smallest part S3 accepts, but for the last one: 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The largest part (and the largest single PUT) S3 accepts: 5 GiB.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The most parts one upload may have.
pub const MAX_PARTS: u16 = 10_000;
/// The most part tickets one answer carries.
pub const MAX_TICKETS_PER_CALL: usize = 100;

/// A part plan that cannot work, named precisely enough for a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlan {
    /// A file of 0 bytes has no parts.
    #[error("a multipart upload needs a size of at least 1 byte")]
    Empty,
    /// Parts other than the last must be at least 5 MiB.
    #[error("part size {part_size} is under the minimum of {MIN_PART_SIZE} bytes (only the last part may be smaller)")]
    PartTooSmall {
        /// Declared.
        part_size: u64,
    },
    /// Parts are at most 5 GiB.
    #[error("part size {part_size} is over the maximum of {MAX_PART_SIZE} bytes")]
    PartTooLarge {
        /// Declared.
        part_size: u64,
    },
    /// More than 10,000 parts.
    #[error("{count} parts is over the maximum of {MAX_PARTS} parts: choose a larger part size")]
    TooManyParts {
        /// `ceil(size / part_size)`.
        count: u64,
    },
    /// A plan of one part whose SHA-256 is not the file's: that part is the whole file, and
    /// the store can vouch only for the part's digest.
    #[error("a plan of one part must give the file's SHA-256 {file} as the part's, not {part}")]
    OnePartDigest {
        /// The file's declared SHA-256.
        file: Sha256,
        /// The part's.
        part: Sha256,
    },
    /// Not one SHA-256 per part.
    #[error("{given} part checksums given for {expected} parts (ceil(size / part size))")]
    DigestCount {
        /// `ceil(size / part_size)`.
        expected: u64,
        /// How many were given.
        given: usize,
    },
}

/// A validated part plan: the part size and the SHA-256 of each part, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPlan {
    part_size: u64,
    sha256: Vec<Sha256>,
}

impl PartPlan {
    /// Checks a plan for a file of `size` bytes against S3's limits: parts of 5 MiB to 5 GiB
    /// (the only part, or the last, may be smaller), at most 10,000 of them, one SHA-256 each.
    ///
    /// # Errors
    /// [`InvalidPlan`] naming the first problem.
    pub fn new(size: u64, part_size: u64, sha256: Vec<Sha256>) -> Result<Self, InvalidPlan> {
        if size == 0 {
            return Err(InvalidPlan::Empty);
        }
        if part_size == 0 {
            return Err(InvalidPlan::PartTooSmall { part_size });
        }
        if part_size > MAX_PART_SIZE {
            return Err(InvalidPlan::PartTooLarge { part_size });
        }
        let count = size.div_ceil(part_size);
        if count > u64::from(MAX_PARTS) {
            return Err(InvalidPlan::TooManyParts { count });
        }
        if count > 1 && part_size < MIN_PART_SIZE {
            return Err(InvalidPlan::PartTooSmall { part_size });
        }
        if u64::try_from(sha256.len()).ok() != Some(count) {
            return Err(InvalidPlan::DigestCount {
                expected: count,
                given: sha256.len(),
            });
        }
        Ok(Self { part_size, sha256 })
    }

    /// Checks the plan against the file's declared SHA-256: with one part, the part is the
    /// file, so its digest must be the file's (the composite checksum of one part vouches only
    /// for the part, and would let any declared whole-file digest through).
    ///
    /// # Errors
    /// [`InvalidPlan::OnePartDigest`] when they differ.
    pub fn check_file_sha256(&self, file: Sha256) -> Result<(), InvalidPlan> {
        match self.sha256.as_slice() {
            [part] if *part != file => Err(InvalidPlan::OnePartDigest { file, part: *part }),
            _ => Ok(()),
        }
    }

    /// A plan as stored, without checks (a stored plan was checked when it was made).
    #[must_use]
    pub const fn from_stored(part_size: u64, sha256: Vec<Sha256>) -> Self {
        Self { part_size, sha256 }
    }

    /// The size of every part but the last.
    #[must_use]
    pub const fn part_size(&self) -> u64 {
        self.part_size
    }

    /// How many parts.
    #[must_use]
    pub fn part_count(&self) -> u16 {
        u16::try_from(self.sha256.len()).unwrap_or(u16::MAX)
    }

    /// The parts' SHA-256s, part 1 first.
    #[must_use]
    pub fn sha256s(&self) -> &[Sha256] {
        &self.sha256
    }

    /// Part `number`'s SHA-256, or `None` when there is no such part.
    #[must_use]
    pub fn sha256(&self, number: u16) -> Option<Sha256> {
        let index = usize::from(number).checked_sub(1)?;
        self.sha256.get(index).copied()
    }

    /// The length of part `number` of a file of `size` bytes (the last part holds the rest).
    #[must_use]
    pub fn part_len(&self, size: u64, number: u16) -> u64 {
        let before = self.part_size.saturating_mul(u64::from(number.saturating_sub(1)));
        size.saturating_sub(before).min(self.part_size)
    }

    /// The composite checksum S3 gives the completed object: `base64(sha256(d1‖…‖dN))-N`.
    #[must_use]
    pub fn sha256_of_parts(&self) -> String {
        let mut hasher = sha2::Sha256::new();
        for digest in &self.sha256 {
            hasher.update(digest.as_bytes());
        }
        format!("{}-{}", BASE64.encode(hasher.finalize()), self.sha256.len())
    }
}

/// A multipart upload in progress (or done): the store's upload id, the plan, and until when
/// parts may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    /// The id the store gave the upload.
    pub upload_id: String,
    /// The part size and each part's SHA-256.
    pub plan: PartPlan,
    /// When the upload expires (`FILES_MULTIPART_EXPIRY_SECS` after it was started).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// How the store vouched for a file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// One PUT: the store verified the SHA-256 of the whole object.
    Object,
    /// A multipart upload: the store verified each part's SHA-256 and the composite of them.
    Parts,
}

impl Integrity {
    /// Its stable name, as shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Object => "object",
            Self::Parts => "parts",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn digests(n: usize) -> Vec<Sha256> {
        (0..n)
            .map(|i| Sha256::from_bytes([u8::try_from(i % 256).unwrap_or(0); 32]))
            .collect()
    }

    #[test]
    fn a_plan_fits_the_size_in_parts_of_one_size_and_a_smaller_last() -> Result<(), InvalidPlan> {
        let plan = PartPlan::new(12 * MIB, 5 * MIB, digests(3))?;
        assert_eq!(plan.part_count(), 3);
        assert_eq!(
            [1, 2, 3].map(|n| plan.part_len(12 * MIB, n)),
            [5 * MIB, 5 * MIB, 2 * MIB]
        );
        assert_eq!(plan.sha256(3), Some(digests(3)[2]));
        assert_eq!(plan.sha256(0), None);
        assert_eq!(plan.sha256(4), None);
        // One part of any size is allowed (S3 takes a lone small part).
        assert!(PartPlan::new(10, 5 * MIB, digests(1)).is_ok());
        assert!(PartPlan::new(10, 10, digests(1)).is_ok());
        Ok(())
    }

    #[test]
    fn plans_that_cannot_work_are_named() {
        assert_eq!(PartPlan::new(0, 5 * MIB, vec![]), Err(InvalidPlan::Empty));
        assert_eq!(
            PartPlan::new(10 * MIB, MIB, digests(10)),
            Err(InvalidPlan::PartTooSmall { part_size: MIB })
        );
        assert_eq!(
            PartPlan::new(10 * MIB, 0, digests(1)),
            Err(InvalidPlan::PartTooSmall { part_size: 0 })
        );
        assert_eq!(
            PartPlan::new(10 * MIB, MAX_PART_SIZE + 1, digests(1)),
            Err(InvalidPlan::PartTooLarge {
                part_size: MAX_PART_SIZE + 1
            })
        );
        assert_eq!(
            PartPlan::new(10_001 * 5 * MIB, 5 * MIB, digests(10_001)),
            Err(InvalidPlan::TooManyParts { count: 10_001 })
        );
        assert_eq!(
            PartPlan::new(12 * MIB, 5 * MIB, digests(2)),
            Err(InvalidPlan::DigestCount { expected: 3, given: 2 })
        );
        assert!(PartPlan::new(10_000 * 5 * MIB, 5 * MIB, digests(10_000)).is_ok());
    }

    #[test]
    fn a_plan_of_one_part_must_give_the_files_own_digest() -> Result<(), InvalidPlan> {
        let one = PartPlan::new(3 * MIB, 5 * MIB, digests(1))?;
        let file = digests(1)[0];
        assert_eq!(one.check_file_sha256(file), Ok(()));
        let other = Sha256::from_bytes([0xee; 32]);
        assert_eq!(
            one.check_file_sha256(other),
            Err(InvalidPlan::OnePartDigest {
                file: other,
                part: file
            })
        );
        // With several parts the file's digest is not any part's: nothing to compare.
        let two = PartPlan::new(6 * MIB, 5 * MIB, digests(2))?;
        assert_eq!(two.check_file_sha256(other), Ok(()));
        Ok(())
    }

    #[test]
    fn the_composite_is_the_sha256_of_the_part_digests_and_their_count() {
        let plan = PartPlan::from_stored(5 * MIB, digests(2));
        let mut joined = Vec::new();
        for d in digests(2) {
            joined.extend_from_slice(d.as_bytes());
        }
        let expected = format!("{}-2", BASE64.encode(sha2::Sha256::digest(&joined)));
        assert_eq!(plan.sha256_of_parts(), expected);
    }
}
