//! The documentation checked against the code, so an example cannot drift (issue 23). No broker
//! is needed. Over `README.md` and `docs/*.md`:
//!
//! - every `kafka-pipeline SUBCOMMAND … --flag` in a fenced code block or an inline code span
//!   names a flag that `kafka-pipeline SUBCOMMAND --help` lists;
//! - the record examples have the fields of what the code writes: the insight record's keys
//!   equal those of `src/insights/record/example.json` (which the unit tests parse) and it
//!   parses as an [`InsightRecord`]; the processed record is exactly what the transform makes
//!   of the documented input event; every `__pipeline.*` header named is one the code writes;
//!   every error code has its row in the README's code table;
//! - every relative link reaches an existing file, and an anchor a heading of that file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kafka_pipeline::insights::record::InsightRecord;
use kafka_pipeline::transform::{ErrorCode, TransformOptions, Transformer};
use serde_json::Value;

const SUBCOMMANDS: &[&str] = &["run", "loadgen", "insights", "topics", "dlq", "sink"];
const DLQ_SUBCOMMANDS: &[&str] = &["summary", "show", "replay"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every `docs/*.md`, as (path relative to the root, text).
fn doc_files() -> Vec<(PathBuf, String)> {
    let mut paths = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            p.strip_prefix(root())
                .expect("under the root")
                .to_path_buf()
        })
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(root().join(&p)).expect("readable doc");
            (p, text)
        })
        .collect()
}

/// A fenced code block: the line of its opening fence (1-based), its info string, its body.
struct Block {
    line: usize,
    lang: String,
    body: String,
}

/// The fenced code blocks of a markdown text, and the text outside them (one entry per line,
/// the lines inside blocks left empty so line numbers still count).
fn split_blocks(text: &str) -> (Vec<Block>, Vec<String>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match open.as_mut() {
            None if fence => {
                open = Some(Block {
                    line: i + 1,
                    lang: line.trim_start().trim_start_matches('`').trim().to_string(),
                    body: String::new(),
                });
                prose.push(String::new());
            }
            None => prose.push(line.to_string()),
            Some(_) if fence => {
                blocks.extend(open.take());
                prose.push(String::new());
            }
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
                prose.push(String::new());
            }
        }
    }
    (blocks, prose)
}

/// The inline code spans of one line of prose.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// One documented use: where, the subcommand path (`["dlq", "show"]`), the flags.
#[derive(Debug)]
struct Usage {
    at: String,
    command: Vec<String>,
    flags: Vec<String>,
}

/// The `kafka-pipeline …` uses in one command line (shell continuations already joined).
fn usages_in(line: &str, at: &str) -> Vec<Usage> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("kafka-pipeline ") {
        let before = rest[..i].chars().next_back();
        let after = &rest[i + "kafka-pipeline ".len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.') {
            continue;
        }
        // The command ends at a pipe, a list operator, a redirection or a comment.
        let end = after.find([';', '#', '>', '&']).unwrap_or(after.len());
        let words: Vec<String> = after[..end]
            .replace("\\|", "|")
            .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let words: Vec<String> = words
            .into_iter()
            .take_while(|w| w != "|" && w != "--")
            .collect();
        let Some(first) = words.first() else { continue };
        let mut command = Vec::new();
        let mut flags_from = 0;
        if !first.starts_with('-') {
            if !SUBCOMMANDS.contains(&first.as_str()) {
                continue; // prose such as "kafka-pipeline itself"
            }
            command.push(first.clone());
            flags_from = 1;
            if first == "dlq" {
                if let Some(sub) = words.get(1).filter(|w| !w.starts_with('-')) {
                    command.push(sub.clone());
                    flags_from = 2;
                }
            }
        }
        let flags = words[flags_from..]
            .iter()
            .filter(|w| w.starts_with('-') && !w.starts_with("---"))
            .map(|w| {
                let w = w.split('=').next().unwrap_or(w);
                w.trim_end_matches(|c: char| !(c.is_alphanumeric() || c == '-'))
                    .to_string()
            })
            .filter(|w| w.len() > 1 && w != "-")
            .collect();
        found.push(Usage {
            at: at.to_string(),
            command,
            flags,
        });
    }
    found
}

