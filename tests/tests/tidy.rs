//! Tidy: checks that keep the workspace's rules true as it grows (in the spirit of
//! rust-analyzer's `tidy.rs`). Each test is named after the rule it enforces, and each
//! failure says what to change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Where a workspace crate sits in the dependency layers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    /// A library crate on this layer: it may depend only on workspace crates on lower layers,
    /// in every dependency kind (normal, build and dev), and must not use `anyhow`.
    Library(u8),
    /// A binary crate on this layer: it may depend only on workspace crates on lower layers.
    Binary(u8),
    /// Tests may depend on any workspace crate.
    Tests,
    /// Tooling: must not depend on any workspace crate.
    Tooling,
}

impl Place {
    fn level(self) -> Option<u8> {
        match self {
            Place::Library(level) | Place::Binary(level) => Some(level),
            Place::Tests | Place::Tooling => None,
        }
    }
}

/// Every workspace crate, present or planned, bottom layer first.
const LAYERS: &[(&str, Place)] = &[
    ("hive-ring", Place::Library(0)),
    ("hive-store", Place::Library(0)),
    ("proto", Place::Library(1)),
    ("hive-membership", Place::Library(1)),
    ("hive-transport", Place::Library(1)),
    ("hive-cluster", Place::Library(2)),
    ("hive", Place::Library(3)),
    ("hived", Place::Binary(4)),
    ("hive-tests", Place::Tests),
    ("xtask", Place::Tooling),
];

/// Dependencies allowed within one layer: `(from, to)`.
const SAME_LAYER_EXCEPTIONS: &[(&str, &str)] = &[("hive-transport", "proto")];

fn same_layer_allowed(from: &str, to: &str) -> bool {
    SAME_LAYER_EXCEPTIONS.contains(&(from, to))
}

fn place(name: &str) -> Option<Place> {
    LAYERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, place)| place)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("hive-tests lives one level below the workspace root")
        .to_path_buf()
}

/// A workspace member, from `cargo metadata`.
#[derive(Debug)]
struct Package {
    name: String,
    dir: PathBuf,
    /// `(dependency name, kind)`, kind being `normal`, `build` or `dev`.
    dependencies: Vec<(String, String)>,
}

/// The workspace members, by name (`cargo metadata --no-deps` lists exactly those).
fn workspace_packages() -> anyhow::Result<BTreeMap<String, Package>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("running {} metadata", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let mut packages = BTreeMap::new();
    for package in metadata["packages"]
        .as_array()
        .context("metadata has no packages")?
    {
        let name = package["name"].as_str().context("package without name")?;
        let manifest = package["manifest_path"]
            .as_str()
            .context("package without manifest_path")?;
        let dependencies = package["dependencies"]
            .as_array()
            .context("package without dependencies")?
            .iter()
            .map(|dep| {
                let name = dep["name"].as_str().unwrap_or_default().to_string();
                let kind = dep["kind"].as_str().unwrap_or("normal").to_string();
                (name, kind)
            })
            .collect();
        let dir = Path::new(manifest)
            .parent()
            .context("manifest_path without parent")?
            .to_path_buf();
        packages.insert(
            name.to_string(),
            Package {
                name: name.to_string(),
                dir,
                dependencies,
            },
        );
    }
    Ok(packages)
}

