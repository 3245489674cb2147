//! Identity tokens: JWTs the ticketing site signs, whose `sub` is the
//! identity that may hold one place in an event's queue.
//!
//! Keys come from files (IDENTITY_KEYS: P-256 or RSA public keys, SPKI
//! PEM) and from the site's own JWKS (IDENTITY_JWKS_URL, as Cognito, Auth0
//! and Keycloak publish them), so a site's existing login tokens can serve
//! as the identity. ES256 and RS256 are accepted, each only with a key of
//! its kind. The rules (binding; docs/api.md):
//!
//! - `sub`, `iat` and `exp` are required, and `exp - iat` is at most an hour;
//! - a token with `event_id` is for that event only;
//! - a token without `event_id` (a site-wide login token) is accepted only
//!   when its `aud` is IDENTITY_AUDIENCE, so that a token the site signed
//!   for one event cannot be replayed on another.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use ring::signature::{self as ring_sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use spki::der::Decode;

use super::{es256_valid, read_file, Jwt, KeyError, TokenError, LEEWAY_SECONDS};
use crate::config::KeySpec;

/// The longest life an identity token may claim (`exp - iat`).
pub const MAX_LIFETIME_SECONDS: i64 = 3600;

/// A public key that verifies identity tokens.
#[derive(Clone)]
enum Key {
    Es256(VerifyingKey),
    /// An RSA key as PKCS#1 `RSAPublicKey` DER (from a PEM file).
    RsaDer(Vec<u8>),
    /// An RSA key as modulus and exponent, big-endian (from a JWK).
    RsaParts {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl Key {
    fn verify(&self, jwt: &Jwt<'_>) -> Result<bool, TokenError> {
        let input = jwt.signed.as_bytes();
        match (self, jwt.header.alg.as_str()) {
            (Key::Es256(k), "ES256") => Ok(es256_valid(k, jwt.signed, &jwt.signature)),
            (Key::RsaDer(der), "RS256") => Ok(UnparsedPublicKey::new(
                &ring_sig::RSA_PKCS1_2048_8192_SHA256,
                der,
            )
            .verify(input, &jwt.signature)
            .is_ok()),
            (Key::RsaParts { n, e }, "RS256") => Ok(RsaPublicKeyComponents { n, e }
                .verify(&ring_sig::RSA_PKCS1_2048_8192_SHA256, input, &jwt.signature)
                .is_ok()),
            // An algorithm that does not match its key (e.g. HS256 with a
            // public key as the secret) is refused outright.
            _ => Err(TokenError::Algorithm),
        }
    }
}

/// rsaEncryption, 1.2.840.113549.1.1.1
const RSA_OID: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

fn load_key(spec: &KeySpec) -> Result<Key, KeyError> {
    let pem = read_file(spec)?;
    if let Ok(k) = VerifyingKey::from_public_key_pem(&pem) {
        return Ok(Key::Es256(k));
    }
    let not_key = || KeyError::NotIdentityKey {
        kid: spec.kid.clone(),
        path: spec.path.clone(),
    };
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|_| not_key())?;
    if label != "PUBLIC KEY" {
        return Err(not_key());
    }
    let info = spki::SubjectPublicKeyInfoRef::from_der(&der).map_err(|_| not_key())?;
    if info.algorithm.oid != RSA_OID {
        return Err(not_key());
    }
    let bits = info.subject_public_key.as_bytes().ok_or_else(not_key)?;
    Ok(Key::RsaDer(bits.to_vec()))
}

/// The JWKS a site publishes.
#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<RemoteJwk>,
}