/// Every `kafka-pipeline …` use in the docs: in code blocks (continuation lines joined) and in
/// inline code spans.
fn documented_usages() -> Vec<Usage> {
    let mut usages = Vec::new();
    for (path, text) in doc_files() {
        let (blocks, prose) = split_blocks(&text);
        for block in blocks {
            if matches!(block.lang.as_str(), "json" | "python" | "toml") {
                continue;
            }
            let joined = block.body.replace("\\\n", " ");
            for line in joined.lines() {
                let at = format!("{}:{} (block)", path.display(), block.line);
                usages.extend(usages_in(line, &at));
            }
        }
        for (i, line) in prose.iter().enumerate() {
            for span in code_spans(line) {
                let at = format!("{}:{}", path.display(), i + 1);
                usages.extend(usages_in(&format!("{span} "), &at));
            }
        }
    }
    usages
}

/// The flags `kafka-pipeline COMMAND --help` lists (long and short forms).
fn help_flags(command: &[String]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-pipeline"))
        .args(command)
        .arg("--help")
        .output()
        .expect("run kafka-pipeline --help");
    assert!(
        out.status.success(),
        "kafka-pipeline {} --help failed: {}",
        command.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8(out.stdout).expect("UTF-8 help");
    let mut flags = BTreeSet::new();
    for line in help.lines().filter(|l| l.trim_start().starts_with('-')) {
        for word in line.split([' ', ',']).filter(|w| !w.is_empty()) {
            if !word.starts_with('-') {
                break;
            }
            flags.insert(word.to_string());
        }
    }
    flags
}

#[test]
fn documented_flags_exist() {
    let usages = documented_usages();
    assert!(
        usages.len() > 30,
        "found only {} kafka-pipeline uses in the docs: is the extraction broken?",
        usages.len()
    );
    let mut helps: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let mut stale = Vec::new();
    for usage in &usages {
        // `dlq summary|show|replay`: the flags must belong to each alternative.
        let alternatives: Vec<Vec<String>> = match usage.command.as_slice() {
            [dlq, subs] if dlq == "dlq" => subs
                .split('|')
                .map(|s| vec![dlq.clone(), s.to_string()])
                .collect(),
            other => vec![other.to_vec()],
        };
        for command in alternatives {
            if command.first().is_some_and(|c| c == "dlq") && command.len() == 2 {
                assert!(
                    DLQ_SUBCOMMANDS.contains(&command[1].as_str()),
                    "{}: unknown subcommand `kafka-pipeline {}`",
                    usage.at,
                    command.join(" ")
                );
            }
            let known = helps
                .entry(command.clone())
                .or_insert_with(|| help_flags(&command));
            for flag in &usage.flags {
                if !known.contains(flag) {
                    stale.push(format!(
                        "{}: `kafka-pipeline {} {flag}`: not in `kafka-pipeline {} --help`",
                        usage.at,
                        command.join(" "),
                        command.join(" ")
                    ));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "documented flags the binary does not have:\n{}",
        stale.join("\n")
    );
}

/// The ```json blocks of the docs that contain `marker`, parsed.
fn json_examples(marker: &str) -> Vec<(String, Value)> {
    let mut found = Vec::new();
    for (path, text) in doc_files() {
        let (blocks, _) = split_blocks(&text);
        for block in blocks
            .into_iter()
            .filter(|b| b.lang == "json" && b.body.contains(marker))
        {
            let at = format!("{}:{}", path.display(), block.line);
            let value = serde_json::from_str(&block.body)
                .unwrap_or_else(|e| panic!("{at}: the JSON example does not parse: {e}"));
            found.push((at, value));
        }
    }
    found
}

/// Object keys whose own keys are data (error codes, IP classes, counted values), not fields.
const DATA_MAPS: &[&str] = &["counts", "dead_lettered_by_code", "ip_classes"];

/// The field paths of a JSON value: `a`, `a.b`, `a.top[].key`; data maps count as one field.
fn field_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                if !DATA_MAPS.contains(&key.as_str()) {
                    field_paths(v, &path, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                field_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn paths_of(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    field_paths(value, "", &mut out);
    out
}

#[test]
fn insight_record_example_matches_the_tested_one() {
    let tested_text = fs::read_to_string(root().join("src/insights/record/example.json"))
        .expect("src/insights/record/example.json");
    let tested: Value = serde_json::from_str(&tested_text).expect("tested example parses");
    let examples = json_examples("\"window_start\"");
    assert!(
        !examples.is_empty(),
        "no insight record example in the docs"
    );
    for (at, example) in examples {
        let (documented, expected) = (paths_of(&example), paths_of(&tested));
        assert_eq!(
            documented,
            expected,
            "{at}: the insight record's fields differ from src/insights/record/example.json \
             (missing: {:?}, extra: {:?})",
            expected.difference(&documented).collect::<Vec<_>>(),
            documented.difference(&expected).collect::<Vec<_>>()
        );
        let bytes = serde_json::to_vec(&example).expect("serialize");
        InsightRecord::from_json(&bytes)
            .unwrap_or_else(|e| panic!("{at}: the insight record example does not parse: {e:?}"));
    }
}

#[test]
fn processed_record_example_is_what_the_transform_writes() {
    let inputs = json_examples("\"device_type\": \"iOS\"");
    let outputs = json_examples("\"ip_class\"");
    assert!(!inputs.is_empty(), "no input event example in the docs");
    assert!(
        !outputs.is_empty(),
        "no processed record example in the docs"
    );
    let (input_at, input) = &inputs[0];
    let bytes = serde_json::to_vec(input).expect("serialize");
    let mut transformer = Transformer::new(TransformOptions::default());
    let event = transformer
        .process(Some(&bytes))
        .unwrap_or_else(|r| panic!("{input_at}: the input example is rejected: {r:?}"));
    let mut written = Vec::new();
    event.write_json(&mut written);
    let written: Value = serde_json::from_slice(&written).expect("the transform writes JSON");
    for (at, output) in &outputs {
        assert_eq!(
            paths_of(output),
            paths_of(&written),
            "{at}: the processed record's fields differ from the transform's output"
        );
        assert_eq!(
            output, &written,
            "{at}: the processed record is not what the transform makes of {input_at}"
        );
    }
}

/// Every string literal `"__pipeline…"` in `src/`.
fn header_literals() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).expect("src/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("source");
                for piece in text.split("\"__pipeline.").skip(1) {
                    if let Some(end) = piece.find('"') {
                        out.insert(format!("__pipeline.{}", &piece[..end]));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root().join("src"), &mut out);
    out
}

#[test]
fn documented_headers_and_codes_are_the_codes() {
    let literals = header_literals();
    let mut unknown = Vec::new();
    for (path, text) in doc_files() {
        for piece in text.split("__pipeline.").skip(1) {
            let name: String = piece
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let name = format!("__pipeline.{}", name.trim_end_matches('.'));
            let known = literals
                .iter()
                .any(|l| *l == name || l.starts_with(&format!("{name}.")));
            if !known && name != "__pipeline." {
                unknown.push(format!("{}: {name}", path.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "headers the code never writes:\n{}",
        unknown.join("\n")
    );
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    for code in ErrorCode::ALL {
        let row = format!("| `{}` |", code.as_str());
        assert!(
            readme.contains(&row),
            "README.md: no row for error code `{}`",
            code.as_str()
        );
    }
}

/// GitHub's anchors for the headings of a markdown text (duplicates get `-1`, `-2`, …).
fn anchors(text: &str) -> BTreeSet<String> {
    let (_, prose) = split_blocks(text);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in &prose {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#').trim();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The link targets `](…)` of the prose of a markdown text, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let (_, prose) = split_blocks(text);
    let mut out = Vec::new();
    for (i, line) in prose.iter().enumerate() {
        for piece in line.split("](").skip(1) {
            if let Some(end) = piece.find(')') {
                out.push((i + 1, piece[..end].to_string()));
            }
        }
    }
    out
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (path, text) in doc_files() {
        let dir = path.parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                path.clone()
            } else {
                dir.join(file)
            };
            let full = root().join(&resolved);
            if !full.exists() {
                broken.push(format!("{}:{line}: {target}: no such file", path.display()));
                continue;
            }
            if !anchor.is_empty() && full.extension().is_some_and(|e| e == "md") {
                let other = fs::read_to_string(&full).expect("linked markdown");
                if !anchors(&other).contains(anchor) {
                    broken.push(format!(
                        "{}:{line}: {target}: no heading #{anchor} in {}",
                        path.display(),
                        resolved.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "found only {checked} relative links");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
