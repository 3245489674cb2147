//! `GET /api/v1/openapi.json`, generated: each handler's `#[utoipa::path]`
//! names its route, parameters, body and answers; the body types are the
//! types that make the JSON; each operation's errors are a list of
//! [`ErrorCode`]s (each code has one status). The router is built from the
//! same annotations (`utoipa_axum::routes!`), so a route cannot exist
//! without its documentation. What depends on this service's settings (the
//! seats one ticket may hold) is written in when the router is built.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Response as OpenApiResponse};
use utoipa::{IntoParams, Modify, OpenApi};

use super::error::{ErrorBody, ErrorCode, EVENT_BODY_BYTES, MAX_BODY_BYTES};

/// Declares the errors an operation answers with, as a type for the
/// `responses(...)` of its `#[utoipa::path]`.
macro_rules! errors {
    ($(#[$doc:meta])* $name:ident: $($code:ident),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                $crate::http::openapi::error_responses(&[
                    $($crate::http::error::ErrorCode::$code),+
                ])
            }
        }
    };
}
pub(crate) use errors;

/// The responses of `codes`, one per status: the error shape with `code`
/// restricted to the codes of that status, `Retry-After` where it applies.
pub fn error_responses(codes: &[ErrorCode]) -> BTreeMap<String, RefOr<OpenApiResponse>> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in codes {
        by_status
            .entry(code.status().as_u16())
            .or_default()
            .push(code);
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let description = codes
                .iter()
                .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
                .collect::<Vec<_>>()
                .join("; ");
            let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
            let mut response = json!({
                "description": format!("{description}."),
                "content": {"application/json": {"schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Error"},
                        {"type": "object", "properties": {"error": {"type": "object", "properties": {
                            "code": {"type": "string", "enum": names}
                        }}}}
                    ]
                }}}
            });
            if codes.iter().any(|c| c.retries()) {
                response["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "minimum": 1}
                }});
            }
            let response: OpenApiResponse =
                serde_json::from_value(response).expect("a well-formed response object");
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// `{event_id}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EventParam {
    /// The event (also its queue's id).
    #[param(pattern = "^[a-z0-9-]{1,64}$")]
    event_id: String,
}

/// `{event_id}` and `{ticket}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct TicketParams {
    /// The event (also its queue's id).
    #[param(pattern = "^[a-z0-9-]{1,64}$")]
    event_id: String,
    /// The ticket the join returned.
    #[param(pattern = "^[A-Za-z0-9_-]{22}$")]
    ticket: String,
}

/// `{hold_id}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct HoldParam {
    /// The hold's id, as the hold returned it.
    #[param(pattern = "^[A-Za-z0-9_-]{22}$")]
    hold_id: String,
}

/// `{reservation_id}`
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ReservationParam {
    /// The reservation's id, as the confirm returned it.
    #[param(pattern = "^[A-Za-z0-9_-]{22}$")]
    reservation_id: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut admin = Http::new(HttpAuthScheme::Bearer);
        admin.description = Some("One of ADMIN_TOKEN.".into());
        components.add_security_scheme("admin", SecurityScheme::Http(admin));
        let mut admission = Http::new(HttpAuthScheme::Bearer);
        admission.bearer_format = Some("JWT".into());
        admission.description =
            Some("The fan's admission token (ES256; keys at /.well-known/jwks.json).".into());
        components.add_security_scheme("admission", SecurityScheme::Http(admission));
    }
}

