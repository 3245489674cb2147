//! ES256 JSON Web Tokens: the admission tokens this service signs (and
//! publishes the keys of at `/.well-known/jwks.json`), and the identity
//! tokens a ticketing site signs for events with `require_identity`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
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
    #[error("token algorithm must be ES256")]
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
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
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
    #[error("key id `{0}` is named twice")]
    DuplicateKid(String),
    #[error("at least one key is needed")]
    NoKeys,
}

fn read_file(spec: &KeySpec) -> Result<String, KeyError> {
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

fn load_verifying_key(spec: &KeySpec) -> Result<VerifyingKey, KeyError> {
    let pem = read_file(spec)?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|_| KeyError::NotPublicKey {
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

/// Checks the signature of a compact ES256 JWT and returns its claims.
fn verify<'k, C: for<'de> Deserialize<'de>>(
    token: &str,
    keys: impl Iterator<Item = (&'k str, &'k VerifyingKey)> + Clone,
) -> Result<C, TokenError> {
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
    if header.alg != "ES256" {
        return Err(TokenError::Algorithm);
    }
    let sig = B64
        .decode(s)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    let input = &token[..h.len() + 1 + c.len()];
    let mut candidates = keys.filter(|(kid, _)| header.kid.as_deref().is_none_or(|k| k == *kid));
    let mut any = false;
    let ok = candidates.any(|(_, key)| {
        any = true;
        key.verify(input.as_bytes(), &sig).is_ok()
    });
    if !any {
        return Err(TokenError::UnknownKey);
    }
    if !ok {
        return Err(TokenError::Signature);
    }
    B64.decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)
}

/// The claims of an admission token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AdmissionClaims {
    pub event_id: String,
    pub ticket: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs admission tokens with the first of TOKEN_KEYS; verifies with all.
pub struct AdmissionKeys {
    signing: Vec<(String, SigningKey)>,
    /// Tokens already signed: an admitted fan polls every few seconds and
    /// gets the same token each time, so it is signed once per replica.
    signed: Mutex<HashMap<AdmissionClaims, String>>,
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
            signed: Mutex::default(),
        })
    }

    pub fn sign(&self, claims: &AdmissionClaims) -> String {
        if let Some(token) = self.signed.lock().ok().and_then(|c| c.get(claims).cloned()) {
            return token;
        }
        let (kid, key) = &self.signing[0];
        let token = sign(key, kid, claims);
        if let Ok(mut cache) = self.signed.lock() {
            if cache.len() >= SIGNED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(claims.clone(), token.clone());
        }
        token
    }

    /// Checks signature and expiry (`now` in Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<AdmissionClaims, TokenError> {
        let keys: Vec<(&str, VerifyingKey)> = self
            .signing
            .iter()
            .map(|(kid, k)| (kid.as_str(), *k.verifying_key()))
            .collect();
        let claims: AdmissionClaims = verify(token, keys.iter().map(|(k, v)| (*k, v)))?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
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

#[derive(Deserialize)]
struct IdentityClaims {
    sub: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    event_id: Option<String>,
}

/// Verifies identity tokens (ES256, keys from IDENTITY_KEYS).
pub struct IdentityKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl IdentityKeys {
    pub fn load(specs: &[KeySpec]) -> Result<IdentityKeys, KeyError> {
        let mut keys = Vec::new();
        for spec in specs {
            keys.push((spec.kid.clone(), load_verifying_key(spec)?));
        }
        Ok(IdentityKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Returns the token's subject: the identity that holds one place. The
    /// token must carry `sub` and `exp`; an `event_id` claim, when present,
    /// must name this event.
    pub fn verify(&self, token: &str, event_id: &str, now: i64) -> Result<String, TokenError> {
        let claims: IdentityClaims = verify(token, self.keys.iter().map(|(k, v)| (k.as_str(), v)))?;
        let exp = claims.exp.ok_or(TokenError::Claims("exp is required"))?;
        if exp + LEEWAY_SECONDS <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf - LEEWAY_SECONDS > now)
            || claims.iat.is_some_and(|iat| iat - LEEWAY_SECONDS > now)
        {
            return Err(TokenError::NotYetValid);
        }
        if claims.event_id.is_some_and(|e| e != event_id) {
            return Err(TokenError::Claims("event_id names another event"));
        }
        match claims.sub {
            Some(sub) if !sub.is_empty() && sub.len() <= 256 => Ok(sub),
            _ => Err(TokenError::Claims("sub must be 1-256 bytes")),
        }
    }
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
        AdmissionClaims {
            event_id: "ev".into(),
            ticket: "t".repeat(22),
            iat: 100,
            exp,
        }
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
    fn identity_tokens_yield_their_subject() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.pem");
        write_key_pair(&path).unwrap();
        let ids = IdentityKeys::load(&[KeySpec {
            kid: "site".into(),
            path: dir.path().join("site.pem.pub"),
        }])
        .unwrap();
        let private = std::fs::read_to_string(&path).unwrap();
        let tok = |c: serde_json::Value| sign_with_pem(&private, "site", &c).unwrap();
        let good = tok(serde_json::json!({"sub": "user-42", "exp": 2000}));
        assert_eq!(ids.verify(&good, "ev", 1000).unwrap(), "user-42");
        let expired = tok(serde_json::json!({"sub": "u", "exp": 900}));
        assert_eq!(ids.verify(&expired, "ev", 1000), Err(TokenError::Expired));
        let other = tok(serde_json::json!({"sub": "u", "exp": 2000, "event_id": "x"}));
        assert!(matches!(
            ids.verify(&other, "ev", 1000),
            Err(TokenError::Claims(_))
        ));
        let no_sub = tok(serde_json::json!({"exp": 2000}));
        assert!(matches!(
            ids.verify(&no_sub, "ev", 1000),
            Err(TokenError::Claims(_))
        ));
    }
}
