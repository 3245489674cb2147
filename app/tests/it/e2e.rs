//! The fans' page end to end in headless Chromium (Debian `chromium`, driven
//! by npm `playwright-core`; `cargo xtask deps` installs both).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fan_waits_then_is_admitted_and_books_a_seat_in_chromium() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    assert!(
        dir.join("node_modules/playwright-core").is_dir() && devstack::which("chromium").is_some(),
        "headless Chromium is not set up: run `cargo xtask deps` (installs Debian chromium and npm playwright-core)"
    );
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("e2e", json!({"rows": 2, "seats_per_row": 5}))
        .await;
    api.configure("e2e", json!({"capacity": 1})).await;

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("booking.png");
    let _ = std::fs::remove_file(&shot);
    let base = api.base();
    let (script_dir, shot_arg) = (dir.clone(), shot.clone());
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg("booking.mjs")
                .arg(&base)
                .arg("e2e")
                .arg(&shot_arg)
                .current_dir(&script_dir)
                .output()
        }),
    )
    .await
    .expect("the browser run finishes")
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("result line");
    assert_eq!(result["position"], "1");
    let reservation = result["reservation"].as_str().unwrap();
    assert_eq!(
        s.db.sql(&format!(
            "SELECT seat_id FROM reservation_seats WHERE reservation_id = '{reservation}'"
        )),
        "main-A-2",
        "the seat picked in the page is the one booked"
    );
    let size = std::fs::metadata(&shot)
        .expect("a screenshot is kept")
        .len();
    assert!(size > 5_000, "the screenshot has content ({size} bytes)");
    eprintln!("screenshot: {}", shot.display());
}
