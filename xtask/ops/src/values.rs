//! The chart's values files, read and changed the way a person would: a
//! key path (`image.tag`) is found by its block-mapping indentation, and a
//! change rewrites only that scalar's line, so comments, order and every
//! other line stay as they were and the commit shows a one-line diff.
//! Only the scalars these commands touch are read; the rest of the file
//! (flow lists, block strings) is left alone, whatever it holds.

use std::path::Path;

/// Where the chart's defaults live, from the repository's root.
pub const CHART_VALUES: &str = "helm/admission/values.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no `{key}` to change (add it by hand once; later changes keep it)")]
    NoKey { path: String, key: String },
}

fn read_text(root: &Path, path: &str) -> Result<String, ValuesError> {
    std::fs::read_to_string(root.join(path)).map_err(|source| ValuesError::Read {
        path: path.to_string(),
        source,
    })
}

/// Where a key path's line is: (line index, indentation, the text after
/// the key's colon).
fn locate<'a>(lines: &[&'a str], keys: &[&str]) -> Option<(usize, usize, &'a str)> {
    let mut depth = 0;
    // The indentation of the mapping we are inside (None: the top level).
    let mut parent_indent: Option<usize> = None;
    let mut child_indent: Option<usize> = None;
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if parent_indent.is_some_and(|p| indent <= p) {
            // Left the mapping without finding the key.
            return None;
        }
        if child_indent.is_some_and(|c| indent != c) {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once(':') else {
            continue;
        };
        if key.trim_matches(['"', '\'']) != keys[depth] {
            continue;
        }
        if depth + 1 == keys.len() {
            return Some((i, indent, rest));
        }
        depth += 1;
        parent_indent = Some(indent);
        child_indent = lines[i + 1..].iter().find_map(|l| {
            let l = l.trim_end_matches(['\n', '\r']);
            let t = l.trim_start();
            (!t.is_empty() && !t.starts_with('#')).then_some(l.len() - t.len())
        });
        if child_indent.is_none_or(|c| c <= indent) {
            return None;
        }
    }
    None
}

/// Splits `rest` (after the colon) into the value and the comment with
/// the spaces before it.
fn split_comment(rest: &str) -> (&str, &str) {
    match rest.find(" #") {
        Some(at) => {
            let value_end = rest[..at].trim_end().len();
            (&rest[..value_end], &rest[value_end..])
        }
        None => (rest, ""),
    }
}

/// The scalar at `keys` in `text` (quotes removed), if the key is there
/// with a scalar value.
pub fn get(text: &str, keys: &[&str]) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (_, _, rest) = locate(&lines, keys)?;
    let (value, _) = split_comment(rest.trim_end_matches(['\n', '\r']));
    let value = value.trim();
    if value.is_empty() || value.starts_with(['[', '{', '|', '>', '&', '*']) {
        return None;
    }
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"));
    }
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return Some(inner.replace("''", "'"));
    }
    Some(value.to_string())
}

/// The scalar at `keys` in the file `path` under `root`.
pub fn read(root: &Path, path: &str, keys: &[&str]) -> Result<Option<String>, ValuesError> {
    Ok(get(&read_text(root, path)?, keys))
}

/// The scalar at `keys` in the environment's values file, else in the
/// chart's defaults (what Helm renders: the environment overrides).
pub fn rendered(
    root: &Path,
    values_file: &str,
    keys: &[&str],
) -> Result<Option<String>, ValuesError> {
    for file in [values_file, CHART_VALUES] {
        if let Some(value) = read(root, file, keys)? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

/// A value to write: a string (quoted when YAML would read it as another
/// type, e.g. a tag of digits) or an integer (the schema wants numbers
/// for replica counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
}

impl Scalar<'_> {
    fn render(&self) -> String {
        match self {
            Scalar::Str(s) => quote(s),
            Scalar::Int(n) => n.to_string(),
        }
    }
}

