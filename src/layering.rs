//! The module layering of `src/lib.rs`'s table, checked: each top-level module may import only
//! the modules listed for it here. Test code (`tests.rs` files and `mod tests` blocks) and doc
//! comments are not read; a new import that crosses a layer fails this test, and the table
//! says which way the arrows run.

use std::collections::BTreeSet;
use std::path::Path;

/// Every top-level module and what it may import (`crate::NAME`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("transform", &[]),
    ("shutdown", &[]),
    ("fault", &[]),
    ("error", &["transform"]),
    ("insights", &["transform"]),
    ("loadgen", &["transform"]),
    ("cli", &["insights", "loadgen", "transform"]),
    ("config", &["cli", "error", "insights", "transform"]),
    ("kafka", &["cli", "config", "error"]),
    (
        "telemetry",
        &[
            "cli",
            "config",
            "error",
            "insights",
            "shutdown",
            "transform",
        ],
    ),
    (
        "pipeline",
        &[
            "cli",
            "config",
            "error",
            "fault",
            "insights",
            "kafka",
            "shutdown",
            "telemetry",
            "transform",
        ],
    ),
    (
        "commands",
        &[
            "cli",
            "config",
            "error",
            "insights",
            "kafka",
            "loadgen",
            "shutdown",
            "telemetry",
            "transform",
        ],
    ),
    // Fixtures and the door to the internals for tests and benchmarks.
    ("testing", &["pipeline", "telemetry", "transform"]),
];

/// The `crate::NAME` paths in the non-test code of `path` (a file or a folder).
fn imports(path: &Path, out: &mut BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            imports(&entry.unwrap().path(), out);
        }
        return;
    }
    if path.extension().is_none_or(|e| e != "rs") || path.file_name().unwrap() == "tests.rs" {
        return;
    }
    let text = std::fs::read_to_string(path).unwrap();
    for line in text.lines() {
        if line.starts_with("mod tests") {
            break;
        }
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    let mut crossings = Vec::new();
    for (module, allowed) in ALLOWED {
        let dir = src.join(module);
        let path = if dir.is_dir() {
            dir
        } else {
            src.join(format!("{module}.rs"))
        };
        assert!(path.exists(), "{module}: no {}", path.display());
        let mut used = BTreeSet::new();
        imports(&path, &mut used);
        for name in used {
            if name != *module && modules.contains(name.as_str()) && !allowed.contains(&&*name) {
                crossings.push(format!("{module} imports {name}"));
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "imports across the layers: {crossings:?}"
    );
}

#[test]
fn the_table_names_every_top_level_module() {
    let lib = include_str!("lib.rs");
    for line in lib.lines() {
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            assert!(
                ALLOWED.iter().any(|(m, _)| *m == name),
                "{name} is missing from ALLOWED"
            );
        }
    }
}
