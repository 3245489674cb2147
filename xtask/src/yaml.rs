//! A reader for the small subset of YAML our hand-written files use, so a
//! test can look inside them without a YAML crate in xtask: block mappings,
//! block sequences of scalars, plain, single- and double-quoted scalars,
//! comments. Anything else (flow collections, anchors, block scalars,
//! mappings inside sequences, tabs) is refused with its line number rather
//! than misread. Scalars stay strings (`60`, `true` included). The full
//! schema check of such files is check-jsonschema's (see helm.rs).

/// A YAML node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    Null,
    Str(String),
    Seq(Vec<Yaml>),
    /// Keys in file order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a path of keys.
    pub fn at(&self, path: &[&str]) -> Option<&Yaml> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The scalars of a sequence.
    pub fn strs(&self) -> Vec<&str> {
        match self {
            Yaml::Seq(items) => items.iter().filter_map(Yaml::str).collect(),
            _ => Vec::new(),
        }
    }

    pub fn keys(&self) -> Vec<&str> {
        match self {
            Yaml::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

struct Line {
    number: usize,
    indent: usize,
    text: String,
}

/// Parses a whole document.
pub fn parse(source: &str) -> Result<Yaml, String> {
    let mut lines = Vec::new();
    for (i, raw) in source.lines().enumerate() {
        let number = i + 1;
        if raw.contains('\t') {
            return Err(format!("line {number}: a tab"));
        }
        let text = strip_comment(raw);
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed == "---" {
            continue;
        }
        lines.push(Line {
            number,
            indent: text.len() - trimmed.len(),
            text: trimmed.trim_end().to_string(),
        });
    }
    if lines.is_empty() {
        return Ok(Yaml::Null);
    }
    let mut at = 0;
    let indent = lines[0].indent;
    let doc = block(&lines, &mut at, indent)?;
    match lines.get(at) {
        Some(line) => Err(format!("line {}: unexpected indentation", line.number)),
        None => Ok(doc),
    }
}

/// The line without a comment (` #` outside quotes, or `#` at its start).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev == ' ' => return &line[..i],
            None => {}
        }
        prev = c;
    }
    line
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn block(lines: &[Line], at: &mut usize, indent: usize) -> Result<Yaml, String> {
    if is_item(&lines[*at].text) {
        sequence(lines, at, indent)
    } else {
        mapping(lines, at, indent)
    }
}

/// The block nested under a key or item that had nothing after it.
fn nested(lines: &[Line], at: &mut usize, parent: usize) -> Result<Yaml, String> {
    match lines.get(*at) {
        Some(next) if next.indent > parent => {
            let indent = next.indent;
            block(lines, at, indent)
        }
        _ => Ok(Yaml::Null),
    }
}

fn mapping(lines: &[Line], at: &mut usize, indent: usize) -> Result<Yaml, String> {
    let mut entries: Vec<(String, Yaml)> = Vec::new();
    while let Some(line) = lines.get(*at) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent || is_item(&line.text) {
            return Err(format!("line {}: unexpected indentation", line.number));
        }
        let (key, rest) = split_key(&line.text)
            .ok_or_else(|| format!("line {}: expected `key: value`", line.number))?;
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(format!("line {}: `{key}` appears twice", line.number));
        }
        *at += 1;
        let value = if rest.is_empty() {
            nested(lines, at, indent)?
        } else {
            scalar(rest, line.number)?
        };
        entries.push((key, value));
    }
    Ok(Yaml::Map(entries))
}

fn sequence(lines: &[Line], at: &mut usize, indent: usize) -> Result<Yaml, String> {
    let mut items = Vec::new();
    while let Some(line) = lines.get(*at) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent || !is_item(&line.text) {
            return Err(format!("line {}: unexpected indentation", line.number));
        }
        let rest = line.text[1..].trim_start();
        *at += 1;
        if rest.is_empty() {
            items.push(nested(lines, at, indent)?);
        } else if split_key(rest).is_some() && !rest.starts_with(['"', '\'']) {
            return Err(format!(
                "line {}: a mapping inside a sequence is beyond this reader",
                line.number
            ));
        } else {
            items.push(scalar(rest, line.number)?);
        }
    }
    Ok(Yaml::Seq(items))
}