#[derive(Deserialize)]
struct RemoteJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl RemoteJwk {
    /// The key, when it is a signing key of a kind this service verifies.
    fn key(&self) -> Option<(String, Key)> {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let kid = self.kid.clone().unwrap_or_default();
        let b64 = |v: &Option<String>| v.as_deref().and_then(|s| B64.decode(s).ok());
        match self.kty.as_str() {
            "EC" if self.crv.as_deref() == Some("P-256") => {
                let (x, y) = (b64(&self.x)?, b64(&self.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = VerifyingKey::from_sec1_bytes(&point).ok()?;
                Some((kid, Key::Es256(key)))
            }
            "RSA" => Some((
                kid,
                Key::RsaParts {
                    n: b64(&self.n)?,
                    e: b64(&self.e)?,
                },
            )),
            _ => None,
        }
    }
}

/// What was last fetched from IDENTITY_JWKS_URL.
#[derive(Default)]
struct Fetched {
    keys: Vec<(String, Key)>,
    at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// The site's JWKS, cached; fetched again when a token names a key the
/// cache lacks (at most once per `min_refetch`) and when the cache is an
/// hour old.
struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    min_refetch: Duration,
    cache: tokio::sync::Mutex<Fetched>,
}

const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
const JWKS_TIMEOUT: Duration = Duration::from_secs(3);
const JWKS_MAX_BYTES: usize = 1 << 20;

impl RemoteKeys {
    async fn fetch(&self) -> Result<Vec<(String, Key)>, TokenError> {
        let unavailable = |e: String| TokenError::KeysUnavailable(e);
        let response = self
            .client
            .get(&self.url)
            .timeout(JWKS_TIMEOUT)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        if response
            .content_length()
            .is_some_and(|n| n > JWKS_MAX_BYTES as u64)
        {
            return Err(unavailable("the key set is too large".into()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if body.len() > JWKS_MAX_BYTES {
            return Err(unavailable("the key set is too large".into()));
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("not a JWKS: {e}")))?;
        Ok(set.keys.iter().filter_map(RemoteJwk::key).collect())
    }

    /// The keys that may have signed a token naming `kid`.
    async fn keys_for(&self, kid: Option<&str>) -> Result<Vec<Key>, TokenError> {
        let mut cache = self.cache.lock().await;
        let matching = |keys: &[(String, Key)]| -> Vec<Key> {
            keys.iter()
                .filter(|(k, _)| kid.is_none_or(|want| want == k))
                .map(|(_, key)| key.clone())
                .collect()
        };
        let found = matching(&cache.keys);
        let stale = cache.at.is_none_or(|at| at.elapsed() >= JWKS_MAX_AGE);
        let may_fetch = cache
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.min_refetch);
        if (found.is_empty() || stale) && may_fetch {
            cache.last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.at = Some(Instant::now());
                    tracing::info!(url = %self.url, keys = cache.keys.len(), "identity keys fetched");
                    return Ok(matching(&cache.keys));
                }
                // Keep using what was fetched before: a site's outage must
                // not turn its fans away while the keys they use are known.
                Err(e) if !found.is_empty() => {
                    tracing::warn!(url = %self.url, error = %e, "identity keys could not be refreshed");
                }
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "identity keys could not be fetched");
                    return Err(e);
                }
            }
        }
        Ok(found)
    }
}

/// The claims this service reads from an identity token.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    event_id: Option<String>,
    #[serde(default)]
    aud: Audience,
}

/// `aud` is a string or an array of strings (RFC 7519).
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, want: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(a) => a == want,
            Audience::Many(list) => list.iter().any(|a| a == want),
        }
    }
}

/// Verifies identity tokens.
pub struct IdentityKeys {
    keys: Vec<(String, Key)>,
    remote: Option<RemoteKeys>,
    audience: Option<String>,
}

/// Where identity keys come from, besides the files.
#[derive(Debug, Clone, Default)]
pub struct IdentitySettings {
    /// The site's JWKS (`https://`, or `http://` on localhost only).
    pub jwks_url: Option<String>,
    /// The `aud` a token without `event_id` must carry.
    pub audience: Option<String>,
    /// The least time between two fetches of the JWKS.
    pub min_refetch: Duration,
}

impl IdentityKeys {
    /// Keys from files only (no JWKS URL, no audience).
    pub fn load(specs: &[KeySpec]) -> Result<IdentityKeys, KeyError> {
        Self::configure(specs, &IdentitySettings::default())
    }

