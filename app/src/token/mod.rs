//! JSON Web Tokens: the admission tokens this service signs (ES256; the
//! keys are published at `/.well-known/jwks.json`), and, in [`identity`],
//! the identity tokens a ticketing site signs for events with
//! `require_identity`.

pub mod identity;

pub use identity::IdentityKeys;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::KeySpec;

/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Clock skew tolerated on `exp`, `nbf` and `iat` of incoming tokens.
const LEEWAY_SECONDS: i64 = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not accepted for its key (ES256 or RS256 only)")]
    Algorithm,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token claims are invalid: {0}")]
    Claims(&'static str),
    #[error("the site's keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) kid: Option<String>,
}

/// A key file that cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key `{kid}` at {}: {source}", path.display())]
    Read {
        kid: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key `{kid}` at {} is not a P-256 private key in PEM (PKCS#8)", path.display())]
    NotPrivateKey { kid: String, path: PathBuf },
    #[error("key `{kid}` at {} is not a P-256 public key in PEM (SPKI)", path.display())]
    NotPublicKey { kid: String, path: PathBuf },
    #[error("key `{kid}` at {} is neither a P-256 nor an RSA public key in PEM (SPKI)", path.display())]
    NotIdentityKey { kid: String, path: PathBuf },
    #[error("key id `{0}` is named twice")]
    DuplicateKid(String),
    #[error("at least one key is needed")]
    NoKeys,
    #[error("IDENTITY_JWKS_URL `{0}` must be https:// (http:// only for localhost)")]
    JwksUrl(String),
}

pub(crate) fn read_file(spec: &KeySpec) -> Result<String, KeyError> {
    std::fs::read_to_string(&spec.path).map_err(|source| KeyError::Read {
        kid: spec.kid.clone(),
        path: spec.path.clone(),
        source,
    })
}

fn load_signing_key(spec: &KeySpec) -> Result<SigningKey, KeyError> {
    let pem = read_file(spec)?;
    SigningKey::from_pkcs8_pem(&pem)
        .or_else(|_| p256::SecretKey::from_sec1_pem(&pem).map(SigningKey::from))
        .map_err(|_| KeyError::NotPrivateKey {
            kid: spec.kid.clone(),
            path: spec.path.clone(),
        })
}

fn sign(key: &SigningKey, kid: &str, claims: &impl Serialize) -> String {
    let header = Header {
        alg: "ES256".into(),
        typ: Some("JWT".into()),
        kid: Some(kid.into()),
    };
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    // RFC 6979 signatures are deterministic: every replica signs the same
    // claims into the same token.
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

/// A compact JWT taken apart; nothing in it is trusted yet.
pub(crate) struct Jwt<'t> {
    pub(crate) header: Header,
    /// What the signature covers: `header.claims`.
    pub(crate) signed: &'t str,
    claims: &'t str,
    pub(crate) signature: Vec<u8>,
}

impl<'t> Jwt<'t> {
    pub(crate) fn parse(token: &'t str) -> Result<Jwt<'t>, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let signature = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        Ok(Jwt {
            header,
            signed: &token[..h.len() + 1 + c.len()],
            claims: c,
            signature,
        })
    }

    /// The claims, once the signature has been checked.
    pub(crate) fn claims<C: for<'de> Deserialize<'de>>(&self) -> Result<C, TokenError> {
        B64.decode(self.claims)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)
    }
}

/// Whether an ES256 signature (64 bytes, r‖s) over `input` is `key`'s.
/// Checked by ring (its P-256 is several times faster than the pure-Rust
/// one that signs: a verification on every fan request was the largest
/// CPU cost of a hold, measured with perf).
pub(crate) fn es256_valid(key: &VerifyingKey, input: &str, signature: &[u8]) -> bool {
    let point = key.to_encoded_point(false);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        point.as_bytes(),
    )
    .verify(input.as_bytes(), signature)
    .is_ok()
}

