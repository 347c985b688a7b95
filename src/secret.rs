//! Secrets: a string that must never be printed (Confluence tokens, endpoint secrets), and the
//! constant-time check of a candidate against the accepted ones.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// A secret value. `Debug` and `Display` print a fixed placeholder, so a secret cannot reach a log
/// line or an error message by accident; the value is only available through [`Secret::expose`].
/// Equality is decided in constant time, on digests.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the few places that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        SecretDigest::of(self).matches(other.expose())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The SHA-256 digest of an accepted secret, computed once when the endpoint is built. Candidates
/// are hashed to the same fixed length and compared with `subtle`, so neither content nor length
/// leaks through timing. The digest is kept as four words, compared a word at a time (a
/// byte at a time cost ten times as much, on every authenticated request).
#[derive(Clone)]
pub struct SecretDigest([u64; 4]);

impl SecretDigest {
    /// Digests `secret`.
    pub fn of(secret: &Secret) -> SecretDigest {
        SecretDigest::of_bytes(secret.expose().as_bytes())
    }

    fn of_bytes(bytes: &[u8]) -> SecretDigest {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        SecretDigest(std::array::from_fn(|index| {
            let mut word = [0; 8];
            word.copy_from_slice(&digest[8 * index..8 * index + 8]);
            u64::from_ne_bytes(word)
        }))
    }

    /// Whether `candidate` is this secret, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(self.ct_eq(&SecretDigest::of_bytes(candidate.as_bytes())))
    }

    fn ct_eq(&self, other: &SecretDigest) -> Choice {
        self.0
            .iter()
            .zip(&other.0)
            .fold(Choice::from(1), |equal, (mine, theirs)| {
                equal & mine.ct_eq(theirs)
            })
    }
}

/// Whether `candidate` is one of `accepted`. Every accepted digest is compared, whatever the
/// outcome of the others.
pub fn matches_any(candidate: &str, accepted: &[SecretDigest]) -> bool {
    let candidate = SecretDigest::of_bytes(candidate.as_bytes());
    let mut matched = Choice::from(0);
    for digest in accepted {
        matched |= digest.ct_eq(&candidate);
    }
    bool::from(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let secret = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{secret:?} {secret}"), "Secret(***) ***");
        assert_eq!(secret.expose(), "hunter2-very-secret");
    }

    #[test]
    fn candidates_match_only_an_accepted_secret() {
        let accepted = [
            SecretDigest::of(&Secret::new("current-secret-0123456789")),
            SecretDigest::of(&Secret::new("previous-secret-0123456789")),
        ];
        assert!(matches_any("current-secret-0123456789", &accepted));
        assert!(matches_any("previous-secret-0123456789", &accepted));
        assert!(!matches_any("current-secret-012345678", &accepted));
        assert!(!matches_any("", &accepted));
        assert!(!matches_any("current-secret-0123456789", &[]));
    }

    #[test]
    fn digests_differing_in_any_word_differ() {
        let digest = SecretDigest([1, 2, 3, 4]);
        assert!(bool::from(digest.ct_eq(&SecretDigest([1, 2, 3, 4]))));
        for word in 0..4 {
            let mut other = [1, 2, 3, 4];
            other[word] ^= 1 << 63;
            assert!(
                !bool::from(digest.ct_eq(&SecretDigest(other))),
                "word {word}"
            );
        }
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("a-long-secret"), Secret::new("a-long-secret"));
        assert_ne!(Secret::new("a-long-secret"), Secret::new("a-long-secreT"));
        assert_ne!(Secret::new("a-long-secret"), Secret::new("a-long-secret "));
    }
}