    pub fn configure(specs: &[KeySpec], s: &IdentitySettings) -> Result<IdentityKeys, KeyError> {
        let mut keys = Vec::new();
        for spec in specs {
            if keys.iter().any(|(kid, _)| kid == &spec.kid) {
                return Err(KeyError::DuplicateKid(spec.kid.clone()));
            }
            keys.push((spec.kid.clone(), load_key(spec)?));
        }
        let remote = match &s.jwks_url {
            None => None,
            Some(url) => {
                let local = ["http://localhost", "http://127.0.0.1", "http://[::1]"]
                    .iter()
                    .any(|p| url.starts_with(p));
                if !url.starts_with("https://") && !local {
                    return Err(KeyError::JwksUrl(url.clone()));
                }
                let client = reqwest::Client::builder()
                    .timeout(JWKS_TIMEOUT)
                    .build()
                    .map_err(|_| KeyError::JwksUrl(url.clone()))?;
                Some(RemoteKeys {
                    url: url.clone(),
                    client,
                    min_refetch: s.min_refetch,
                    cache: tokio::sync::Mutex::default(),
                })
            }
        };
        Ok(IdentityKeys {
            keys,
            remote,
            audience: s.audience.clone(),
        })
    }

    /// No way to verify an identity token is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.remote.is_none()
    }

    /// Returns the token's subject: the identity that holds one place
    /// (`now` in Unix seconds). The rules are in the module's comment.
    pub async fn verify(
        &self,
        token: &str,
        event_id: &str,
        now: i64,
    ) -> Result<String, TokenError> {
        let jwt = Jwt::parse(token)?;
        if !matches!(jwt.header.alg.as_str(), "ES256" | "RS256") {
            return Err(TokenError::Algorithm);
        }
        let kid = jwt.header.kid.as_deref();
        let mut candidates: Vec<Key> = self
            .keys
            .iter()
            .filter(|(k, _)| kid.is_none_or(|want| want == k))
            .map(|(_, key)| key.clone())
            .collect();
        if let Some(remote) = &self.remote {
            // Files first: a site that lists its keys needs no fetch.
            let known = candidates.iter().any(|k| k.verify(&jwt).unwrap_or(false));
            if !known {
                candidates = remote.keys_for(kid).await?;
            }
        }
        if candidates.is_empty() {
            return Err(TokenError::UnknownKey);
        }
        let mut any_of_its_kind = false;
        let mut valid = false;
        for key in &candidates {
            match key.verify(&jwt) {
                Ok(ok) => {
                    any_of_its_kind = true;
                    valid |= ok;
                }
                Err(_) => continue,
            }
        }
        if !any_of_its_kind {
            return Err(TokenError::Algorithm);
        }
        if !valid {
            return Err(TokenError::Signature);
        }
        self.check(jwt.claims()?, event_id, now)
    }

    fn check(&self, c: Claims, event_id: &str, now: i64) -> Result<String, TokenError> {
        let exp = c.exp.ok_or(TokenError::Claims("exp is required"))?;
        let iat = c.iat.ok_or(TokenError::Claims("iat is required"))?;
        if exp + LEEWAY_SECONDS <= now {
            return Err(TokenError::Expired);
        }
        if iat - LEEWAY_SECONDS > now || c.nbf.is_some_and(|nbf| nbf - LEEWAY_SECONDS > now) {
            return Err(TokenError::NotYetValid);
        }
        if exp - iat > MAX_LIFETIME_SECONDS {
            return Err(TokenError::Claims("exp - iat may be at most one hour"));
        }
        match &c.event_id {
            Some(e) if e != event_id => {
                return Err(TokenError::Claims("event_id names another event"));
            }
            Some(_) => {}
            None => {
                let ok = self.audience.as_deref().is_some_and(|a| c.aud.contains(a));
                if !ok {
                    return Err(TokenError::Claims(
                        "a token without event_id needs aud = this service's IDENTITY_AUDIENCE",
                    ));
                }
            }
        }
        match c.sub {
            Some(sub) if !sub.is_empty() && sub.len() <= 256 => Ok(sub),
            _ => Err(TokenError::Claims("sub must be 1-256 bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{sign_with_pem, write_key_pair};
    use serde_json::json;

    fn site() -> (tempfile::TempDir, String, IdentityKeys, IdentityKeys) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.pem");
        write_key_pair(&path).unwrap();
        let spec = [KeySpec {
            kid: "site".into(),
            path: dir.path().join("site.pem.pub"),
        }];
        let plain = IdentityKeys::load(&spec).unwrap();
        let with_aud = IdentityKeys::configure(
            &spec,
            &IdentitySettings {
                audience: Some("tickets".into()),
                ..IdentitySettings::default()
            },
        )
        .unwrap();
        let private = std::fs::read_to_string(&path).unwrap();
        (dir, private, plain, with_aud)
    }

    #[tokio::test]
    async fn identity_tokens_follow_the_rules() {
        let (_dir, private, ids, with_aud) = site();
        let tok = |c: serde_json::Value| sign_with_pem(&private, "site", &c).unwrap();
        let now = 10_000;
        let good = tok(json!({"sub": "user-42", "iat": now, "exp": now + 600, "event_id": "ev"}));
        assert_eq!(ids.verify(&good, "ev", now).await.unwrap(), "user-42");
        let claims = |e: &Result<String, TokenError>| matches!(e, Err(TokenError::Claims(_)));

        let another_event = ids.verify(&good, "other", now).await;
        assert!(claims(&another_event), "{another_event:?}");
        let expired = tok(json!({"sub": "u", "iat": now - 900, "exp": now - 60, "event_id": "ev"}));
        assert_eq!(
            ids.verify(&expired, "ev", now).await,
            Err(TokenError::Expired)
        );
        let future = tok(json!({"sub": "u", "iat": now + 600, "exp": now + 900, "event_id": "ev"}));
        assert_eq!(
            ids.verify(&future, "ev", now).await,
            Err(TokenError::NotYetValid)
        );
        for missing in [
            json!({"iat": now, "exp": now + 60, "event_id": "ev"}),
            json!({"sub": "u", "exp": now + 60, "event_id": "ev"}),
            json!({"sub": "u", "iat": now, "event_id": "ev"}),
        ] {
            let r = ids.verify(&tok(missing.clone()), "ev", now).await;
            assert!(claims(&r), "{missing}: {r:?}");
        }
        let long = tok(json!({"sub": "u", "iat": now, "exp": now + 3601, "event_id": "ev"}));
        assert!(claims(&ids.verify(&long, "ev", now).await));

        // Site-wide tokens need the audience, and only where it is set.
        let site_wide = tok(json!({"sub": "u", "iat": now, "exp": now + 60, "aud": "tickets"}));
        assert!(claims(&ids.verify(&site_wide, "ev", now).await));
        assert_eq!(with_aud.verify(&site_wide, "ev", now).await.unwrap(), "u");
        let in_list =
            tok(json!({"sub": "u", "iat": now, "exp": now + 60, "aud": ["x", "tickets"]}));
        assert_eq!(
            with_aud.verify(&in_list, "any-event", now).await.unwrap(),
            "u"
        );
        let wrong_aud = tok(json!({"sub": "u", "iat": now, "exp": now + 60, "aud": "other"}));
        assert!(claims(&with_aud.verify(&wrong_aud, "ev", now).await));
        let no_aud = tok(json!({"sub": "u", "iat": now, "exp": now + 60}));
        assert!(claims(&with_aud.verify(&no_aud, "ev", now).await));
    }

    #[tokio::test]
    async fn algorithms_must_match_their_keys() {
        let (_dir, private, ids, _) = site();
        let good = sign_with_pem(
            &private,
            "site",
            &json!({"sub": "u", "iat": 1, "exp": 60, "event_id": "ev"}),
        )
        .unwrap();
        let (_, claims, sig) = {
            let mut p = good.split('.');
            (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
        };
        for alg in ["HS256", "none", "RS256"] {
            let header = B64.encode(format!(r#"{{"alg":"{alg}","kid":"site"}}"#));
            let forged = format!("{header}.{claims}.{sig}");
            assert_eq!(
                ids.verify(&forged, "ev", 30).await,
                Err(TokenError::Algorithm),
                "{alg}"
            );
        }
    }
}
