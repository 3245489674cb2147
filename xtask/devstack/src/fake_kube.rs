//! A local stand-in for the Kubernetes API server, for the ops commands'
//! tests (deploy's rollout wait, `irsa check`'s pods, doctor's Ingresses):
//! no cluster runs here. It answers `GET` on the paths a client uses to
//! read namespaced objects (one object, or the list of a namespace, or of
//! every namespace) with JSON serialized from k8s-openapi's own types, so
//! the answers have exactly the API reference's shapes; a missing object is
//! the API's 404 `Status`.
//!
//! Tests put objects in (`put`) and change them while a command runs (a
//! Deployment whose rollout completes after a few polls); every request is
//! logged for the test to check what the client asked. Plain HTTP on
//! 127.0.0.1 and any bearer token: `write_kubeconfig` writes a kubeconfig
//! that points a client at it.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use serde_json::{json, Value};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an object lives: `(api prefix, plural, namespace, name)`, e.g.
/// `("apis/apps/v1", "deployments", "admission", "admission")`.
type Key = (String, String, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    log: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake API server on `127.0.0.1:<free port>`; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

/// The errors of putting an object in.
#[derive(Debug)]
pub enum FakeKubeError {
    /// Namespaced objects need `metadata.namespace` and `metadata.name`.
    MissingName,
    Serialize(serde_json::Error),
}

impl std::fmt::Display for FakeKubeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FakeKubeError::MissingName => {
                write!(f, "the object needs metadata.namespace and metadata.name")
            }
            FakeKubeError::Serialize(e) => write!(f, "cannot serialize the object: {e}"),
        }
    }
}

impl std::error::Error for FakeKubeError {}

impl FakeKube {
    pub fn start() -> io::Result<FakeKube> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            stopping: AtomicBool::new(false),
        });
        let listener = thread::Builder::new().name("fake-kube".into()).spawn({
            let shared = Arc::clone(&shared);
            move || {
                for conn in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = Arc::clone(&shared);
                    let _ = thread::Builder::new()
                        .name("fake-kube-conn".into())
                        .spawn(move || {
                            let _ = serve(conn, &shared);
                        });
                }
            }
        })?;
        Ok(FakeKube {
            addr,
            shared,
            listener: Some(listener),
        })
    }

    /// The API server's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Puts (or replaces) a namespaced object, as the API server would
    /// store it; clients see it from their next request on.
    pub fn put<K>(&self, object: &K) -> Result<(), FakeKubeError>
    where
        K: Resource + Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
        K: Serialize,
    {
        let meta = object.metadata();
        let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            return Err(FakeKubeError::MissingName);
        };
        let value = serde_json::to_value(object).map_err(FakeKubeError::Serialize)?;
        let key = (
            api_prefix::<K>(),
            K::URL_PATH_SEGMENT.to_string(),
            namespace,
            name,
        );
        self.shared.state().objects.insert(key, value);
        Ok(())
    }

    /// Removes a namespaced object (later requests get 404).
    pub fn delete<K: Resource>(&self, namespace: &str, name: &str) {
        let key = (
            api_prefix::<K>(),
            K::URL_PATH_SEGMENT.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        self.shared.state().objects.remove(&key);
    }

    /// Every request so far as `"GET /path?query"`, in order.
    pub fn log(&self) -> Vec<String> {
        self.shared.state().log.clone()
    }

    /// How many requests so far started with `prefix` (e.g.
    /// `"GET /apis/apps/v1/namespaces/admission/deployments/admission"`).
    pub fn requests(&self, prefix: &str) -> usize {
        self.shared
            .state()
            .log
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    /// Writes a kubeconfig (JSON, which is YAML) with one context, `fake`,
    /// that points at this server with a dummy token, in `namespace`.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> io::Result<()> {
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {
                "cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&config)?)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the listener blocked in accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// `api/v1` for the core group, `apis/<group>/<version>` otherwise.
fn api_prefix<K: Resource>() -> String {
    if K::GROUP.is_empty() {
        format!("api/{}", K::VERSION)
    } else {
        format!("apis/{}/{}", K::GROUP, K::VERSION)
    }
}

/// What a path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `/<prefix>/namespaces/<ns>/<plural>/<name>`
    One(Key),
    /// `/<prefix>/namespaces/<ns>/<plural>` (`Some(ns)`) or
    /// `/<prefix>/<plural>` (`None`, every namespace).
    List {
        prefix: String,
        plural: String,
        namespace: Option<String>,
    },
}

fn route(path: &str) -> Option<Request> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (format!("api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("apis/{group}/{version}"), rest),
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural, name] => Some(Request::One((
            prefix,
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        ))),
        ["namespaces", ns, plural] => Some(Request::List {
            prefix,
            plural: plural.to_string(),
            namespace: Some(ns.to_string()),
        }),
        [plural] => Some(Request::List {
            prefix,
            plural: plural.to_string(),
            namespace: None,
        }),
        _ => None,
    }
}

/// The answer to one request: status and JSON body.
fn answer(shared: &Shared, method: &str, target: &str) -> (u16, Value) {
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" {
        return status(405, "MethodNotAllowed", &format!("{method} is not served"));
    }
    let state = shared.state();
    match route(path) {
        Some(Request::One(key)) => match state.objects.get(&key) {
            Some(object) => (200, object.clone()),
            None => status(
                404,
                "NotFound",
                &format!("{} \"{}\" not found", key.1, key.3),
            ),
        },
        Some(Request::List {
            prefix,
            plural,
            namespace,
        }) => {
            let items: Vec<Value> = state
                .objects
                .iter()
                .filter(|((p, k, ns, _), _)| {
                    *p == prefix && *k == plural && namespace.as_ref().is_none_or(|n| n == ns)
                })
                .map(|(_, v)| v.clone())
                .collect();
            let kind = items
                .first()
                .and_then(|i| i.get("kind"))
                .and_then(Value::as_str)
                .map(|k| format!("{k}List"))
                .unwrap_or_else(|| "List".to_string());
            let api_version = prefix
                .strip_prefix("api/")
                .or_else(|| prefix.strip_prefix("apis/"))
                .unwrap_or_default()
                .to_string();
            (
                200,
                json!({
                    "apiVersion": api_version,
                    "kind": kind,
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }),
            )
        }
        None => status(
            404,
            "NotFound",
            &format!("the server could not find {path}"),
        ),
    }
}