/// `key: rest` or `key:`; keys are plain or quoted scalars.
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(body) = text.strip_prefix('"') {
        let end = body.find('"')?;
        (body[..end].to_string(), &body[end + 1..])
    } else if let Some(body) = text.strip_prefix('\'') {
        let end = body.find('\'')?;
        (body[..end].to_string(), &body[end + 1..])
    } else {
        let end = text
            .find(": ")
            .or_else(|| text.strip_suffix(':').map(str::len))?;
        (text[..end].to_string(), &text[end..])
    };
    let rest = rest.strip_prefix(':')?;
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((key, rest.trim()))
}

fn scalar(text: &str, number: usize) -> Result<Yaml, String> {
    let refuse = |what: &str| Err(format!("line {number}: {what} is beyond this reader"));
    match text.chars().next() {
        Some('"') => double_quoted(text).ok_or_else(|| format!("line {number}: a bad \"string\"")),
        Some('\'') => {
            let body = text
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix('\''))
                .ok_or_else(|| format!("line {number}: a bad 'string'"))?;
            Ok(Yaml::Str(body.replace("''", "'")))
        }
        Some('[' | '{') => refuse("a flow collection"),
        Some('&' | '*' | '!') => refuse("an anchor, alias or tag"),
        Some('|' | '>') => refuse("a block scalar"),
        _ if text == "~" || text == "null" => Ok(Yaml::Null),
        _ => Ok(Yaml::Str(text.to_string())),
    }
}

fn double_quoted(text: &str) -> Option<Yaml> {
    let body = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                other => other,
            }),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(Yaml::Str(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mappings_sequences_and_scalars() {
        let doc = parse(
            "# top\nname: demo\nservices:\n  web:\n    image: \"nginx:1.27\"  # pinned\n    \
             ports:\n      - \"127.0.0.1:80:80\"\n      - '8443'\n    command:\n      - a # b\n      - \"x \\\"y\\\"\"\n    \
             empty:\nvolumes:\n  data:\n",
        )
        .unwrap();
        assert_eq!(doc.at(&["name"]).and_then(Yaml::str), Some("demo"));
        let web = doc.at(&["services", "web"]).unwrap();
        assert_eq!(web.get("image").and_then(Yaml::str), Some("nginx:1.27"));
        assert_eq!(
            web.get("ports").unwrap().strs(),
            ["127.0.0.1:80:80", "8443"]
        );
        assert_eq!(web.get("command").unwrap().strs(), ["a", "x \"y\""]);
        assert_eq!(web.get("empty"), Some(&Yaml::Null));
        assert_eq!(doc.get("volumes").unwrap().keys(), ["data"]);
        assert_eq!(doc.keys(), ["name", "services", "volumes"]);
    }

    #[test]
    fn hashes_and_colons_inside_values_stay() {
        let doc = parse("a: x#y\nb: \"# not a comment\"\nc: http://h:1/p\nd: ${X:-y}\n").unwrap();
        assert_eq!(doc.get("a").and_then(Yaml::str), Some("x#y"));
        assert_eq!(doc.get("b").and_then(Yaml::str), Some("# not a comment"));
        assert_eq!(doc.get("c").and_then(Yaml::str), Some("http://h:1/p"));
        assert_eq!(doc.get("d").and_then(Yaml::str), Some("${X:-y}"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (bad, why) in [
            ("a: [1, 2]\n", "flow collection"),
            ("a: &x 1\n", "anchor"),
            ("a: |\n  text\n", "block scalar"),
            ("a:\n  - b: 1\n", "mapping inside a sequence"),
            ("a: 1\n    b: 2\n", "indentation"),
            ("a: 1\na: 2\n", "twice"),
            ("a:\n\t- 1\n", "tab"),
            ("just words\n", "key: value"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