/// What the routes do not declare themselves: the title, the conventions,
/// the security schemes and the schemas no route names as a body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Admission (virtual waiting room)",
        description = "Admits fans up to a capacity, queues the rest fairly and pushes each one's live position; admitted fans hold and reserve seats. Timestamps are RFC 3339 in UTC; durations are whole seconds. Fields that do not apply to a state are absent, except `estimated_wait_seconds`, which is null when there is no rate to divide by. Every error is `{\"error\":{\"code\",\"message\"}}`; `Retry-After` accompanies 429 and 503."
    ),
    components(schemas(ErrorBody, ErrorCode, super::api::WsMessage, super::web::AssetName)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// The finished document, as served.
#[derive(Clone)]
pub struct Document(pub Arc<Value>);

/// The settings of this service that the document states.
pub struct Facts {
    pub max_seats_per_ticket: u32,
}

/// Writes this service's figures into the generated document.
pub fn finish(doc: utoipa::openapi::OpenApi, facts: &Facts) -> Value {
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    v["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let max = facts.max_seats_per_ticket;
    let hold = &mut v["components"]["schemas"]["HoldRequest"];
    if hold.is_object() {
        hold["properties"]["quantity"]["maximum"] = json!(max);
        hold["properties"]["seat_ids"]["maxItems"] = json!(max);
        hold["description"] = json!(format!(
            "Exactly one of seat_ids or quantity; a ticket may hold and reserve at most \
             {max} seats of an event (MAX_SEATS_PER_TICKET)."
        ));
    }
    rules_across_fields(&mut v["components"]["schemas"]);
    text_rules(&mut v["components"]["schemas"]);
    if let Some(paths) = v["paths"].as_object_mut() {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                if let Some(r) = op.pointer_mut("/responses/413/description") {
                    *r = json!(format!(
                        "`payload_too_large`: the body is over {MAX_BODY_BYTES} bytes \
                         ({EVENT_BODY_BYTES} for a new event)."
                    ));
                }
            }
        }
    }
    v
}

/// The rules of request bodies that bind two fields, which the derives
/// cannot state. A field is given when it is present and not null.
fn rules_across_fields(schemas: &mut Value) {
    let given =
        |field: &str, ty: &str| json!({"required": [field], "properties": {field: {"type": ty}}});
    let rules = [
        (
            "CreateEvent",
            "oneOf",
            json!([given("seat_map", "object"), given("seats", "array")]),
        ),
        (
            "HoldRequest",
            "oneOf",
            json!([given("seat_ids", "array"), given("quantity", "integer")]),
        ),
        (
            "QueueConfigRequest",
            "not",
            json!({
                "required": ["capacity", "sessions_per_replica"],
                "properties": {"capacity": {"type": "integer"}, "sessions_per_replica": {"type": "integer"}}
            }),
        ),
        (
            "JoinRequest",
            "anyOf",
            json!([
                given("client_id", "string"),
                given("identity_token", "string")
            ]),
        ),
    ];
    for (name, keyword, rule) in rules {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert(keyword.into(), rule);
        }
    }
}

/// What text fields may hold, written once here for the fields that share
/// a rule: names the catalog trims and stores (`booking::catalog`: some
/// character that is not white space, no control character), and the
/// queue's message (no control character but a line break).
fn text_rules(schemas: &mut Value) {
    const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";
    let printable = format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$");
    let message = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$".to_string();
    let fields = [
        ("CreateEvent", "name", &printable),
        ("CreateEvent", "venue", &printable),
        ("PatchEvent", "name", &printable),
        ("PatchEvent", "venue", &printable),
        ("SeatSpec", "price_tier", &printable),
        ("QueueConfigRequest", "message", &message),
    ];
    for (name, field, pattern) in fields {
        if let Some(prop) = schemas
            .pointer_mut(&format!("/{name}/properties/{field}"))
            .and_then(Value::as_object_mut)
        {
            prop.insert("pattern".into(), json!(pattern));
        }
    }
}