/// The claims of an admission token. Tokens also carry `iss` and `aud`
/// when the service is configured with them (TOKEN_ISSUER,
/// TOKEN_AUDIENCE): [`AdmissionKeys`] adds them, never from a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AdmissionClaims {
    pub event_id: String,
    pub ticket: String,
    pub iat: i64,
    pub exp: i64,
}

impl AdmissionClaims {
    pub fn new(event_id: &str, ticket: &str, iat: i64, exp: i64) -> Self {
        AdmissionClaims {
            event_id: event_id.to_string(),
            ticket: ticket.to_string(),
            iat,
            exp,
        }
    }
}

/// An admission token's claims as signed: with the service's `iss` and
/// `aud`, when set.
#[derive(Serialize, Deserialize)]
struct Signed<C> {
    #[serde(flatten)]
    claims: C,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Signs admission tokens with the first of TOKEN_KEYS; verifies with all.
pub struct AdmissionKeys {
    signing: Vec<(String, SigningKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    /// Tokens already signed: an admitted fan polls every few seconds and
    /// gets the same token each time, so it is signed once per replica.
    signed: Mutex<HashMap<AdmissionClaims, String>>,
    /// Tokens whose signature, `iss` and `aud` this replica has checked:
    /// an admitted fan sends the same token with every hold, confirm and
    /// seat-map read, and only its expiry must be checked again.
    verified: Mutex<HashMap<String, AdmissionClaims>>,
}

/// Signed tokens kept before the cache starts over.
const SIGNED_CACHE_LIMIT: usize = 50_000;

impl AdmissionKeys {
    pub fn load(specs: &[KeySpec]) -> Result<AdmissionKeys, KeyError> {
        let mut signing = Vec::new();
        for spec in specs {
            if signing.iter().any(|(kid, _)| kid == &spec.kid) {
                return Err(KeyError::DuplicateKid(spec.kid.clone()));
            }
            signing.push((spec.kid.clone(), load_signing_key(spec)?));
        }
        if signing.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(AdmissionKeys {
            signing,
            issuer: None,
            audience: None,
            signed: Mutex::default(),
            verified: Mutex::default(),
        })
    }

    /// Adds `iss` and `aud` to every token signed, and requires them of
    /// every token verified (each only when set).
    pub fn with_claims(mut self, issuer: Option<String>, audience: Option<String>) -> Self {
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// A secret for another purpose (`label`), derived from the signing
    /// key (the first of TOKEN_KEYS): HMAC-SHA256(private scalar, label).
    /// Every replica has the same keys, so every replica derives the same
    /// secret, and no new secret needs deploying; it changes when the first
    /// key does.
    pub fn derive_secret(&self, label: &[u8]) -> [u8; 32] {
        let scalar = self.signing[0].1.to_bytes();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &scalar[..]);
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::hmac::sign(&key, label).as_ref());
        out
    }

