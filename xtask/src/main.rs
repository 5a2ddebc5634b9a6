//! `cargo xtask`: the repository's automation, written in Rust (matklad's cargo-xtask pattern).
//!
//! This file only dispatches; each subcommand lives in its own module. Every external
//! command an xtask runs is printed before it runs.

mod bench;
mod chaos;
mod cluster;
mod netns;
mod partition;
mod resp;
mod snapshot;
mod test;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

const USAGE: &str = "\
Usage: cargo xtask <subcommand> [options]

Subcommands:
  bench [ring|store|typed|cluster|rebalance] [--smoke] [--quick] [-- <criterion args>]
        Run the criterion benchmarks and print the ratio table against their targets.
  bench resp [--smoke] [-n N] [--no-cluster]
        P6/P7: redis-benchmark and memory per key, hived against redis-server.
  chaos [--seed S] [--seconds T] [--nodes N] [--rf R] [--clients C] [--no-netns]
        A seeded fault schedule (kill -9 and restart, replace, leave and rejoin,
        join, SIGSTOP pauses, a partition as root) under a mixed workload through
        every node; checks that nothing acknowledged was lost, duplicated or
        undone, and prints the seed that replays a failure.
  cluster [--nodes N] [--rf R] [--kill K] [--seconds S] [--writers W]
        Run N hived processes under a write load, kill -9 K of them mid-load, and
        verify every acknowledged write through every survivor (0 lost or it fails).
  partition [--seconds S]
        G7 with processes: 3 hived nodes in network namespaces, one cut off for S
        seconds under writes on both sides, then healed; checks convergence and
        that only writes the other side overwrote were lost. Needs root and `ip`.
  test [-- <cargo test args>]
        The whole test suite: installs redis-server/redis-cli (as root) and a Python
        virtualenv with `redis` when missing, then runs `cargo test --workspace`.
  help  Print this message; `cargo xtask bench --help` details bench.
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let Some((subcommand, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match subcommand.as_str() {
        "bench" => bench::run(rest),
        "chaos" => chaos::run(rest),
        "cluster" => cluster::run(rest),
        "partition" => partition::run(rest),
        "test" => test::run(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown subcommand `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The cargo binary that launched us (`cargo run` sets `CARGO`), or `cargo` from `PATH`.
fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(workspace_root());
    cmd
}

/// Parses the value that follows the option `flag` in `args`.
fn option_value<'a, T>(args: &mut impl Iterator<Item = &'a String>, flag: &str) -> anyhow::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    args.next()
        .with_context(|| format!("{flag} needs a value"))?
        .parse()
        .with_context(|| format!("{flag} needs a number"))
}

/// Prints `cmd`, runs it with inherited stdio and fails if it does not exit successfully.
fn run_command(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = display_command(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
