//! The code map, enforced: every top-level module imports only modules below it, and the pure
//! cores touch no I/O. The ranks are the table in `src/lib.rs`'s crate documentation.

use std::collections::BTreeMap;
use std::path::Path;

use crate::helpers::repo_path;

/// Each top-level module and its rank; a module may import only modules of a lower rank.
const RANKS: &[(&str, u8)] = &[
    ("skan", 0),
    ("clock", 0),
    ("error_body", 1),
    ("schema", 1),
    ("input", 1),
    ("apple_keys", 1),
    ("domain", 2),
    ("store", 3),
    ("auth", 4),
    ("group_commit", 4),
    ("leased", 4),
    ("schema_versions", 4),
    ("report", 5),
    ("quality", 5),
    ("dispatch", 6),
    ("ingest", 7),
    ("config", 7),
    ("loadgen", 7),
    ("telemetry", 8),
    ("http", 9),
    ("app", 10),
    ("cli", 11),
];

/// Files that must stay pure: no database, network, runtime, files or clock.
const PURE: &[&str] = &[
    "skan/",
    "schema/",
    "domain/",
    "dispatch/policy.rs",
    "dispatch/breaker.rs",
    "dispatch/template.rs",
    "dispatch/request.rs",
];
const IMPURE: &[&str] = &[
    "tokio::",
    "sqlx::",
    "axum::",
    "reqwest::",
    "std::fs",
    "Utc::now",
    "SystemTime::now",
    "Instant::now",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without its unit tests (tests may reach anywhere).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default().to_owned()
}

/// Every `crate::name` the code mentions (`crate::{a, b::c}` names `a` and `b`).
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |text: &str| -> String {
        text.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    let mut out = Vec::new();
    for (at, m) in code.match_indices("crate::") {
        if code[..at].ends_with('$') {
            continue;
        }
        let rest = &code[at + m.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(inner.split(',').map(ident).filter(|name| !name.is_empty()));
        } else {
            out.push(ident(rest));
        }
    }
    out
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let ranks: BTreeMap<&str, u8> = RANKS.iter().copied().collect();
    let src = repo_path("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen_modules = std::collections::BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if relative == "lib.rs" || relative == "main.rs" {
            continue;
        }
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        let Some(&rank) = ranks.get(module.as_str()) else {
            violations
                .push(format!("src/{relative}: module {module} has no place in the code map"));
            continue;
        };
        seen_modules.insert(module.clone());
        for target in crate_paths(&code_of(file)) {
            if target == module {
                continue;
            }
            match ranks.get(target.as_str()) {
                Some(&to) if to < rank => {}
                Some(&to) => violations.push(format!(
                    "src/{relative}: {module} (rank {rank}) imports {target} (rank {to})"
                )),
                None => violations
                    .push(format!("src/{relative}: imports crate::{target}, not in the map")),
            }
        }
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
    assert_eq!(seen_modules.len(), RANKS.len(), "every module in the map exists");
}

#[test]
fn the_pure_cores_touch_no_io_runtime_or_clock() {
    let src = repo_path("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        if !PURE.iter().any(|p| relative.starts_with(p)) {
            continue;
        }
        let code = code_of(file);
        for word in IMPURE {
            if code.contains(word) {
                violations.push(format!("src/{relative} uses {word}"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_layering_check_sees_a_forbidden_import() {
    let paths =
        crate_paths("use crate::store::Store;\nlet x = crate::http::router;\n$crate::ignored");
    assert_eq!(paths, vec!["store".to_owned(), "http".to_owned()]);
}
