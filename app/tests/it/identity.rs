//! Identity tokens from a site's own login: RS256 and ES256 keys published
//! at a JWKS URL (served here by a local server), cached, fetched again for
//! an unknown key at most once per refetch interval; site-wide tokens need
//! the service's IDENTITY_AUDIENCE.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

use crate::support::{AppOptions, Stack};

const RSA_PEM: &str = include_str!("../fixtures/identity-rsa-test-only.pem");

fn rsa_key() -> RsaKeyPair {
    let (_, der) = pem_rfc7468::decode_vec(RSA_PEM.trim().as_bytes()).unwrap();
    RsaKeyPair::from_pkcs8(&der).unwrap()
}

fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let parts = RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
           "n": B64.encode(&parts.n), "e": B64.encode(&parts.e)})
}

fn rs256(key: &RsaKeyPair, kid: &str, claims: &Value) -> String {
    let header = B64.encode(json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string());
    let input = format!("{header}.{}", B64.encode(claims.to_string()));
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", B64.encode(sig))
}

/// A site's JWKS endpoint: its key set can change, and it counts fetches.
struct Site {
    addr: SocketAddr,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Site {
    async fn start(keys: Vec<Value>) -> Site {
        let jwks = Arc::new(Mutex::new(json!({ "keys": keys })));
        let hits = Arc::new(AtomicUsize::new(0));
        let (j, h) = (jwks.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let (j, h) = (j.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    axum::Json(j.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Site {
            addr,
            jwks,
            hits,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sites_login_tokens_serve_as_the_identity() {
    let rsa = rsa_key();
    let site = Site::start(vec![rsa_jwk(&rsa, "rsa-1")]).await;
    let stack = Stack::standalone_with(
        AppOptions::default()
            .with("IDENTITY_JWKS_URL", &site.url())
            .with("IDENTITY_AUDIENCE", "tickets")
            .with("IDENTITY_JWKS_REFETCH_SECONDS", "2"),
    )
    .await;
    let api = stack.api();
    api.configure("ev", json!({"capacity": 0, "require_identity": true}))
        .await;
    let now = admission::clock::now_ms() / 1000;
    let join = |token: String| {
        let api = api.clone();
        async move {
            api.send(
                api.http
                    .post(format!("{}/api/v1/events/ev/queue", api.base()))
                    .json(&json!({ "identity_token": token })),
            )
            .await
        }
    };

    // RS256, for this event.
    let r = join(rs256(
        &rsa,
        "rsa-1",
        &json!({"sub": "alice", "iat": now, "exp": now + 300, "event_id": "ev"}),
    ))
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // RS256, the site's own login token: no event_id, aud = IDENTITY_AUDIENCE.
    let r = join(rs256(
        &rsa,
        "rsa-1",
        &json!({"sub": "bob", "iat": now, "exp": now + 300, "aud": "tickets"}),
    ))
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = join(rs256(
        &rsa,
        "rsa-1",
        &json!({"sub": "carol", "iat": now, "exp": now + 300, "aud": "elsewhere"}),
    ))
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        site.hits(),
        1,
        "one fetch serves every token of a known key"
    );

    // An unknown key (once the interval since the last fetch has passed):
    // one fetch, then none until the interval has passed again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let claims = json!({"sub": "dave", "iat": now, "exp": now + 300, "event_id": "ev"});
    let r = join(rs256(&rsa, "rsa-2", &claims)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let after_miss = site.hits();
    assert_eq!(after_miss, 2);
    for _ in 0..5 {
        assert_eq!(
            join(rs256(&rsa, "rsa-2", &claims)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        site.hits(),
        after_miss,
        "unknown keys cannot make it fetch again at once"
    );

    // The site rotates: the new key is accepted once the interval has passed.
    let ec_dir = tempfile::tempdir().unwrap();
    let ec_path = ec_dir.path().join("ec.pem");
    admission::token::write_key_pair(&ec_path).unwrap();
    let ec_private = std::fs::read_to_string(&ec_path).unwrap();
    let ec_jwk = {
        let keys = admission::token::AdmissionKeys::load(&[admission::config::KeySpec {
            kid: "ec-1".into(),
            path: ec_path.clone(),
        }])
        .unwrap();
        serde_json::to_value(&keys.jwks().keys[0]).unwrap()
    };
    *site.jwks.lock().unwrap() =
        json!({"keys": [rsa_jwk(&rsa, "rsa-1"), rsa_jwk(&rsa, "rsa-2"), ec_jwk]});
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = join(rs256(&rsa, "rsa-2", &claims)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let es = admission::token::sign_with_pem(
        &ec_private,
        "ec-1",
        &json!({"sub": "erin", "iat": now, "exp": now + 300, "event_id": "ev"}),
    )
    .unwrap();
    let r = join(es).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);

    // The site's endpoint goes away: known keys keep working.
    site.task.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = join(rs256(
        &rsa,
        "rsa-1",
        &json!({"sub": "frank", "iat": now, "exp": now + 300, "event_id": "ev"}),
    ))
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}