    pub fn sign(&self, claims: &AdmissionClaims) -> String {
        if let Some(token) = self.signed.lock().ok().and_then(|c| c.get(claims).cloned()) {
            return token;
        }
        let (kid, key) = &self.signing[0];
        let signed = Signed {
            claims,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let token = sign(key, kid, &signed);
        if let Ok(mut cache) = self.signed.lock() {
            if cache.len() >= SIGNED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(claims.clone(), token.clone());
        }
        token
    }

    /// Checks signature, expiry (`now` in Unix seconds), and `iss` and
    /// `aud` when the service sets them.
    pub fn verify(&self, token: &str, now: i64) -> Result<AdmissionClaims, TokenError> {
        let known = self
            .verified
            .lock()
            .ok()
            .and_then(|c| c.get(token).cloned());
        if let Some(claims) = known {
            return if claims.exp <= now {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = self.verify_signed(token, now)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= SIGNED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(token.to_string(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_signed(&self, token: &str, now: i64) -> Result<AdmissionClaims, TokenError> {
        let jwt = Jwt::parse(token)?;
        if jwt.header.alg != "ES256" {
            return Err(TokenError::Algorithm);
        }
        let mut candidates = self
            .signing
            .iter()
            .filter(|(kid, _)| jwt.header.kid.as_deref().is_none_or(|k| k == kid))
            .peekable();
        if candidates.peek().is_none() {
            return Err(TokenError::UnknownKey);
        }
        if !candidates.any(|(_, key)| es256_valid(key.verifying_key(), jwt.signed, &jwt.signature))
        {
            return Err(TokenError::Signature);
        }
        let signed: Signed<AdmissionClaims> = jwt.claims()?;
        if signed.claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if self.issuer.is_some() && signed.iss != self.issuer {
            return Err(TokenError::Claims("iss is not this service's"));
        }
        if self.audience.is_some() && signed.aud != self.audience {
            return Err(TokenError::Claims("aud is not this service's"));
        }
        Ok(signed.claims)
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .signing
            .iter()
            .map(|(kid, key)| {
                let point = key.verifying_key().to_encoded_point(false);
                Jwk {
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    alg: "ES256".into(),
                    key_use: "sig".into(),
                    kid: kid.clone(),
                    x: B64.encode(point.x().map(|x| x.to_vec()).unwrap_or_default()),
                    y: B64.encode(point.y().map(|y| y.to_vec()).unwrap_or_default()),
                }
            })
            .collect();
        Jwks { keys }
    }
}

/// A JSON Web Key Set (RFC 7517) of the keys that verify admission tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public P-256 key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// Always `ES256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
    /// The `kid` header of the tokens this key signed.
    pub kid: String,
    /// The point's coordinates, base64url without padding.
    pub x: String,
    pub y: String,
}

/// A new P-256 key: (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_key_pair() -> (String, String) {
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .unwrap_or_default();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default();
    (private, public)
}

/// Signs arbitrary claims with a PKCS#8 private key: what a ticketing site
/// does to make identity tokens (used by tests and `cargo xtask dev`).
pub fn sign_with_pem(private_pem: &str, kid: &str, claims: &serde_json::Value) -> Option<String> {
    let key = SigningKey::from_pkcs8_pem(private_pem).ok()?;
    Some(sign(&key, kid, claims))
}

/// Writes a new key pair next to each other: `<path>` (private, mode 0600)
/// and `<path>.pub` (public). Refuses to overwrite either file: a signing
/// key replaced by mistake would invalidate every token it signed.
pub fn write_key_pair(path: &Path) -> std::io::Result<()> {
    let mut public_path = path.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    for p in [path, public_path.as_path()] {
        if p.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists; remove it first or choose another file",
                    p.display()
                ),
            ));
        }
    }
    let (private, public) = generate_key_pair();
    write_new(path, &private, 0o600)?;
    write_new(&public_path, &public, 0o644)
}

/// Creates `path` (never replacing a file) with `text`.
fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_in(dir: &Path, kids: &[&str]) -> Vec<KeySpec> {
        kids.iter()
            .map(|kid| {
                let path = dir.join(format!("{kid}.pem"));
                write_key_pair(&path).unwrap();
                KeySpec {
                    kid: kid.to_string(),
                    path,
                }
            })
            .collect()
    }

    fn claims(exp: i64) -> AdmissionClaims {
        AdmissionClaims::new("ev", &"t".repeat(22), 100, exp)
    }

    #[test]
    fn first_key_signs_and_all_keys_verify() {
        let dir = tempfile::tempdir().unwrap();
        let specs = keys_in(dir.path(), &["new", "old"]);
        let both = AdmissionKeys::load(&specs).unwrap();
        let token = both.sign(&claims(1000));
        assert_eq!(both.verify(&token, 500).unwrap(), claims(1000));
        // A replica still on the old key verifies tokens only when it knows
        // the new key too: rotation adds the new key everywhere first.
        let old_only = AdmissionKeys::load(&specs[1..]).unwrap();
        assert_eq!(old_only.verify(&token, 500), Err(TokenError::UnknownKey));
        assert_eq!(both.jwks().keys.len(), 2);
    }

