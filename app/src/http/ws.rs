//! `GET /api/v1/events/{event_id}/queue/{ticket}/ws`: a fan's live view.
//!
//! Messages (JSON text): `{"type":"position","position","estimated_wait_seconds"}`
//! on connect, on change and at least every 2 s while queued (in the
//! pre-queue `position` is absent and `opens_at` is given);
//! `{"type":"admitted","token","expires_at"}`; `{"type":"sold_out"}`;
//! `{"type":"message","text"}`; `{"type":"expired"}`. The server pings every
//! 20 s, and an open socket counts as presence for the queue and keeps an
//! admitted session alive.

use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use super::api::{admission_token, WsMessage};
use super::error::AppError;
use super::extract::QueuePath;
use super::openapi::{errors, TicketParams};
use super::AppState;
use crate::clock::format_ms;
use crate::queue::hub::{SocketSlot, Update, UpdateError};
use crate::queue::{EventId, Ticket, TicketState, TicketStatus};
use crate::token::AdmissionKeys;

/// Server pings this often (the ALB idle timeout is 60 s).
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// A socket silent (no pong, no message) for this long is closed.
const SILENCE_LIMIT: Duration = Duration::from_secs(75);
/// A waiting fan hears their position at least this often. Updates come
/// every 0.5 s, so 1.5 s keeps the promise of "at least every 2 s".
const POSITION_REFRESH: Duration = Duration::from_millis(1500);

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Closed because a newer socket of the same ticket replaced it.
pub const CLOSE_POLICY: u16 = 1008;

/// What each socket may hold. A waiting fan's socket only receives small
/// JSON messages and sends pings and pongs: small buffers keep an open
/// socket to a few KiB of the replica's memory (tungstenite's defaults are
/// 128 KiB to read and to write).
const READ_BUFFER: usize = 4 * 1024;
const MAX_INCOMING: usize = 4 * 1024;
/// Messages go out at once; a client that leaves this much unread is dropped.
const MAX_UNSENT: usize = 64 * 1024;

/// The WebSocket limits of a replica.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_ticket: usize,
    pub per_replica: usize,
    /// A message (or ping) not written within this is a client that does
    /// not read: the socket is dropped and stops counting as presence.
    pub send_timeout: Duration,
}

/// What has been told to one socket, deciding what to tell it next.
#[derive(Debug, Default)]
pub struct SocketView {
    last_position: Option<(Option<u64>, Option<u64>)>,
    last_position_at: Option<Instant>,
    message: Option<String>,
    admitted_sent: bool,
    sold_out_sent: bool,
}

/// Messages to send, and whether to close afterwards (with a reason).
pub struct Step {
    pub messages: Vec<WsMessage>,
    pub close: Option<&'static str>,
}

impl SocketView {
    pub fn step(
        &mut self,
        keys: &AdmissionKeys,
        event: &EventId,
        status: &Result<TicketStatus, UpdateError>,
        message: Option<&str>,
        now: Instant,
    ) -> Step {
        let mut messages = Vec::new();
        let status = match status {
            Ok(s) => s,
            Err(UpdateError::NotFound) => {
                return Step {
                    messages: vec![WsMessage::Expired],
                    close: Some("expired"),
                }
            }
        };
        let waiting = matches!(
            status.state,
            TicketState::Queued { .. } | TicketState::SoldOut { .. }
        );
        if waiting && self.admitted_sent {
            // A read made before the admission that arrives after its push:
            // an admitted ticket never waits again.
            return Step {
                messages,
                close: None,
            };
        }
        if waiting && message.map(str::to_string) != self.message {
            self.message = message.map(str::to_string);
            messages.push(WsMessage::Message {
                text: message.unwrap_or("").to_string(),
            });
        }
        match &status.state {
            TicketState::Queued {
                position,
                estimated_wait_seconds,
                opens_at_ms,
            } => {
                self.sold_out_sent = false;
                let current = (*position, *estimated_wait_seconds);
                let due = self.last_position != Some(current)
                    || self
                        .last_position_at
                        .is_none_or(|at| now.duration_since(at) >= POSITION_REFRESH);
                if due {
                    messages.push(WsMessage::Position {
                        position: *position,
                        estimated_wait_seconds: *estimated_wait_seconds,
                        opens_at: match position {
                            Some(_) => None,
                            None => opens_at_ms.map(format_ms),
                        },
                    });
                    self.last_position = Some(current);
                    self.last_position_at = Some(now);
                }
                Step {
                    messages,
                    close: None,
                }
            }
            TicketState::SoldOut { .. } => {
                if !self.sold_out_sent {
                    messages.push(WsMessage::SoldOut);
                    self.sold_out_sent = true;
                    self.last_position = None;
                }
                Step {
                    messages,
                    close: None,
                }
            }
            TicketState::Admitted { .. } => {
                if !self.admitted_sent {
                    if let Some((token, expires_at)) = admission_token(keys, event, status) {
                        messages.push(WsMessage::Admitted { token, expires_at });
                        self.admitted_sent = true;
                    }
                }
                Step {
                    messages,
                    close: None,
                }
            }
            TicketState::Expired => Step {
                messages: vec![WsMessage::Expired],
                close: Some("expired"),
            },
            TicketState::Left => Step {
                messages,
                close: Some("left"),
            },
        }
    }
}

