//! An HTTP proxy that tests put between an AWS SDK and moto to produce the
//! failures moto never does: a throttled shard, an expired iterator, a
//! service error. Each request is matched by its JSON-protocol operation
//! (`X-Amz-Target`, e.g. `Kinesis_20131202.GetRecords`) and either
//! forwarded or answered with the error the real service would send
//! (status 400 and `{"__type": …, "message": …}`).
//!
//! A `PutRecords` call can also fail in part, as Kinesis does under load:
//! the records the rule names are taken out of the request (moto never
//! stores them), and the answer puts them back in place as failed
//! (`ErrorCode`, `FailedRecordCount`), so the client must send exactly those
//! again.
//!
//! Calls are forwarded one at a time: moto's Kinesis is not safe for
//! concurrent writes (two PutRecords on one shard can draw the same
//! sequence number, and the later record replaces the earlier), a race the
//! real service does not have. Tests whose writers run concurrently send
//! them through this proxy.
//!
//! One request per connection: every answer carries `Connection: close`,
//! so the client never reuses a connection the proxy is done with. Every
//! call is logged in order, with what the proxy did, for the test to check
//! that the faults happened and what the client did next.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Requests and answers are small (JSON APIs): a bound on what is read.
const MAX_BODY: usize = 16 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One call, as the rule sees it.
#[derive(Debug, Clone)]
pub struct AwsCall {
    /// `X-Amz-Target` (empty for protocols without it).
    pub target: String,
    /// The request body (JSON for the JSON protocols).
    pub body: String,
    /// Calls with this target before this one, from 0.
    pub nth: u64,
}

/// What the proxy does with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsReply {
    Forward,
    /// Answer `status` with the service's JSON error shape, without
    /// forwarding.
    Error {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Answer `status` with this body, without forwarding: a service moto
    /// lacks (EC2's Client VPN, ElastiCache Serverless, ...), answered in
    /// the service's own shape (XML for the query protocols) so the SDK
    /// parses it, while the log keeps the exact request it sent.
    Answer {
        status: u16,
        content_type: String,
        body: String,
    },
    /// For `PutRecords`: these records (by index in the request) fail with
    /// `ProvisionedThroughputExceededException`; the others are forwarded.
    FailRecords(Vec<usize>),
}

impl AwsReply {
    /// A 200 with an XML body (EC2, RDS, ElastiCache: the query protocols).
    pub fn xml(body: &str) -> AwsReply {
        AwsReply::Answer {
            status: 200,
            content_type: "text/xml".into(),
            body: body.into(),
        }
    }

    /// A 200 with a JSON body (the JSON protocols).
    pub fn json(body: &str) -> AwsReply {
        AwsReply::Answer {
            status: 200,
            content_type: "application/x-amz-json-1.1".into(),
            body: body.into(),
        }
    }

    /// A 400 with `{"__type": error_type, "message": message}`.
    pub fn error(error_type: &str, message: &str) -> AwsReply {
        AwsReply::Error {
            status: 400,
            error_type: error_type.into(),
            message: message.into(),
        }
    }
}

/// A call the proxy saw and what it did.
#[derive(Debug, Clone)]
pub struct Logged {
    pub call: AwsCall,
    pub reply: AwsReply,
}

type Rule = dyn Fn(&AwsCall) -> AwsReply + Send + Sync;

struct Shared {
    upstream: SocketAddr,
    rule: Box<Rule>,
    log: Mutex<Vec<Logged>>,
    stopping: AtomicBool,
    /// Held while a call is forwarded (see the module's comment).
    upstream_lock: Mutex<()>,
}

