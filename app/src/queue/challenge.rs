//! The bot challenge at join: proof of work in the ALTCHA v1 format.
//!
//! The server picks a random `number` up to the event's
//! `challenge_difficulty` (ALTCHA's `maxnumber`) and sends
//! `challenge = hex(SHA-256(salt + number))` with
//! `signature = hex(HMAC-SHA256(key, challenge))`, but not the number: the
//! fan's browser finds it by trying 0, 1, 2, … (half of `maxnumber` hashes
//! on average). Nothing is stored when a challenge is issued: the salt names
//! the event and the expiry (`<hex>?event=<id>&expires=<unix>`), and the
//! signature proves the server made it. Checking a solution is two hashes.
//! That a solution is used once is the join script's part (see
//! [`super::scripts`], key `pow:<challenge>`).

use rand::{Rng, RngCore};
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::EventId;

/// The one algorithm of ALTCHA v1 this service speaks.
pub const ALGORITHM: &str = "SHA-256";

/// How long a challenge may be solved and used, in seconds.
pub const CHALLENGE_TTL_SECONDS: i64 = 600;

/// Whether an event's joins must carry a solved challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeMode {
    /// No challenge (the default).
    #[default]
    Off,
    /// Every join carries a solved proof-of-work challenge.
    Pow,
}

impl ChallengeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeMode::Off => "off",
            ChallengeMode::Pow => "pow",
        }
    }

    pub fn parse(s: &str) -> Option<ChallengeMode> {
        [ChallengeMode::Off, ChallengeMode::Pow]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// A challenge as the server sends it (ALTCHA's challenge JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// Always `SHA-256`.
    #[schema(example = "SHA-256")]
    pub algorithm: String,
    /// hex SHA-256 of `salt` followed by the secret number in decimal.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub challenge: String,
    /// The number is at most this (the event's `challenge_difficulty`).
    pub maxnumber: u64,
    /// Random hex, then `?event=<event_id>&expires=<unix seconds>`.
    pub salt: String,
    /// hex HMAC-SHA256 of `challenge` under the service's key.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub signature: String,
}

/// A solved challenge as a join carries it (ALTCHA's payload, not base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    #[schema(example = "SHA-256", max_length = 16)]
    pub algorithm: String,
    #[schema(max_length = 64)]
    pub challenge: String,
    /// The number found.
    #[schema(minimum = 0)]
    pub number: u64,
    #[schema(max_length = 200)]
    pub salt: String,
    #[schema(max_length = 64)]
    pub signature: String,
    /// What the ALTCHA widget adds; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub took: Option<u64>,
}

/// Why a solution is refused (the message of `422 challenge_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge's algorithm must be SHA-256")]
    Algorithm,
    #[error("the challenge was not issued by this service")]
    Signature,
    #[error("the number does not solve the challenge")]
    Wrong,
    #[error("the challenge has expired; get a new one")]
    Expired,
    #[error("the challenge was issued for another event")]
    OtherEvent,
    #[error("the challenge's salt is malformed")]
    Salt,
    #[error("this solution has been used already")]
    Replayed,
}

/// A solution that checks out: what the join script remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The challenge (hex), which names the solution.
    pub id: String,
    /// When it expires, unix milliseconds: it is remembered until then.
    pub expires_ms: i64,
}

/// Issues and checks challenges with one HMAC key. Every replica must
/// derive the same key (see `AdmissionKeys::derive_secret`).
pub struct Pow {
    key: hmac::Key,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// hex SHA-256 of `salt` followed by `number` in decimal.
pub fn hash(salt: &str, number: u64) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(salt.as_bytes());
    ctx.update(number.to_string().as_bytes());
    hex(ctx.finish().as_ref())
}

/// Finds the number by trying each one, as a browser does (for tests and
/// measurements; `None` past `maxnumber`).
pub fn solve(c: &Challenge) -> Option<u64> {
    (0..=c.maxnumber).find(|&n| hash(&c.salt, n) == c.challenge)
}

