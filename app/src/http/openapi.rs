//! `GET /api/v1/openapi.json`: every route, body, response and error of the
//! API. A test checks that each route of the router is documented here.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn retry_error(description: &str) -> Value {
    let mut r = error_response(description);
    r["headers"] =
        json!({"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}});
    r
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn event_param() -> Value {
    json!({"name": "event_id", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"}})
}

fn ticket_param() -> Value {
    json!({"name": "ticket", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"}})
}

fn id_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}$"}})
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn build() -> Value {
    let bad = error_response(
        "`invalid_request`: malformed JSON, wrong types, unknown fields or a bad path.",
    );
    let unprocessable =
        error_response("`validation_failed`: well-formed, but a value is out of range.");
    let too_large = error_response("`payload_too_large`: the body is over 16 KiB.");
    let unavailable = retry_error(
        "`unavailable`: the queue store cannot be reached; retry after the given seconds.",
    );
    let event_404 = error_response("`event_not_found`: no queue is configured for this event.");
    let ticket_404 = error_response("`event_not_found` or `ticket_not_found`.");
    let unauthorized = error_response("`unauthorized`: no or a wrong bearer token.");
    let booking_unavailable = retry_error("`booking_disabled` (no database configured: the service runs the waiting room only) or `unavailable` (the database cannot be reached; with Retry-After).");
    let ticket_responses = |ok: Value| {
        json!({
            "200": ok, "400": bad, "404": ticket_404, "503": unavailable
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Admission (virtual waiting room)",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Admits fans up to a capacity, queues the rest fairly and pushes each one's live position. Timestamps are RFC 3339 in UTC; durations are whole seconds. Fields that do not apply to a state are absent, except `estimated_wait_seconds`, which is null when there is no rate to divide by. Every error is `{\"error\":{\"code\",\"message\"}}`; `Retry-After` accompanies 429 and 503."
        },
        "paths": {
            "/api/v1/events/{event_id}/queue": {
                "parameters": [event_param()],
                "post": {
                    "summary": "Join the queue (or get back the place this identity holds).",
                    "operationId": "join",
                    "requestBody": body("JoinRequest"),
                    "responses": {
                        "200": json_response("Admitted at once.", "TicketStatus"),
                        "202": json_response("Queued (or in the pre-queue, with `opens_at`).", "TicketStatus"),
                        "400": bad, "401": error_response("`unauthorized`: the event requires an identity token, or it is invalid."),
                        "404": event_404,
                        "409": error_response("`queue_closed` or `sold_out`: new joins are refused."),
                        "413": too_large, "422": unprocessable,
                        "429": retry_error("`rate_limited`: too many joins from this address this minute."),
                        "503": unavailable
                    }
                },
                "get": {
                    "summary": "Public statistics of the queue.",
                    "operationId": "stats",
                    "responses": {
                        "200": json_response("Statistics.", "QueueStats"),
                        "400": bad, "404": event_404, "503": unavailable
                    }
                }
            },
            "/api/v1/events/{event_id}/queue/{ticket}": {
                "parameters": [event_param(), ticket_param()],
                "get": {
                    "summary": "A ticket's state. A poll counts as presence while queued.",
                    "operationId": "status",
                    "responses": ticket_responses(json_response("The ticket's state.", "TicketStatus"))
                },
                "delete": {
                    "summary": "Leave the queue or end the session at once. Idempotent.",
                    "operationId": "leave",
                    "responses": {
                        "204": {"description": "Left (or had already ended)."},
                        "400": bad, "404": ticket_404, "503": unavailable
                    }
                }
            },
            "/api/v1/events/{event_id}/queue/{ticket}/heartbeat": {
                "parameters": [event_param(), ticket_param()],
                "post": {
                    "summary": "Keep a place (queued) or a session (admitted) alive.",
                    "operationId": "heartbeat",
                    "responses": {
                        "204": {"description": "Alive."},
                        "400": bad, "404": ticket_404,
                        "410": error_response("`gone`: the ticket has expired or left; join again."),
                        "503": unavailable
                    }
                }
            },
            "/api/v1/events/{event_id}/queue/{ticket}/ws": {
                "parameters": [event_param(), ticket_param()],
                "get": {
                    "summary": "WebSocket of JSON text messages: `position`, `admitted`, `sold_out`, `message`, `expired` (see the WsMessage schema). An open socket counts as presence.",
                    "operationId": "websocket",
                    "responses": {
                        "101": {"description": "Switching protocols; messages follow the WsMessage schema."},
                        "400": bad, "404": ticket_404, "503": unavailable
                    }
                }
            },
            "/api/v1/admin/events/{event_id}/queue": {
                "parameters": [event_param()],
                "put": {
                    "summary": "Replace the queue configuration (omitted fields take their defaults); creates the queue or updates it live.",
                    "operationId": "putQueueConfig",
                    "security": [{"admin": []}],
                    "requestBody": body("QueueConfigRequest"),
                    "responses": {
                        "200": json_response("The stored configuration.", "QueueConfig"),
                        "400": bad, "401": unauthorized, "413": too_large, "422": unprocessable, "503": unavailable
                    }
                },
                "get": {
                    "summary": "The stored queue configuration.",
                    "operationId": "getQueueConfig",
                    "security": [{"admin": []}],
                    "responses": {
                        "200": json_response("The stored configuration.", "QueueConfig"),
                        "400": bad, "401": unauthorized, "404": event_404, "503": unavailable
                    }
                }
            },
            "/api/v1/admin/events": {
                "post": {
                    "summary": "Create an event with its seats (a seat_map or a list) and its queue (default settings, opens_at = sale_opens_at).",
                    "operationId": "createEvent",
                    "security": [{"admin": []}],
                    "requestBody": body("CreateEvent"),
                    "responses": {
                        "201": json_response("The event.", "Event"),
                        "400": bad, "401": unauthorized,
                        "409": error_response("`event_exists`: an event with this id exists."),
                        "413": too_large, "422": unprocessable, "503": booking_unavailable
                    }
                }
            },
            "/api/v1/admin/events/{event_id}": {
                "parameters": [event_param()],
                "patch": {
                    "summary": "Update an event (and its cached copies; a new sale_opens_at moves the queue's opens_at).",
                    "operationId": "patchEvent",
                    "security": [{"admin": []}],
                    "requestBody": body("PatchEvent"),
                    "responses": {
                        "200": json_response("The event.", "Event"),
                        "400": bad, "401": unauthorized, "404": event_404, "422": unprocessable, "503": booking_unavailable
                    }
                },
                "delete": {
                    "summary": "Remove an event that has no reservations, with its seats and queue.",
                    "operationId": "deleteEvent",
                    "security": [{"admin": []}],
                    "responses": {
                        "204": {"description": "Removed."},
                        "400": bad, "401": unauthorized, "404": event_404,
                        "409": error_response("`has_reservations`: the event has reservations."),
                        "503": booking_unavailable
                    }
                }
            },
            "/api/v1/events": {
                "get": {
                    "summary": "Every event, soonest first (reader database, cached).",
                    "operationId": "listEvents",
                    "responses": {"200": json_response("Events.", "EventList"), "503": booking_unavailable}
                }
            },
            "/api/v1/events/{event_id}": {
                "parameters": [event_param()],
                "get": {
                    "summary": "One event (reader database, cached).",
                    "operationId": "getEvent",
                    "responses": {"200": json_response("The event.", "Event"), "400": bad, "404": event_404, "503": booking_unavailable}
                }
            },
            "/api/v1/events/{event_id}/seats": {
                "parameters": [event_param()],
                "get": {
                    "summary": "The seat map with each seat's status (reader database, cache-aside copy invalidated on every change).",
                    "operationId": "seats",
                    "responses": {"200": json_response("Seats.", "SeatList"), "400": bad, "404": event_404, "503": booking_unavailable}
                }
            },
            "/api/v1/events/{event_id}/holds": {
                "parameters": [event_param()],
                "post": {
                    "summary": "Hold seats (by id, or a quantity of the best adjacent seats in the front-most row that has them). Admitted fans only.",
                    "operationId": "createHold",
                    "security": [{"admission": []}],
                    "requestBody": body("HoldRequest"),
                    "responses": {
                        "201": json_response("Held.", "Hold"),
                        "400": bad, "401": error_response("`unauthorized`: no, malformed, forged or expired admission token."),
                        "403": error_response("`forbidden`: a token of another event, or the admission session has ended."),
                        "404": event_404,
                        "409": error_response("`seat_unavailable`: a seat is taken; nothing was held."),
                        "413": too_large, "422": unprocessable, "503": booking_unavailable
                    }
                }
            },
            "/api/v1/events/{event_id}/reservations": {
                "parameters": [event_param()],
                "get": {
                    "summary": "The fan's own reservations for the event, also after the session ended (until the token's exp).",
                    "operationId": "myReservations",
                    "security": [{"admission": []}],
                    "responses": {
                        "200": json_response("Reservations.", "ReservationList"),
                        "401": unauthorized, "403": error_response("`forbidden`: a token of another event."), "503": booking_unavailable
                    }
                }
            },
            "/api/v1/holds/{hold_id}/confirm": {
                "parameters": [id_param("hold_id"), {"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "maxLength": 200}}],
                "post": {
                    "summary": "Confirm a hold. Confirming the same hold again (with or without the key) returns the same reservation with 200. Ends the fan's admission session.",
                    "operationId": "confirmHold",
                    "security": [{"admission": []}],
                    "responses": {
                        "201": json_response("Reserved.", "Reservation"),
                        "200": json_response("Already reserved: the same reservation.", "Reservation"),
                        "400": bad, "401": unauthorized,
                        "403": error_response("`forbidden`: another fan's hold, or the admission session has ended."),
                        "404": error_response("`not_found`: no such hold."),
                        "410": error_response("`gone`: the hold expired; its seats are free again."),
                        "422": error_response("`validation_failed`: the Idempotency-Key was used for another hold."),
                        "503": booking_unavailable
                    }
                }
            },
            "/api/v1/holds/{hold_id}": {
                "parameters": [id_param("hold_id")],
                "delete": {
                    "summary": "Release a hold (the fan's token or the admin token).",
                    "operationId": "releaseHold",
                    "security": [{"admission": []}, {"admin": []}],
                    "responses": {
                        "204": {"description": "Released."},
                        "400": bad, "401": unauthorized, "403": error_response("`forbidden`: another fan's hold."),
                        "404": error_response("`not_found`: no such hold."),
                        "409": error_response("`hold_confirmed`: the hold is already a reservation."),
                        "503": booking_unavailable
                    }
                }
            },
            "/api/v1/reservations/{reservation_id}": {
                "parameters": [id_param("reservation_id")],
                "get": {
                    "summary": "A reservation (its fan's token or the admin token); read from the writer.",
                    "operationId": "getReservation",
                    "security": [{"admission": []}, {"admin": []}],
                    "responses": {
                        "200": json_response("The reservation.", "Reservation"),
                        "400": bad, "401": unauthorized, "403": error_response("`forbidden`: another fan's reservation."),
                        "404": error_response("`not_found`: no such reservation."), "503": booking_unavailable
                    }
                },
                "delete": {
                    "summary": "Cancel a reservation: its seats are free again (and a sold-out queue reopens).",
                    "operationId": "cancelReservation",
                    "security": [{"admission": []}, {"admin": []}],
                    "responses": {
                        "204": {"description": "Cancelled (or already was)."},
                        "400": bad, "401": unauthorized, "403": error_response("`forbidden`: another fan's reservation."),
                        "404": error_response("`not_found`: no such reservation."), "503": booking_unavailable
                    }
                }
            },
            "/": {
                "get": {
                    "summary": "The fans' web page: the list of events.",
                    "operationId": "pageHome",
                    "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}}
                }
            },
            "/events/{event_id}": {
                "parameters": [{"name": "event_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {
                    "summary": "The fans' web page for one event: join, live position, seats, hold, confirm.",
                    "operationId": "pageEvent",
                    "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}}
                }
            },
            "/assets/{file}": {
                "parameters": [{"name": "file", "in": "path", "required": true, "schema": {"type": "string", "enum": ["app.js", "style.css"]}}],
                "get": {
                    "summary": "The page's script and stylesheet (compiled into the binary).",
                    "operationId": "asset",
                    "responses": {"200": {"description": "The file."}, "404": error_response("`not_found`.")}
                }
            },
            "/.well-known/jwks.json": {
                "get": {
                    "summary": "Public keys (JWK Set) that verify admission tokens (ES256).",
                    "operationId": "jwks",
                    "responses": {"200": {"description": "JWK Set.", "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "operationId": "openapi",
                    "responses": {"200": {"description": "OpenAPI 3 document.", "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            },
            "/health/live": {
                "get": {
                    "summary": "Liveness: the process answers.",
                    "operationId": "live",
                    "responses": {"200": json_response("Alive.", "Health")}
                }
            },
            "/health/ready": {
                "get": {
                    "summary": "Readiness: 503 only when this replica cannot serve the queue (Redis unreachable); `degraded` when an optional dependency is down.",
                    "operationId": "ready",
                    "responses": {
                        "200": json_response("Ready (`ok` or `degraded`).", "Health"),
                        "503": json_response("Not ready.", "Health")
                    }
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics.",
                    "operationId": "metrics",
                    "responses": {"200": {"description": "Text exposition format.", "content": {"text/plain": {"schema": {"type": "string"}}}}}
                }
            }
        },
        "components": {
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "One of ADMIN_TOKEN."},
                "admission": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "The fan's admission token (ES256; keys at /.well-known/jwks.json)."}
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                        "code": {"type": "string", "enum": ["invalid_request", "validation_failed", "unauthorized", "forbidden", "event_not_found", "ticket_not_found", "not_found", "method_not_allowed", "queue_closed", "sold_out", "seat_unavailable", "event_exists", "has_reservations", "hold_confirmed", "gone", "payload_too_large", "rate_limited", "unavailable", "booking_disabled", "internal"]},
                        "message": {"type": "string"}
                    }}}
                },
                "JoinRequest": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "client_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$", "description": "An unguessable random id made by the fan's browser; never a raw account id. Required unless an identity_token is given."},
                        "identity_token": {"type": "string", "description": "ES256 JWT signed by the ticketing site (keys in IDENTITY_KEYS) with `sub` (the identity) and `exp`; required when the event has `require_identity`."}
                    }
                },
                "TicketStatus": {
                    "type": "object", "required": ["ticket", "state"],
                    "properties": {
                        "ticket": {"type": "string", "description": "Opaque 128-bit id."},
                        "state": {"type": "string", "enum": ["queued", "admitted", "sold_out", "expired", "left"]},
                        "position": {"type": "integer", "minimum": 1, "description": "queued (after opening): 1-based place."},
                        "estimated_wait_seconds": {"type": "integer", "nullable": true, "description": "queued: ceil(position / measured admission rate); null when the rate is 0."},
                        "opens_at": {"type": "string", "format": "date-time", "description": "queued in the pre-queue: when the sale opens."},
                        "token": {"type": "string", "description": "admitted: ES256 JWT with event_id, ticket, iat, exp."},
                        "expires_at": {"type": "string", "format": "date-time", "description": "admitted: the session's hard end (the token's exp)."},
                        "message": {"type": "string", "description": "queued or sold_out: the event's notice, when one is set."}
                    }
                },
                "QueueStats": {
                    "type": "object",
                    "required": ["event_id", "mode", "queued", "active", "capacity", "admit_per_second", "admitted_total"],
                    "properties": {
                        "event_id": {"type": "string"},
                        "mode": {"$ref": "#/components/schemas/Mode"},
                        "queued": {"type": "integer"},
                        "active": {"type": "integer"},
                        "capacity": {"type": "integer", "description": "Effective capacity (sessions_per_replica x live replicas, capped, when so configured)."},
                        "admit_per_second": {"type": "integer"},
                        "admitted_total": {"type": "integer"},
                        "opens_at": {"type": "string", "format": "date-time"},
                        "shuffle_seed": {"type": "string", "description": "Hex seed of the last pre-queue draw, to replay it."},
                        "last_admit_at": {"type": "string", "format": "date-time", "description": "Shows that the admission loop is alive."},
                        "message": {"type": "string"}
                    }
                },
                "Mode": {"type": "string", "enum": ["fifo", "random", "passthrough", "paused", "closed", "sold_out"]},
                "QueueConfigRequest": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "capacity": {"type": "integer", "minimum": 0, "maximum": 10000000, "default": 1000},
                        "sessions_per_replica": {"type": "integer", "minimum": 1, "maximum": 1000000, "description": "Instead of capacity: capacity = this x live replicas."},
                        "max_capacity": {"type": "integer", "minimum": 1, "maximum": 10000000, "default": 200000},
                        "admit_per_second": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 100},
                        "session_timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 60},
                        "session_max_seconds": {"type": "integer", "minimum": 1, "maximum": 604800, "default": 900},
                        "queue_idle_timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 60},
                        "mode": {"$ref": "#/components/schemas/Mode"},
                        "opens_at": {"type": "string", "format": "date-time", "nullable": true},
                        "max_joins_per_source_per_minute": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0},
                        "message": {"type": "string", "maxLength": 500, "nullable": true},
                        "require_identity": {"type": "boolean", "default": false}
                    }
                },
                "QueueConfig": {
                    "type": "object",
                    "required": ["event_id", "mode", "admit_per_second", "session_timeout_seconds", "session_max_seconds", "queue_idle_timeout_seconds", "max_joins_per_source_per_minute", "require_identity"],
                    "properties": {
                        "event_id": {"type": "string"},
                        "mode": {"$ref": "#/components/schemas/Mode"},
                        "capacity": {"type": "integer"},
                        "sessions_per_replica": {"type": "integer"},
                        "max_capacity": {"type": "integer"},
                        "admit_per_second": {"type": "integer"},
                        "session_timeout_seconds": {"type": "integer"},
                        "session_max_seconds": {"type": "integer"},
                        "queue_idle_timeout_seconds": {"type": "integer"},
                        "opens_at": {"type": "string", "format": "date-time"},
                        "max_joins_per_source_per_minute": {"type": "integer"},
                        "message": {"type": "string"},
                        "require_identity": {"type": "boolean"}
                    }
                },
                "WsMessage": {
                    "type": "object", "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["position", "admitted", "sold_out", "message", "expired"]},
                        "position": {"type": "integer"},
                        "estimated_wait_seconds": {"type": "integer", "nullable": true},
                        "opens_at": {"type": "string", "format": "date-time"},
                        "token": {"type": "string"},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "text": {"type": "string"}
                    }
                },
                "CreateEvent": {
                    "type": "object", "additionalProperties": false,
                    "required": ["id", "name", "venue", "starts_at", "sale_opens_at"],
                    "properties": {
                        "id": {"type": "string", "pattern": "^[a-z0-9-]{1,64}$", "description": "Also the queue's event_id."},
                        "name": {"type": "string", "maxLength": 200},
                        "venue": {"type": "string", "maxLength": 200},
                        "starts_at": {"type": "string", "format": "date-time"},
                        "sale_opens_at": {"type": "string", "format": "date-time"},
                        "seat_map": {"type": "object", "additionalProperties": false, "required": ["rows", "seats_per_row"],
                            "description": "Section `main`, rows A, B, … and numbers from 1.",
                            "properties": {"rows": {"type": "integer", "minimum": 1, "maximum": 702}, "seats_per_row": {"type": "integer", "minimum": 1, "maximum": 1000}}},
                        "seats": {"type": "array", "maxItems": 100000, "description": "Instead of seat_map.", "items": {
                            "type": "object", "additionalProperties": false, "required": ["section", "row", "number", "price_tier"],
                            "properties": {
                                "section": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,32}$"},
                                "row": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,16}$"},
                                "number": {"type": "integer", "minimum": 1, "maximum": 100000},
                                "price_tier": {"type": "string", "maxLength": 32}}}}
                    }
                },
                "PatchEvent": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "name": {"type": "string"}, "venue": {"type": "string"},
                        "starts_at": {"type": "string", "format": "date-time"},
                        "sale_opens_at": {"type": "string", "format": "date-time"}
                    }
                },
                "Event": {
                    "type": "object", "required": ["id", "name", "venue", "starts_at", "sale_opens_at", "seat_count"],
                    "properties": {
                        "id": {"type": "string"}, "name": {"type": "string"}, "venue": {"type": "string"},
                        "starts_at": {"type": "string", "format": "date-time"},
                        "sale_opens_at": {"type": "string", "format": "date-time"},
                        "seat_count": {"type": "integer"}
                    }
                },
                "EventList": {"type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}},
                "SeatList": {
                    "type": "object", "required": ["seats"],
                    "properties": {"seats": {"type": "array", "items": {
                        "type": "object", "required": ["seat_id", "section", "row", "number", "price_tier", "status"],
                        "properties": {
                            "seat_id": {"type": "string", "description": "`{section}-{row}-{number}`"},
                            "section": {"type": "string"}, "row": {"type": "string"}, "number": {"type": "integer"},
                            "price_tier": {"type": "string"},
                            "status": {"type": "string", "enum": ["available", "held", "reserved"]}}}}}
                },
                "HoldRequest": {
                    "type": "object", "additionalProperties": false,
                    "description": "Exactly one of seat_ids or quantity; at most MAX_SEATS_PER_TICKET (8) seats per ticket.",
                    "properties": {
                        "seat_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "quantity": {"type": "integer", "minimum": 1}
                    }
                },
                "Hold": {
                    "type": "object", "required": ["hold_id", "seat_ids", "expires_at"],
                    "properties": {"hold_id": {"type": "string"}, "seat_ids": {"type": "array", "items": {"type": "string"}}, "expires_at": {"type": "string", "format": "date-time"}}
                },
                "Reservation": {
                    "type": "object", "required": ["reservation_id", "event_id", "seat_ids", "created_at"],
                    "properties": {
                        "reservation_id": {"type": "string"}, "event_id": {"type": "string"},
                        "seat_ids": {"type": "array", "items": {"type": "string"}},
                        "created_at": {"type": "string", "format": "date-time"},
                        "status": {"type": "string", "enum": ["confirmed", "cancelled"], "description": "On reads (not on confirm)."},
                        "cancelled_at": {"type": "string", "format": "date-time"}
                    }
                },
                "ReservationList": {"type": "object", "required": ["reservations"], "properties": {"reservations": {"type": "array", "items": {"$ref": "#/components/schemas/Reservation"}}}},
                "Health": {
                    "type": "object", "required": ["status"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "degraded", "unavailable"]},
                        "replica": {"type": "string"},
                        "dependencies": {"type": "object", "description": "redis and database.", "additionalProperties": {"type": "string", "enum": ["up", "down", "disabled"]}}
                    }
                }
            }
        }
    })
}

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(build)
}

pub async fn document() -> Json<Value> {
    Json(spec().clone())
}
