//! `cargo xtask test`: the whole test suite on a fresh machine. Installs what
//! the compatibility tests compare against when it is missing — `redis-server`
//! and `redis-cli` (apt, when running as root) and a Python virtualenv with the
//! `redis` package under `target/` — then runs `cargo test --workspace` with
//! `HIVE_PYTHON` pointing at that interpreter.

use std::process::Command;

use anyhow::{Context as _, bail};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    ensure_redis()?;
    let python = ensure_python()?;
    let mut test = crate::cargo();
    test.args(["test", "--workspace"]).args(args);
    test.env("HIVE_PYTHON", &python);
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

/// Returns a Python interpreter that can `import redis`, creating a virtualenv
/// under `target/` if needed.
fn ensure_python() -> anyhow::Result<std::path::PathBuf> {
    let venv = crate::workspace_root().join("target/python");
    let python = venv.join("bin/python");
    let has_redis = |python: &std::path::Path| {
        Command::new(python)
            .args(["-c", "import redis"])
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
    crate::run_command(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "redis"]))?;
    if !has_redis(&python) {
        bail!(
            "{} cannot import redis after installing it",
            python.display()
        );
    }
    Ok(python)
}