/// `GET /api/v1/openapi.json`
#[utoipa::path(
    get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "ops",
    responses((status = 200, description = "This document (OpenAPI 3.1).", body = serde_json::Value, content_type = "application/json"))
)]
pub async fn document(Extension(doc): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&*doc.0).unwrap_or_default(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::http::UNLISTED_CODES;

    /// The document as the API served it before it was generated
    /// (2026-11-23): the contract the generated one must keep.
    const BEFORE: &str = include_str!("../../tests/fixtures/openapi-2026-11-23.json");

    fn generated() -> Value {
        crate::http::document(&Facts {
            max_seats_per_ticket: 8,
        })
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if method != "parameters" {
                    out.push((path.clone(), method.clone(), op));
                }
            }
        }
        out
    }

    /// Error codes an old response named: the backquoted words of its
    /// description that are codes.
    fn described_codes(response: &Value, known: &BTreeSet<String>) -> BTreeSet<String> {
        let text = response["description"].as_str().unwrap_or("");
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| known.contains(*w))
            .map(str::to_string)
            .collect()
    }

    /// Error codes a generated response allows.
    fn allowed_codes(response: &Value) -> BTreeSet<String> {
        response
            .pointer(
                "/content/application~1json/schema/allOf/1/properties/error/properties/code/enum",
            )
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn nothing_of_the_hand_written_contract_is_lost() {
        let before: Value = serde_json::from_str(BEFORE).unwrap();
        let now = generated();
        let known: BTreeSet<String> = before
            .pointer("/components/schemas/Error/properties/error/properties/code/enum")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        let mut checked = 0;
        for (path, method, op) in operations(&before) {
            let new_op = &now["paths"][&path][&method];
            assert!(new_op.is_object(), "{method} {path} is gone");
            for (status, response) in op["responses"].as_object().unwrap() {
                let new_response = &new_op["responses"][status];
                assert!(
                    new_response.is_object(),
                    "{method} {path} lost its {status} answer"
                );
                let lost: Vec<String> = described_codes(response, &known)
                    .difference(&allowed_codes(new_response))
                    .cloned()
                    .collect();
                assert!(
                    lost.is_empty(),
                    "{method} {path} {status} lost the codes {lost:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} answers compared");
        // Every code of the old list still exists.
        let all: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        assert!(known.is_subset(&all), "{:?}", known.difference(&all));
    }

    #[test]
    fn every_error_code_is_documented_somewhere() {
        let now = generated();
        let mut used = BTreeSet::new();
        for (_, _, op) in operations(&now) {
            for response in op["responses"].as_object().unwrap().values() {
                used.extend(allowed_codes(response));
            }
        }
        for code in ErrorCode::ALL {
            assert!(
                used.contains(code.as_str()) || UNLISTED_CODES.contains(&code),
                "{} is answered by no documented operation",
                code.as_str()
            );
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_is_named() {
        let now = generated();
        let text = now.to_string();
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap();
            let pointer = target.trim_start_matches('#');
            assert!(now.pointer(pointer).is_some(), "dangling {target}");
        }
        let mut ids = BTreeSet::new();
        for (path, method, op) in operations(&now) {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_string()),
                "{method} {path}: operationId {id} twice"
            );
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(op["tags"].is_array(), "{method} {path} has no tag");
        }
        assert_eq!(now["openapi"], "3.1.0");
    }

    #[test]
    fn the_document_states_this_services_figures() {
        let doc = crate::http::document(&Facts {
            max_seats_per_ticket: 3,
        });
        let hold = &doc["components"]["schemas"]["HoldRequest"];
        assert_eq!(hold["properties"]["quantity"]["maximum"], 3);
        assert_eq!(hold["properties"]["seat_ids"]["maxItems"], 3);
        let too_large = doc
            .pointer("/paths/~1api~1v1~1admin~1events/post/responses/413/description")
            .and_then(Value::as_str)
            .unwrap();
        assert!(
            too_large.contains(&MAX_BODY_BYTES.to_string()),
            "{too_large}"
        );
        assert!(
            too_large.contains(&EVENT_BODY_BYTES.to_string()),
            "{too_large}"
        );
    }

    /// Whether `body` gives every field a branch of a rule requires, with
    /// its type (the only shape `rules_across_fields` writes).
    fn gives(branch: &Value, body: &Value) -> bool {
        let is = |v: &Value, ty: &str| match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "integer" => v.is_i64(),
            _ => v.is_string(),
        };
        branch["required"].as_array().unwrap().iter().all(|f| {
            let f = f.as_str().unwrap();
            let ty = branch["properties"][f]["type"].as_str().unwrap();
            body.get(f).is_some_and(|v| is(v, ty))
        })
    }

    #[test]
    fn the_rules_across_fields_are_the_validated_ones() {
        let doc = generated();
        let schemas = &doc["components"]["schemas"];
        let map = json!({"rows": 1, "seats_per_row": 1});
        let list = json!([{"section": "s", "row": "r", "number": 1, "price_tier": "t"}]);
        let one_of = schemas["CreateEvent"]["oneOf"].as_array().unwrap();
        for (seat_map, seats) in [
            (Some(&map), None),
            (None, Some(&list)),
            (Some(&map), Some(&list)),
            (None, None),
            (Some(&Value::Null), Some(&list)),
        ] {
            let mut body = json!({"id": "e", "name": "n", "venue": "v",
                "starts_at": "2030-01-01T00:00:00Z", "sale_opens_at": "2030-01-01T00:00:00Z"});
            if let Some(m) = seat_map {
                body["seat_map"] = m.clone();
            }
            if let Some(l) = seats {
                body["seats"] = l.clone();
            }
            let documented = one_of.iter().filter(|b| gives(b, &body)).count() == 1;
            let validated =
                serde_json::from_value::<crate::booking::catalog::CreateEvent>(body.clone())
                    .unwrap()
                    .validate()
                    .is_ok();
            assert_eq!(documented, validated, "{body}");
        }
        let not = &schemas["QueueConfigRequest"]["not"];
        for body in [
            json!({"capacity": 5, "sessions_per_replica": 2}),
            json!({"capacity": 5}),
            json!({"capacity": null, "sessions_per_replica": 2}),
            json!({}),
        ] {
            let documented = !gives(not, &body);
            let validated =
                serde_json::from_value::<crate::queue::config::QueueConfigRequest>(body.clone())
                    .unwrap()
                    .validate(true)
                    .is_ok();
            assert_eq!(documented, validated, "{body}");
        }
        // Checked by the handlers (the hold needs a database; the join an
        // identity key): the rules are there.
        assert_eq!(
            schemas["HoldRequest"]["oneOf"],
            json!([
                {"required": ["seat_ids"], "properties": {"seat_ids": {"type": "array"}}},
                {"required": ["quantity"], "properties": {"quantity": {"type": "integer"}}}
            ])
        );
        assert_eq!(
            schemas["JoinRequest"]["anyOf"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn text_fields_state_what_the_api_refuses() {
        let doc = generated();
        let schemas = &doc["components"]["schemas"];
        for (name, field) in [
            ("CreateEvent", "name"),
            ("CreateEvent", "venue"),
            ("PatchEvent", "name"),
            ("PatchEvent", "venue"),
            ("SeatSpec", "price_tier"),
        ] {
            let pattern = schemas[name]["properties"][field]["pattern"]
                .as_str()
                .unwrap_or("");
            assert!(
                pattern.contains("[^\\s\\u0000-\\u001f"),
                "{name}.{field}: {pattern}"
            );
        }
        let message = schemas["QueueConfigRequest"]["properties"]["message"]["pattern"]
            .as_str()
            .unwrap_or("");
        assert!(message.contains("\\u0009\\u000b"), "{message}");
    }

    /// The header parameters of an operation: name → (required, schema).
    fn headers<'a>(
        doc: &'a Value,
        path: &str,
        method: &str,
    ) -> BTreeMap<&'a str, (bool, &'a Value)> {
        let pointer = format!("/paths/{}/{method}/parameters", path.replace('/', "~1"));
        doc.pointer(&pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "header")
            .map(|p| {
                let name = p["name"].as_str().unwrap_or_default();
                (name, (p["required"] == true, &p["schema"]))
            })
            .collect()
    }

    #[test]
    fn the_websocket_names_its_handshake() {
        let doc = generated();
        let ws = headers(&doc, "/api/v1/events/{event_id}/queue/{ticket}/ws", "get");
        let names: Vec<&str> = ws.keys().copied().collect();
        assert_eq!(
            names,
            [
                "Connection",
                "Sec-WebSocket-Key",
                "Sec-WebSocket-Version",
                "Upgrade"
            ]
        );
        assert!(ws.values().all(|(required, _)| *required));
        assert_eq!(ws["Sec-WebSocket-Version"].1["pattern"], "^13$");
    }

    #[test]
    fn an_idempotency_key_is_not_blank() {
        let doc = generated();
        let confirm = headers(&doc, "/api/v1/holds/{hold_id}/confirm", "post");
        let (required, schema) = confirm["Idempotency-Key"];
        assert!(!required);
        assert_eq!(schema["maxLength"], 200);
        assert_eq!(schema["pattern"], "^[\t -~]*[!-~][\t -~]*$");
    }

    /// Routes come only from `documented_routes` (each from its
    /// `#[utoipa::path]`): nothing in the crate adds one past the document.
    #[test]
    fn no_route_is_added_outside_the_document() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![root];
        let mut offenders = Vec::new();
        // Built here so that this test's own text does not match.
        let calls: Vec<String> = ["route", "route_service", "nest", "nest_service", "merge"]
            .iter()
            .map(|c| format!(".{c}("))
            .chain([format!("Router::{}(", "new")])
            .collect();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for call in &calls {
                        if code.contains(call.as_str()) {
                            offenders.push(format!(
                                "{}:{}: {}",
                                path.display(),
                                n + 1,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "routes outside the document: {offenders:#?}"
        );
    }
}