/// The proxy on `127.0.0.1:<free port>`; stops when dropped.
pub struct AwsProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl AwsProxy {
    /// Forwards to `upstream` whatever `rule` says to forward.
    pub fn start(
        upstream: SocketAddr,
        rule: impl Fn(&AwsCall) -> AwsReply + Send + Sync + 'static,
    ) -> io::Result<AwsProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rule: Box::new(rule),
            log: Mutex::default(),
            stopping: AtomicBool::new(false),
            upstream_lock: Mutex::default(),
        });
        let listener = thread::Builder::new().name("aws-proxy".into()).spawn({
            let shared = Arc::clone(&shared);
            move || {
                for conn in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = Arc::clone(&shared);
                    let _ = thread::Builder::new()
                        .name("aws-proxy-conn".into())
                        .spawn(move || {
                            let _ = serve(conn, &shared);
                        });
                }
            }
        })?;
        Ok(AwsProxy {
            addr,
            shared,
            listener: Some(listener),
        })
    }

    /// The endpoint to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, in the order they arrived.
    pub fn log(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for AwsProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the listener blocked in accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// A request or response head: the start line and the header lines.
struct Head {
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head as bytes, with `Connection: close` instead of whatever
    /// the sender said.
    fn closing(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("keep-alive") {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut start = String::new();
    if reader.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "head cut short",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head {
        start: start.trim_end_matches(['\r', '\n']).to_string(),
        headers,
    }))
}

fn read_body(reader: &mut impl Read, head: &Head) -> io::Result<Vec<u8>> {
    if head
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        return Err(io::Error::other("chunked bodies are not supported"));
    }
    let len: usize = head
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(io::Error::other("body too large"));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let body = read_body(&mut reader, &head)?;
    let target = head.get("x-amz-target").unwrap_or_default().to_string();
    let call = {
        let log = shared.log.lock().unwrap_or_else(PoisonError::into_inner);
        AwsCall {
            nth: log.iter().filter(|l| l.call.target == target).count() as u64,
            target,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    let reply = (shared.rule)(&call);
    shared
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Logged {
            call,
            reply: reply.clone(),
        });
    let mut client = client;
    match reply {
        AwsReply::Error {
            status,
            error_type,
            message,
        } => {
            let json = format!(
                "{{\"__type\":{},\"message\":{}}}",
                json_string(&error_type),
                json_string(&message)
            );
            let answer = format!(
                "HTTP/1.1 {status} Error\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 Content-Length: {}\r\nx-amzn-RequestId: aws-proxy-{}\r\nConnection: close\r\n\r\n{json}",
                json.len(),
                crate::random()
            );
            client.write_all(answer.as_bytes())?;
        }
        AwsReply::Answer {
            status,
            content_type,
            body,
        } => {
            let answer = format!(
                "HTTP/1.1 {status} Answer\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nx-amzn-RequestId: aws-proxy-{}\r\nConnection: close\r\n\r\n{body}",
                body.len(),
                crate::random()
            );
            client.write_all(answer.as_bytes())?;
        }
        AwsReply::Forward => {
            let (response, rest) = forward(shared, &head, &body)?;
            client.write_all(&response.closing())?;
            client.write_all(&rest)?;
        }
        AwsReply::FailRecords(failed) => {
            let (request, kept) = drop_records(&body, &failed)?;
            let mut head = head;
            set_header(&mut head, "Content-Length", &request.len().to_string());
            let (mut response, rest) = forward(shared, &head, &request)?;
            let rest = if response.start.contains(" 200 ") {
                fail_records(&rest, &kept)?
            } else {
                rest
            };
            set_header(&mut response, "Content-Length", &rest.len().to_string());
            client.write_all(&response.closing())?;
            client.write_all(&rest)?;
        }
    }
    client.flush()
}

/// Sends a request upstream; returns the answer's head and body.
fn forward(shared: &Shared, head: &Head, body: &[u8]) -> io::Result<(Head, Vec<u8>)> {
    let _one_at_a_time = shared
        .upstream_lock
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut upstream = TcpStream::connect_timeout(&shared.upstream, IO_TIMEOUT)?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    upstream.write_all(&head.closing())?;
    upstream.write_all(body)?;
    let mut answer = BufReader::new(upstream);
    let response = read_head(&mut answer)?
        .ok_or_else(|| io::Error::other("upstream closed without answering"))?;
    let mut rest = Vec::new();
    answer.take(MAX_BODY as u64).read_to_end(&mut rest)?;
    Ok((response, rest))
}

fn set_header(head: &mut Head, name: &str, value: &str) {
    head.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    head.headers.push((name.to_string(), value.to_string()));
}

/// A PutRecords request without the records at `failed`; and, for each
/// record of the original request, whether it was kept.
fn drop_records(body: &[u8], failed: &[usize]) -> io::Result<(Vec<u8>, Vec<bool>)> {
    let mut request: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| io::Error::other(format!("PutRecords: {e}")))?;
    let records = request
        .get_mut("Records")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| io::Error::other("PutRecords without Records"))?;
    let kept: Vec<bool> = (0..records.len()).map(|i| !failed.contains(&i)).collect();
    let mut i = 0;
    records.retain(|_| {
        let keep = kept[i];
        i += 1;
        keep
    });
    Ok((request.to_string().into_bytes(), kept))
}