    #[test]
    fn key_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_key_pair(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let err = write_key_pair(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        // A stray public half alone also stops it.
        let other = dir.path().join("o.pem");
        std::fs::write(dir.path().join("o.pem.pub"), "x").unwrap();
        assert!(write_key_pair(&other).is_err());
        assert!(!other.exists());
    }

    #[test]
    fn signing_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AdmissionKeys::load(&keys_in(dir.path(), &["k"])).unwrap();
        assert_eq!(keys.sign(&claims(9)), keys.sign(&claims(9)));
    }

    #[test]
    fn tampered_expired_and_foreign_tokens_fail() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AdmissionKeys::load(&keys_in(dir.path(), &["k"])).unwrap();
        let token = keys.sign(&claims(1000));
        assert_eq!(keys.verify(&token, 1000), Err(TokenError::Expired));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(serde_json::to_vec(&claims(99_999)).unwrap());
        parts[1] = &forged;
        assert_eq!(
            keys.verify(&parts.join("."), 10),
            Err(TokenError::Signature)
        );
        assert_eq!(keys.verify("a.b", 10), Err(TokenError::Malformed));
        let none_alg = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none"}"#),
            B64.encode(serde_json::to_vec(&claims(99_999)).unwrap())
        );
        assert_eq!(keys.verify(&none_alg, 10), Err(TokenError::Algorithm));
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_and_a_bad_one_never() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AdmissionKeys::load(&keys_in(dir.path(), &["k"])).unwrap();
        let token = keys.sign(&claims(1000));
        assert_eq!(keys.verify(&token, 10).unwrap(), claims(1000));
        assert!(keys.verified.lock().unwrap().contains_key(&token));
        // Answered from memory, expiry still checked.
        assert_eq!(keys.verify(&token, 999).unwrap(), claims(1000));
        assert_eq!(keys.verify(&token, 1000), Err(TokenError::Expired));
        // A signature that fails is not remembered, and fails every time.
        let mut sig = B64.decode(token.rsplit('.').next().unwrap()).unwrap();
        sig[10] ^= 1;
        let bad = format!("{}.{}", token.rsplit_once('.').unwrap().0, B64.encode(&sig));
        assert_eq!(keys.verify(&bad, 10), Err(TokenError::Signature));
        assert_eq!(keys.verify(&bad, 10), Err(TokenError::Signature));
        assert!(!keys.verified.lock().unwrap().contains_key(&bad));
        // Another replica (same key, nothing remembered) agrees.
        let fresh = AdmissionKeys::load(&[KeySpec {
            kid: "k".into(),
            path: dir.path().join("k.pem"),
        }])
        .unwrap();
        assert_eq!(fresh.verify(&token, 10).unwrap(), claims(1000));
    }

    #[test]
    fn issuer_and_audience_are_added_only_when_set_and_then_required() {
        let dir = tempfile::tempdir().unwrap();
        let specs = keys_in(dir.path(), &["k"]);
        let plain = AdmissionKeys::load(&specs).unwrap();
        let token = plain.sign(&claims(1000));
        let body: serde_json::Value = Jwt::parse(&token).unwrap().claims().unwrap();
        assert!(
            body.get("iss").is_none() && body.get("aud").is_none(),
            "{body}"
        );

        let named = AdmissionKeys::load(&specs)
            .unwrap()
            .with_claims(Some("https://queue.example".into()), Some("tickets".into()));
        let named_token = named.sign(&claims(1000));
        assert_eq!(named.verify(&named_token, 10).unwrap(), claims(1000));
        let body: serde_json::Value = Jwt::parse(&named_token).unwrap().claims().unwrap();
        assert_eq!(body["iss"], "https://queue.example");
        assert_eq!(body["aud"], "tickets");
        // A token of the same key without them is refused where they are set.
        assert!(matches!(
            named.verify(&token, 10),
            Err(TokenError::Claims(_))
        ));
        assert!(plain.verify(&named_token, 10).is_ok());
    }
}
