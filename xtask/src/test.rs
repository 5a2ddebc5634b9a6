//! `cargo xtask test`: the whole test suite on a fresh machine. Installs what
//! the compatibility tests compare against when it is missing — `redis-server`
//! and `redis-cli` (apt, when running as root), a Python virtualenv under
//! `target/` with the `redis` package and pytest, and redis-py's own test
//! suite (from its source distribution on PyPI) — then runs
//! `cargo test --workspace` with `HIVE_PYTHON` naming that interpreter and
//! `HIVE_REDIS_PY_SUITE` that suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The redis-py release the client tests use; its source distribution's
/// `tests/` run unmodified against `hived` (`hived/tests/redis_py_suite.rs`).
const REDIS_PY: &str = "8.1.0";
const PYTEST: &str = "9.2.0";

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    ensure_redis()?;
    let python = ensure_python()?;
    let suite = ensure_redis_py_suite(&python)?;
    let mut test = crate::cargo();
    test.args(["test", "--workspace"]).args(args);
    test.env("HIVE_PYTHON", &python);
    test.env("HIVE_REDIS_PY_SUITE", &suite);
    crate::run_command(&mut test)
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn ensure_redis() -> anyhow::Result<()> {
    if installed("redis-server") && installed("redis-cli") {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "redis-server and redis-cli are needed by the compatibility tests: \
             sudo apt-get install -y redis-server redis-tools"
        );
    }
    crate::run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    crate::run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "redis-server", "redis-tools"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Returns a Python interpreter with redis-py [`REDIS_PY`] and pytest,
/// creating a virtualenv under `target/` if needed.
fn ensure_python() -> anyhow::Result<PathBuf> {
    let venv = crate::workspace_root().join("target/python");
    let python = venv.join("bin/python");
    let check = format!("import pytest, redis; assert redis.__version__ == '{REDIS_PY}'");
    let has_redis = |python: &Path| {
        Command::new(python)
            .args(["-c", &check])
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if has_redis(&python) {
        return Ok(python);
    }
    let create = || crate::run_command(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    if create().is_err() {
        // Debian ships the venv module separately.
        if !is_root() {
            bail!("python3 cannot create a virtualenv: sudo apt-get install -y python3-venv");
        }
        crate::run_command(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "python3-venv"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        create().context("creating a Python virtualenv (python3 -m venv)")?;
    }
    crate::run_command(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        &format!("redis=={REDIS_PY}"),
        &format!("pytest=={PYTEST}"),
        "packaging",
    ]))?;
    if !has_redis(&python) {
        bail!(
            "{} cannot import redis {REDIS_PY} and pytest after installing them",
            python.display()
        );
    }
    Ok(python)
}

/// Returns the directory of redis-py's source distribution (its `tests/`
/// included), downloading and unpacking it under `target/python` if needed.
fn ensure_redis_py_suite(python: &Path) -> anyhow::Result<PathBuf> {
    let base = crate::workspace_root().join("target/python");
    let suite = base.join(format!("redis-{REDIS_PY}"));
    if suite.join("tests/conftest.py").exists() {
        return Ok(suite);
    }
    let dist = base.join("dist");
    crate::run_command(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
            ])
            .arg(format!("redis=={REDIS_PY}"))
            .arg("-d")
            .arg(&dist),
    )?;
    crate::run_command(
        Command::new("tar")
            .arg("-xzf")
            .arg(dist.join(format!("redis-{REDIS_PY}.tar.gz")))
            .arg("-C")
            .arg(&base),
    )?;
    if !suite.join("tests/conftest.py").exists() {
        bail!("redis-py {REDIS_PY}'s source distribution has no tests/ directory");
    }
    Ok(suite)
}