/// The answer to the whole request from the answer to the kept records:
/// the dropped ones failed in place.
fn fail_records(body: &[u8], kept: &[bool]) -> io::Result<Vec<u8>> {
    let answer: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| io::Error::other(format!("PutRecords answer: {e}")))?;
    let mut results = answer
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter();
    let upstream_failed = answer
        .get("FailedRecordCount")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let mut records = Vec::with_capacity(kept.len());
    let mut failed = 0;
    for &k in kept {
        if k {
            records.push(results.next().unwrap_or(serde_json::Value::Null));
        } else {
            failed += 1;
            records.push(serde_json::json!({
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": "Rate exceeded for shard shardId-000000000000 (injected by AwsProxy)",
            }));
        }
    }
    let mut out = answer;
    out["Records"] = serde_json::Value::Array(records);
    out["FailedRecordCount"] = serde_json::json!(upstream_failed + failed);
    Ok(out.to_string().into_bytes())
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_request;

    /// A one-shot upstream that echoes the request's body in its answer.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let head = read_head(&mut reader).unwrap().unwrap();
                let body = read_body(&mut reader, &head).unwrap();
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                    body.len() + 5
                );
                let _ = conn.write_all(b"echo:");
                let _ = conn.write_all(&body);
            }
        });
        addr
    }

    #[test]
    fn forwards_or_answers_with_the_services_error_shape() {
        let proxy = AwsProxy::start(echo_server(), |call| {
            if call.target.ends_with(".GetRecords") && call.nth == 0 {
                AwsReply::error("ExpiredIteratorException", "Iterator \"x\" expired")
            } else {
                AwsReply::Forward
            }
        })
        .unwrap();
        let target = [("X-Amz-Target", "Kinesis_20131202.GetRecords")];
        let (status, body) =
            http_request(proxy.addr, "POST", "/", &target, Some("{\"a\":1}")).unwrap();
        assert_eq!(status, 400);
        assert_eq!(
            body,
            r#"{"__type":"ExpiredIteratorException","message":"Iterator \"x\" expired"}"#
        );
        let (status, body) =
            http_request(proxy.addr, "POST", "/", &target, Some("{\"a\":2}")).unwrap();
        assert_eq!((status, body.as_str()), (200, "echo:{\"a\":2}"));
        let log = proxy.log();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].call.nth, 1);
        assert_eq!(log[1].call.body, "{\"a\":2}");
        assert_eq!(log[1].reply, AwsReply::Forward);
    }

    #[test]
    fn a_partial_failure_drops_the_named_records_and_fails_them_in_place() {
        let body =
            br#"{"StreamName":"s","Records":[{"Data":"YQ=="},{"Data":"Yg=="},{"Data":"Yw=="}]}"#;
        let (request, kept) = drop_records(body, &[1]).unwrap();
        let request: serde_json::Value = serde_json::from_slice(&request).unwrap();
        assert_eq!(
            request["Records"],
            serde_json::json!([{"Data":"YQ=="},{"Data":"Yw=="}])
        );
        assert_eq!(request["StreamName"], "s");
        assert_eq!(kept, [true, false, true]);
        let upstream = br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1","ShardId":"a"},{"SequenceNumber":"2","ShardId":"b"}]}"#;
        let answer: serde_json::Value =
            serde_json::from_slice(&fail_records(upstream, &kept).unwrap()).unwrap();
        assert_eq!(answer["FailedRecordCount"], 1);
        let records = answer["Records"].as_array().unwrap();
        assert_eq!(records[0]["SequenceNumber"], "1");
        assert_eq!(
            records[1]["ErrorCode"],
            "ProvisionedThroughputExceededException"
        );
        assert!(records[1].get("SequenceNumber").is_none());
        assert_eq!(records[2]["SequenceNumber"], "2");
    }
}