/// Rule: layering. A crate depends only on workspace crates on strictly lower layers (see
/// `LAYERS`), so that the storage engine never learns about the cluster, and so on.
#[test]
fn layering() -> anyhow::Result<()> {
    let packages = workspace_packages()?;
    let mut problems = Vec::new();
    for package in packages.values() {
        let Some(from) = place(&package.name) else {
            problems.push(format!(
                "{} is not in the layer table: add it to LAYERS in tests/tests/tidy.rs \
                 with the layer it belongs to",
                package.name
            ));
            continue;
        };
        for (dep, kind) in &package.dependencies {
            if !packages.contains_key(dep) {
                continue; // not a workspace crate
            }
            let kind = if kind == "normal" {
                String::new()
            } else {
                format!(" ({kind}-dependency)")
            };
            let edge = format!("{} depends on {dep}{kind}", package.name);
            let Some(to) = place(dep) else {
                continue; // reported above as missing from the table
            };
            let problem = match (from, from.level(), to.level()) {
                (Place::Tests, ..) => None,
                (Place::Tooling, ..) => Some(format!(
                    "{edge}, but xtask must not depend on workspace crates \
                     (it must build fast and independently); remove the dependency"
                )),
                (_, Some(_), None) => Some(format!(
                    "{edge}, which is outside the layers; remove the dependency"
                )),
                (_, Some(a), Some(b))
                    if b > a || (b == a && !same_layer_allowed(&package.name, dep)) =>
                {
                    let relation = if b > a {
                        "above it"
                    } else {
                        "on the same layer"
                    };
                    Some(format!(
                        "{edge}, which is {relation} (layer {a} -> layer {b}); move the shared \
                         code down a layer, or, if the architecture really changed, update \
                         LAYERS in tests/tests/tidy.rs"
                    ))
                }
                _ => None,
            };
            problems.extend(problem);
        }
    }
    if !problems.is_empty() {
        bail!("layering violated:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// The layer table itself stays coherent.
#[test]
fn layer_table_is_consistent() {
    for (i, (name, _)) in LAYERS.iter().enumerate() {
        assert!(
            !LAYERS[..i].iter().any(|(n, _)| n == name),
            "{name} is in LAYERS twice"
        );
    }
    for (from, to) in SAME_LAYER_EXCEPTIONS {
        let (from_place, to_place) = (place(from), place(to));
        assert!(
            from_place.is_some() && to_place.is_some(),
            "exception {from} -> {to} names a crate missing from LAYERS"
        );
        assert_eq!(
            from_place.and_then(Place::level),
            to_place.and_then(Place::level),
            "exception {from} -> {to} is not within one layer"
        );
    }
}

/// Rule: module docs. Every `.rs` file starts with a `//!` line saying what it is for.
#[test]
fn module_docs() -> anyhow::Result<()> {
    let root = workspace_root();
    let mut files = Vec::new();
    for package in workspace_packages()?.values() {
        for sub in ["src", "tests", "benches", "examples"] {
            rust_files(&package.dir.join(sub), &mut files)?;
        }
        let build = package.dir.join("build.rs");
        if build.is_file() {
            files.push(build);
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("tests/tidy.rs")),
        "tidy found no Rust files; is the walk broken?"
    );
    let mut offenders = Vec::new();
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let first = text.lines().map(str::trim).find(|line| !line.is_empty());
        if !first.is_some_and(|line| line.starts_with("//!")) {
            offenders.push(
                file.strip_prefix(&root)
                    .unwrap_or(file)
                    .display()
                    .to_string(),
            );
        }
    }
    if !offenders.is_empty() {
        offenders.sort();
        bail!(
            "these files do not start with a `//!` module doc; add one saying what the file \
             is for:\n  {}",
            offenders.join("\n  ")
        );
    }
    Ok(())
}

/// Collects the `.rs` files under `dir`, recursively, skipping `target` directories.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, files)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// Rule: no anyhow in libraries. Library crates return typed errors (thiserror) that callers
/// can match on; `anyhow` belongs to binaries, tests and tooling.
#[test]
fn no_anyhow_in_libraries() -> anyhow::Result<()> {
    let offenders: Vec<String> = workspace_packages()?
        .values()
        .filter(|p| matches!(place(&p.name), Some(Place::Library(_))))
        .filter(|p| {
            p.dependencies
                .iter()
                .any(|(dep, kind)| dep == "anyhow" && kind == "normal")
        })
        .map(|p| p.name.clone())
        .collect();
    if !offenders.is_empty() {
        bail!(
            "library crates depend on anyhow: {}\n  return a thiserror enum instead and move \
             anyhow to [dev-dependencies] if tests need it",
            offenders.join(", ")
        );
    }
    Ok(())
}
