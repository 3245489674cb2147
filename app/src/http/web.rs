//! The fans' web page: one HTML shell, a script, the proof-of-work worker, a
//! stylesheet and one string catalog per language (`en.json`, `ko.json`),
//! all compiled into the binary (nothing from a CDN). The shell is served in
//! the language `Accept-Language` prefers; the page then keeps the fan's own
//! choice.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::AppError;
use super::openapi::errors;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");
const POW_WORKER: &str = include_str!("../../web/pow-worker.js");
const EN: &str = include_str!("../../web/en.json");
const KO: &str = include_str!("../../web/ko.json");

/// The page's languages; the first is the fallback for a missing string.
const LANGUAGES: [(&str, &str); 2] = [("en", EN), ("ko", KO)];

type Catalog = BTreeMap<String, String>;

/// The shell in each language, filled in once.
static SHELLS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    let english: Catalog = serde_json::from_str(EN).unwrap_or_default();
    LANGUAGES
        .iter()
        .map(|&(lang, text)| {
            let catalog: Catalog = serde_json::from_str(text).unwrap_or_default();
            (lang, fill(INDEX, lang, &catalog, &english))
        })
        .collect()
});

/// `{{lang}}` and `{{t:key}}` of the shell, from `catalog`, else English.
fn fill(shell: &str, lang: &str, catalog: &Catalog, english: &Catalog) -> String {
    let mut out = shell.replace("{{lang}}", lang);
    while let Some(start) = out.find("{{t:") {
        let Some(len) = out[start..].find("}}") else {
            break;
        };
        let key = &out[start + 4..start + len];
        let text = catalog.get(key).or_else(|| english.get(key));
        let text = text.map(String::as_str).unwrap_or(key).to_string();
        out.replace_range(start..start + len + 2, &text);
    }
    out
}

/// The first of the page's languages the `Accept-Language` header names,
/// by its weights (`ko-KR,ko;q=0.9,en;q=0.8`); English without a match.
pub fn pick_language(accept: Option<&str>) -> &'static str {
    let mut best: Option<(f32, &'static str)> = None;
    for (tag, q) in super::weighted(accept.unwrap_or("")) {
        let primary = tag.split('-').next().unwrap_or("");
        if let Some(&(lang, _)) = LANGUAGES.iter().find(|(l, _)| *l == primary) {
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
    }
    best.map(|(_, l)| l).unwrap_or("en")
}

errors!(AssetErrors: NotFound);

/// The page's files (in the document only: the path is matched by name).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum AssetName {
    #[serde(rename = "app.js")]
    AppJs,
    #[serde(rename = "style.css")]
    StyleCss,
    #[serde(rename = "pow-worker.js")]
    PowWorkerJs,
    #[serde(rename = "en.json")]
    EnJson,
    #[serde(rename = "ko.json")]
    KoJson,
}

fn page(headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = pick_language(accept);
    let shell = SHELLS
        .iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, s)| s.clone())
        .unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::VARY, "Accept-Language"),
        ],
        shell,
    )
        .into_response()
}

/// The fans' web page: the list of events.
#[utoipa::path(
    get, path = "/", operation_id = "pageHome", tag = "page",
    responses((status = 200, description = "HTML.", body = String, content_type = "text/html"))
)]
pub async fn home(headers: HeaderMap) -> Response {
    page(&headers)
}

/// The fans' web page for one event: join, live position, seats, hold,
/// confirm (the page reads its route itself).
#[utoipa::path(
    get, path = "/events/{event_id}", operation_id = "pageEvent", tag = "page",
    params(("event_id" = String, Path, description = "The event; the page reports an unknown one itself.")),
    responses((status = 200, description = "HTML.", body = String, content_type = "text/html"))
)]
pub async fn event_page(headers: HeaderMap) -> Response {
    page(&headers)
}