errors!(WsErrors: InvalidRequest, EventNotFound, TicketNotFound, Unavailable);

/// WebSocket of JSON text messages: `position`, `admitted`, `sold_out`,
/// `message`, `expired` (the WsMessage schema). An open socket counts as
/// presence.
///
/// Upgrades after a first status read, so that an unknown ticket is a 404
/// and an unreachable Redis a 503, like the other routes.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/queue/{ticket}/ws", operation_id = "websocket", tag = "queue",
    // The handshake (RFC 6455) as the server checks it; without it, a 400.
    params(
        TicketParams,
        ("Connection" = String, Header, pattern = "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]",
            description = "Names `upgrade` (any case)."),
        ("Upgrade" = String, Header, pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$",
            description = "`websocket` (any case)."),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$"),
        ("Sec-WebSocket-Key" = String, Header,
            description = "16 random bytes in base64, which the server only echoes (hashed)."),
    ),
    responses(
        (status = 101, description = "Switching protocols; messages follow the WsMessage schema."),
        WsErrors,
    )
)]
pub async fn connect(
    State(state): State<AppState>,
    path: QueuePath,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let upgrade = upgrade.map_err(|e| {
        AppError::invalid_request(format!("expected a WebSocket upgrade request: {e}"))
    })?;
    let ticket = path.ticket()?.clone();
    let Some(slot) = state.hub.try_reserve(state.websockets.per_replica) else {
        return Err(AppError::unavailable(
            5,
            "this replica holds as many live views as it may; poll the ticket's status instead, or retry",
        ));
    };
    let initial = state.queue.status(&path.event, &ticket, true).await?;
    let event = path.event;
    Ok(upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT)
        .max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| serve(state, event, ticket, initial, socket, slot)))
}

fn text(m: &WsMessage) -> Message {
    Message::Text(serde_json::to_string(m).unwrap_or_default().into())
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Sends one message within the send timeout; false when the socket is
/// gone or the client does not read.
async fn send<S>(tx: &mut S, message: Message, limit: Duration) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(limit, tx.send(message)).await,
        Ok(Ok(()))
    )
}