/// `text` with the scalar at `keys` (a path of block-mapping keys) set to
/// `value`; the line's indentation and trailing comment are kept.
pub fn set(text: &str, keys: &[&str], value: Scalar, path: &str) -> Result<String, ValuesError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let (i, indent, rest) = locate(&lines, keys).ok_or_else(|| ValuesError::NoKey {
        path: path.to_string(),
        key: keys.join("."),
    })?;
    let raw = lines[i];
    let line = raw.trim_end_matches(['\n', '\r']);
    let ending = &raw[line.len()..];
    let (_, comment) = split_comment(rest.trim_end_matches(['\n', '\r']));
    let key = keys[keys.len() - 1];
    let mut out: String = lines[..i].concat();
    out.push_str(&format!(
        "{}{key}: {}{comment}{ending}",
        &line[..indent],
        value.render()
    ));
    out.push_str(&lines[i + 1..].concat());
    Ok(out)
}

/// A scalar as YAML would read back the same string.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
        && !value.starts_with(['-', ':', '@'])
        // A bare number, bool or null would read back as another type.
        && value.parse::<f64>().is_err()
        && !["true", "false", "null", "yes", "no", "on", "off", "~"]
            .contains(&value.to_ascii_lowercase().as_str());
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Sets `keys` to `value` in the file `path` under `root`; returns the
/// previous value.
pub fn set_in_file(
    root: &Path,
    path: &str,
    keys: &[&str],
    value: Scalar,
) -> Result<Option<String>, ValuesError> {
    let text = read_text(root, path)?;
    let before = get(&text, keys);
    let changed = set(&text, keys, value, path)?;
    std::fs::write(root.join(path), changed).map_err(|source| ValuesError::Write {
        path: path.to_string(),
        source,
    })?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# top\nimage:\n  repository: r\n  # Written by deploy.\n  tag: abc1234  # the tag\n\ningress:\n  tag: other\nautoscaling:\n  minReplicas: 2\n";

    #[test]
    fn one_scalar_changes_and_every_other_line_stays() {
        let out = set(TEXT, &["image", "tag"], Scalar::Str("def5678"), "v.yaml").unwrap();
        assert_eq!(
            out,
            TEXT.replace("tag: abc1234  # the tag", "tag: def5678  # the tag")
        );
        let out = set(
            TEXT,
            &["autoscaling", "minReplicas"],
            Scalar::Int(12),
            "v.yaml",
        )
        .unwrap();
        assert!(out.ends_with("  minReplicas: 12\n"), "{out}");
        let out = set(&out, &["image", "tag"], Scalar::Str("1234567"), "v.yaml").unwrap();
        assert!(out.contains("  tag: \"1234567\"  # the tag\n"), "{out}");
        assert_eq!(get(&out, &["image", "tag"]).as_deref(), Some("1234567"));
        assert_eq!(
            get(&out, &["autoscaling", "minReplicas"]).as_deref(),
            Some("12")
        );
        let out = set(TEXT, &["ingress", "tag"], Scalar::Str("0123abc"), "v.yaml").unwrap();
        assert!(out.contains("ingress:\n  tag: 0123abc\n"), "{out}");
        assert!(out.contains("tag: abc1234  # the tag"));
    }

    #[test]
    fn a_missing_key_is_named() {
        let err = set(TEXT, &["image", "digest"], Scalar::Str("x"), "v.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "v.yaml has no `image.digest` to change (add it by hand once; later changes keep it)"
        );
        assert!(set(TEXT, &["nothing", "tag"], Scalar::Str("x"), "v.yaml").is_err());
        assert!(set(
            TEXT,
            &["image", "tag", "deeper"],
            Scalar::Str("x"),
            "v.yaml"
        )
        .is_err());
    }

    #[test]
    fn the_checked_in_values_files_take_a_new_tag() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        for env in ["dev", "prod"] {
            let path = format!("helm/admission/values-{env}.yaml");
            let text = std::fs::read_to_string(root.join(&path)).unwrap();
            let out = set(&text, &["image", "tag"], Scalar::Str("f00d123"), &path).unwrap();
            assert_eq!(get(&out, &["image", "tag"]).as_deref(), Some("f00d123"));
            assert!(get(&text, &["serviceAccount", "roleArn"])
                .is_some_and(|a| a.starts_with("arn:aws:iam::")));
            assert_eq!(get(&text, &["config", "trustedProxies"]), None);
            assert_eq!(out.lines().count(), text.lines().count());
        }
    }
}