/// The page's scripts, stylesheet and string catalogs (compiled into the
/// binary).
#[utoipa::path(
    get, path = "/assets/{file}", operation_id = "asset", tag = "page",
    params(("file" = AssetName, Path, description = "The file.")),
    responses(
        (status = 200, description = "The file.", content((String = "text/javascript"), (String = "text/css"), (std::collections::BTreeMap<String, String> = "application/json"))),
        AssetErrors,
    )
)]
pub async fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "pow-worker.js" => (POW_WORKER, "text/javascript; charset=utf-8"),
        "en.json" => (EN, "application/json"),
        "ko.json" => (KO, "application/json"),
        _ => return Err(AppError::not_found("no such asset")),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn catalog(text: &str) -> Catalog {
        serde_json::from_str(text).expect("a catalog is a flat JSON object of strings")
    }

    /// `"a.b"`-shaped string literals and `t("…")` keys of the script.
    fn keys_in_script(js: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for (i, _) in js.match_indices('"') {
            let rest = &js[i + 1..];
            let Some(end) = rest.find('"') else { continue };
            let lit = &rest[..end];
            let shaped = lit.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && lit
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c == b'_' || c == b'.')
            });
            if shaped && lit.matches('.').count() == 1 {
                keys.insert(lit.to_string());
            }
        }
        keys
    }

    /// `` `prefix.${…}` ``: keys the script builds (every catalog key with
    /// that prefix counts as used).
    fn dynamic_prefixes(js: &str) -> Vec<String> {
        js.match_indices("`")
            .filter_map(|(i, _)| {
                let rest = &js[i + 1..];
                let (prefix, _) = rest.split_once(".${")?;
                prefix
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'_')
                    .then(|| format!("{prefix}."))
            })
            .filter(|p| p.len() > 1)
            .collect()
    }

    #[test]
    fn every_string_of_the_page_is_in_every_catalog_and_every_entry_is_used() {
        let english = catalog(EN);
        let mut used = keys_in_script(APP_JS);
        for (at, _) in INDEX.match_indices("{{t:") {
            let key = &INDEX[at + 4..];
            used.insert(key[..key.find("}}").unwrap()].to_string());
        }
        assert!(used.len() > 50, "{used:?}");
        let prefixes = dynamic_prefixes(APP_JS);
        assert!(prefixes.contains(&"status.".to_string()), "{prefixes:?}");
        for (lang, text) in LANGUAGES {
            let c = catalog(text);
            let missing: Vec<_> = used.iter().filter(|k| !c.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{lang}.json lacks {missing:?}");
            let extra: Vec<_> = c.keys().filter(|k| !english.contains_key(*k)).collect();
            assert!(
                extra.is_empty(),
                "{lang}.json has keys en.json lacks: {extra:?}"
            );
            let unused: Vec<_> = c
                .keys()
                .filter(|k| !used.contains(*k) && !prefixes.iter().any(|p| k.starts_with(p)))
                .collect();
            assert!(
                unused.is_empty(),
                "{lang}.json has unused strings: {unused:?}"
            );
            assert!(
                c.values().all(|v| !v.trim().is_empty()),
                "{lang}: an empty string"
            );
        }
    }

    #[test]
    fn the_shell_speaks_the_language_accept_language_prefers() {
        assert_eq!(pick_language(Some("ko-KR,ko;q=0.9,en-US;q=0.8")), "ko");
        assert_eq!(pick_language(Some("en-US,en;q=0.9,ko;q=0.8")), "en");
        assert_eq!(pick_language(Some("fr-FR,ko;q=0.5")), "ko");
        assert_eq!(pick_language(Some("ja,fr")), "en");
        assert_eq!(pick_language(Some("ko;q=0")), "en");
        assert_eq!(pick_language(None), "en");
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_LANGUAGE, "ko-KR".parse().unwrap());
        let shell = &SHELLS.iter().find(|(l, _)| *l == "ko").unwrap().1;
        assert!(shell.contains(r#"<html lang="ko">"#));
        assert!(shell.contains(&catalog(KO)["page.loading"]));
        assert!(!shell.contains("{{"), "every placeholder is filled");
        assert_eq!(page(&h).headers()[header::VARY], "Accept-Language");
    }

    #[test]
    fn a_missing_translation_falls_back_to_english() {
        let english = catalog(EN);
        let partial = Catalog::new();
        let out = fill("<p>{{t:page.loading}}</p>", "ko", &partial, &english);
        assert_eq!(out, format!("<p>{}</p>", english["page.loading"]));
    }
}