/// The API's `Status` error object.
fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }),
    )
}

fn serve(conn: TcpStream, shared: &Shared) -> io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    // Keep-alive: a client may send several requests on one connection.
    loop {
        let mut start = String::new();
        if reader.read_line(&mut start)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        io::copy(&mut (&mut reader).take(length as u64), &mut io::sink())?;
        let mut words = start.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default().to_string();
        shared.state().log.push(format!("{method} {target}"));
        let (code, body) = answer(shared, &method, &target);
        let body = body.to_string();
        let reason = if code == 200 { "OK" } else { "Error" };
        write!(
            conn,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        conn.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn objects_are_served_in_the_api_shapes_and_missing_ones_are_404() {
        let kube = FakeKube::start().unwrap();
        kube.put(&Deployment {
            metadata: meta("shop", "web"),
            ..Deployment::default()
        })
        .unwrap();
        kube.put(&Pod {
            metadata: meta("shop", "web-1"),
            ..Pod::default()
        })
        .unwrap();
        kube.put(&Pod {
            metadata: meta("other", "x-1"),
            ..Pod::default()
        })
        .unwrap();
        let (code, body) = crate::http_request(
            kube.addr,
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            &[],
            None,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(code, 200);
        assert_eq!(
            (v["kind"].as_str(), v["apiVersion"].as_str()),
            (Some("Deployment"), Some("apps/v1"))
        );

        let (_, body) = crate::http_request(
            kube.addr,
            "GET",
            "/api/v1/namespaces/shop/pods?limit=5",
            &[],
            None,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "PodList");
        assert_eq!(v["items"].as_array().unwrap().len(), 1);
        let (_, body) = crate::http_request(kube.addr, "GET", "/api/v1/pods", &[], None).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["items"].as_array().unwrap().len(), 2);

        kube.delete::<Deployment>("shop", "web");
        let (code, body) = crate::http_request(
            kube.addr,
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/web",
            &[],
            None,
        )
        .unwrap();
        assert_eq!(code, 404);
        assert!(body.contains("\"reason\":\"NotFound\""), "{body}");
        assert_eq!(
            kube.requests("GET /apis/apps/v1/namespaces/shop/deployments/web"),
            2
        );
        assert!(kube.put(&Pod::default()).is_err());
    }
}