async fn serve(
    state: AppState,
    event: EventId,
    ticket: Ticket,
    initial: TicketStatus,
    socket: WebSocket,
    _slot: SocketSlot,
) {
    state.metrics.websocket_opened();
    let limit = state.websockets.send_timeout;
    let mut subscription = state
        .hub
        .subscribe(&event, &ticket, state.websockets.per_ticket);
    let (mut tx, mut rx) = socket.split();
    let mut view = SocketView::default();
    let mut shutdown = state.shutdown.clone();
    let keys = state.admission_keys.clone();

    let first_message = initial.message.clone();
    let mut pending = Some(Update {
        status: Ok(initial),
        mode: String::new(),
        message: first_message,
    });
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut last_heard = Instant::now();
    'socket: loop {
        if let Some(update) = pending.take() {
            let step = view.step(
                &keys,
                &event,
                &update.status,
                update.message.as_deref(),
                Instant::now(),
            );
            for m in &step.messages {
                if !send(&mut tx, text(m), limit).await {
                    break 'socket;
                }
            }
            if let Some(reason) = step.close {
                let _ = send(&mut tx, close(CLOSE_NORMAL, reason), limit).await;
                break;
            }
        }
        if *shutdown.borrow() {
            let _ = send(
                &mut tx,
                close(CLOSE_GOING_AWAY, "server shutting down"),
                limit,
            )
            .await;
            break;
        }
        tokio::select! {
            update = subscription.updates.recv() => match update {
                Some(u) => pending = Some(u),
                // The hub let go of this socket: a newer one of the same
                // ticket took its place.
                None => {
                    let _ = send(&mut tx, close(CLOSE_POLICY, "replaced by a newer connection"), limit).await;
                    break;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    let _ = send(&mut tx, close(CLOSE_GOING_AWAY, "no answer to pings"), limit).await;
                    break;
                }
                if !send(&mut tx, Message::Ping(Default::default()), limit).await {
                    break;
                }
            }
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            changed = shutdown.changed() => if changed.is_err() {
                let _ = send(&mut tx, close(CLOSE_GOING_AWAY, "server shutting down"), limit).await;
                break;
            },
        }
    }
    drop(subscription);
    state.metrics.websocket_closed();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySpec;
    use serde_json::{json, Value};

    fn values(step: &Step) -> Vec<Value> {
        step.messages
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect()
    }

    fn keys() -> (tempfile::TempDir, AdmissionKeys) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        crate::token::write_key_pair(&path).unwrap();
        let keys = AdmissionKeys::load(&[KeySpec {
            kid: "k".into(),
            path,
        }])
        .unwrap();
        (dir, keys)
    }

    fn queued(position: u64) -> Result<TicketStatus, UpdateError> {
        Ok(TicketStatus {
            ticket: Ticket::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap(),
            state: TicketState::Queued {
                position: Some(position),
                estimated_wait_seconds: Some(position),
                opens_at_ms: None,
            },
            message: None,
        })
    }

    fn with_state(state: TicketState) -> Result<TicketStatus, UpdateError> {
        let mut s = queued(1).unwrap();
        s.state = state;
        Ok(s)
    }

    /// A client that never reads: the send never completes.
    struct NeverReads;

    impl futures_util::Sink<Message> for NeverReads {
        type Error = std::io::Error;
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
        fn start_send(self: std::pin::Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_given_up_on() {
        let started = tokio::time::Instant::now();
        let sent = send(
            &mut NeverReads,
            text(&WsMessage::SoldOut),
            Duration::from_millis(200),
        )
        .await;
        assert!(!sent);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn positions_are_sent_on_change_and_refreshed() {
        let (_d, keys) = keys();
        let ev = EventId::parse("ev").unwrap();
        let mut view = SocketView::default();
        let t0 = Instant::now();
        let step = view.step(&keys, &ev, &queued(5), None, t0);
        assert_eq!(
            values(&step),
            vec![json!({"type":"position","position":5,"estimated_wait_seconds":5})]
        );
        assert!(view
            .step(
                &keys,
                &ev,
                &queued(5),
                None,
                t0 + Duration::from_millis(500)
            )
            .messages
            .is_empty());
        assert_eq!(
            view.step(
                &keys,
                &ev,
                &queued(4),
                None,
                t0 + Duration::from_millis(600)
            )
            .messages
            .len(),
            1
        );
        assert_eq!(
            view.step(
                &keys,
                &ev,
                &queued(4),
                None,
                t0 + Duration::from_millis(2100)
            )
            .messages
            .len(),
            1
        );
    }

    #[test]
    fn sold_out_is_told_once_and_the_way_back_resends_the_position() {
        let (_d, keys) = keys();
        let ev = EventId::parse("ev").unwrap();
        let mut view = SocketView::default();
        let t0 = Instant::now();
        view.step(&keys, &ev, &queued(3), None, t0);
        let sold = with_state(TicketState::SoldOut { position: Some(3) });
        assert_eq!(
            values(&view.step(&keys, &ev, &sold, None, t0)),
            vec![json!({"type":"sold_out"})]
        );
        assert!(view.step(&keys, &ev, &sold, None, t0).messages.is_empty());
        let back = view.step(&keys, &ev, &queued(3), None, t0);
        assert_eq!(values(&back)[0]["type"], "position");
    }

    #[test]
    fn messages_admission_and_expiry() {
        let (_d, keys) = keys();
        let ev = EventId::parse("ev").unwrap();
        let mut view = SocketView::default();
        let t0 = Instant::now();
        let step = view.step(&keys, &ev, &queued(1), Some("Doors at 8"), t0);
        assert_eq!(
            values(&step)[0],
            json!({"type":"message","text":"Doors at 8"})
        );
        let admitted = with_state(TicketState::Admitted {
            admitted_ms: 1_000,
            expires_ms: 901_000,
        });
        let step = values(&view.step(&keys, &ev, &admitted, None, t0));
        assert_eq!(step[0]["type"], "admitted");
        assert_eq!(step[0]["expires_at"], "1970-01-01T00:15:01Z");
        assert!(view
            .step(&keys, &ev, &admitted, None, t0)
            .messages
            .is_empty());
        let step = view.step(&keys, &ev, &with_state(TicketState::Expired), None, t0);
        assert_eq!(values(&step), vec![json!({"type":"expired"})]);
        assert_eq!(step.close, Some("expired"));
    }
}
