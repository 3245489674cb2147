//! The served OpenAPI document against the router: every documented
//! operation answers, and the router answers nothing the document lacks.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{AppOptions, Stack};

fn concrete(path: &str) -> String {
    path.replace("{event_id}", "ev")
        .replace("{ticket}", "AAAAAAAAAAAAAAAAAAAAAA")
        .replace("{hold_id}", "AAAAAAAAAAAAAAAAAAAAAA")
        .replace("{reservation_id}", "AAAAAAAAAAAAAAAAAAAAAA")
        .replace("{file}", "app.js")
}

#[tokio::test]
async fn the_router_answers_exactly_the_documented_operations() {
    let stack =
        Stack::standalone_with(AppOptions::default().with("MAX_SEATS_PER_TICKET", "5")).await;
    let api = stack.api();
    api.configure("ev", serde_json::json!({})).await;
    let served = api
        .send(api.http.get(format!("{}/api/v1/openapi.json", api.base())))
        .await;
    assert_eq!(served.status, StatusCode::OK);
    let doc: Value = served.body;
    // What is served is what the code generates, with this service's figures.
    let generated = admission::http::document(&admission::http::openapi::Facts {
        max_seats_per_ticket: 5,
    });
    assert_eq!(doc, generated);
    assert_eq!(
        doc["components"]["schemas"]["HoldRequest"]["properties"]["quantity"]["maximum"],
        5
    );

    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", api.base(), concrete(path));
        for method in &methods {
            let key = method.as_str().to_lowercase();
            let r = api.send(api.http.request(method.clone(), &url)).await;
            if item.get(&key).is_some() {
                documented += 1;
                assert_ne!(r.code(), "not_found", "{method} {path}: {}", r.body);
                assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                // Whatever the answer, it is one the document lists.
                let status = r.status.as_u16().to_string();
                assert!(
                    item[&key]["responses"].get(&status).is_some(),
                    "{method} {path} answered {status}, which it does not document: {}",
                    r.body
                );
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} answers without being documented"
                );
                assert_eq!(r.code(), "method_not_allowed");
            }
        }
    }
    assert!(documented >= 28, "{documented} operations");
    for undocumented in ["/api/v2/events", "/api/v1/nothing", "/events", "/assets"] {
        let r = api
            .send(api.http.get(format!("{}{undocumented}", api.base())))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{undocumented}");
        assert_eq!(r.code(), "not_found");
    }
}