impl Pow {
    pub fn new(secret: &[u8]) -> Pow {
        Pow {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A fresh challenge for `event`, valid until `now_s` +
    /// [`CHALLENGE_TTL_SECONDS`].
    pub fn issue(&self, event: &EventId, maxnumber: u64, now_s: i64) -> Challenge {
        let mut random = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let salt = format!(
            "{}?event={}&expires={}",
            hex(&random),
            event.as_str(),
            now_s + CHALLENGE_TTL_SECONDS
        );
        let number = rand::rngs::OsRng.gen_range(0..=maxnumber);
        let challenge = hash(&salt, number);
        let signature = hex(hmac::sign(&self.key, challenge.as_bytes()).as_ref());
        Challenge {
            algorithm: ALGORITHM.into(),
            challenge,
            maxnumber,
            salt,
            signature,
        }
    }

    /// Checks a solution for `event` at `now_s`: issued here (signature),
    /// for this event, not expired, and solved. No I/O.
    pub fn verify(
        &self,
        event: &EventId,
        s: &Solution,
        now_s: i64,
    ) -> Result<Verified, ChallengeError> {
        if s.algorithm != ALGORITHM {
            return Err(ChallengeError::Algorithm);
        }
        let signature = unhex(&s.signature).ok_or(ChallengeError::Signature)?;
        hmac::verify(&self.key, s.challenge.as_bytes(), &signature)
            .map_err(|_| ChallengeError::Signature)?;
        let (_, query) = s.salt.split_once('?').ok_or(ChallengeError::Salt)?;
        let (mut for_event, mut expires) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("event", v)) => for_event = Some(v),
                Some(("expires", v)) => expires = v.parse::<i64>().ok(),
                _ => {}
            }
        }
        let expires = expires.ok_or(ChallengeError::Salt)?;
        if for_event != Some(event.as_str()) {
            return Err(ChallengeError::OtherEvent);
        }
        if expires <= now_s {
            return Err(ChallengeError::Expired);
        }
        if hash(&s.salt, s.number) != s.challenge {
            return Err(ChallengeError::Wrong);
        }
        Ok(Verified {
            id: s.challenge.clone(),
            expires_ms: expires.saturating_mul(1000),
        })
    }
}

impl Solution {
    /// The payload a solver sends for `c` with `number`.
    pub fn of(c: &Challenge, number: u64) -> Solution {
        Solution {
            algorithm: c.algorithm.clone(),
            challenge: c.challenge.clone(),
            number,
            salt: c.salt.clone(),
            signature: c.signature.clone(),
            took: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> EventId {
        EventId::parse(s).unwrap()
    }

    #[test]
    fn a_solved_challenge_verifies_once_per_its_rules() {
        let pow = Pow::new(b"test key of some length");
        let c = pow.issue(&ev("show"), 2000, 1_000);
        assert!(c.salt.ends_with("?event=show&expires=1600"), "{}", c.salt);
        let n = solve(&c).expect("solvable");
        let s = Solution::of(&c, n);
        let v = pow.verify(&ev("show"), &s, 1_001).unwrap();
        assert_eq!(v.id, c.challenge);
        assert_eq!(v.expires_ms, 1_600_000);
        assert_eq!(
            pow.verify(&ev("other"), &s, 1_001),
            Err(ChallengeError::OtherEvent)
        );
        assert_eq!(
            pow.verify(&ev("show"), &s, 1_600),
            Err(ChallengeError::Expired)
        );
        let wrong = Solution::of(&c, n + 1);
        assert_eq!(
            pow.verify(&ev("show"), &wrong, 1_001),
            Err(ChallengeError::Wrong)
        );
        let other_key = Pow::new(b"another key entirely");
        assert_eq!(
            other_key.verify(&ev("show"), &s, 1_001),
            Err(ChallengeError::Signature)
        );
        // A salt changed to another event breaks the signature's hash.
        let mut moved = s.clone();
        moved.salt = moved.salt.replace("event=show", "event=other");
        assert!(pow.verify(&ev("other"), &moved, 1_001).is_err());
        let mut garbage = s;
        garbage.signature = "zz".into();
        assert_eq!(
            pow.verify(&ev("show"), &garbage, 1_001),
            Err(ChallengeError::Signature)
        );
    }

    #[test]
    fn altcha_reference_hash() {
        // echo -n 'abc123' | sha256sum
        assert_eq!(
            hash("abc", 123),
            "6ca13d52ca70c883e0f0bb101e425a89e8624de51db2d2392593af6a84118090"
        );
    }
}
