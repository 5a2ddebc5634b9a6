//! `cargo xtask bench`: runs the criterion benchmarks and compares each measured function
//! with the baseline measured in the same run, against the performance targets.
//!
//! The comparisons are data: [`RATIOS`] pairs criterion *full ids* (`group/function/value`,
//! the `full_id` of criterion's `benchmark.json`), and results are found by scanning
//! `target/criterion/**/new/benchmark.json`, so criterion's directory-name mangling
//! (`get/hive_store` becomes `get_hive_store`) does not matter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

const USAGE: &str = "\
Usage: cargo xtask bench [NAME] [--smoke] [--quick] [-- <criterion args>]

Runs the criterion benchmarks, then prints each measured function against its baseline
(both measured in the same run) and the target ratio.

  NAME       only this benchmark: ring (P10), store (P1), typed (P2), cluster (P4, P5)
             or rebalance (P8); default: all
             `cargo xtask bench resp [--smoke]` runs P6 and P7 against redis-server,
             `cargo xtask bench snapshot [--smoke] [--keys N]` runs P11
  --smoke    run each benchmark once without timing (criterion's --test), print no table;
             this is what CI runs so the benchmarks never rot
  --quick    shorthand for `-- --warm-up-time 1 --measurement-time 2`
  -- ARGS    pass ARGS to criterion, e.g. `-- --warm-up-time 1 --measurement-time 3`
";

/// A criterion benchmark target of the workspace.
#[derive(Debug)]
struct Bench {
    /// The `[[bench]]` name, also the name accepted on the command line.
    name: &'static str,
    /// The criterion groups it measures, also accepted on the command line.
    groups: &'static [&'static str],
    /// The package that owns it.
    package: &'static str,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "ring",
        groups: &["P10"],
        package: "hive-ring",
    },
    Bench {
        name: "store",
        groups: &["P1"],
        package: "hive-store",
    },
    Bench {
        name: "typed",
        groups: &["P2"],
        package: "hive",
    },
    Bench {
        name: "cluster",
        groups: &["P4", "P5"],
        package: "hive",
    },
    Bench {
        name: "rebalance",
        groups: &["P8"],
        package: "hive",
    },
];

/// One comparison of the table: `measured` mean time divided by `baseline` mean time.
#[derive(Debug)]
struct Ratio {
    /// The criterion group, which is also the performance target's id (P1, P2, P10).
    id: &'static str,
    what: &'static str,
    /// Criterion full id of the function under test.
    measured: &'static str,
    /// Criterion full id of the reference it is compared with.
    baseline: &'static str,
    /// The highest acceptable ratio; `None` for an informational row, shown only if measured.
    target: Option<f64>,
}

#[rustfmt::skip]
const RATIOS: &[Ratio] = &[
    Ratio { id: "P10", what: "owners(key, 3) vs BLAKE3 of the key", measured: "P10/owners_3", baseline: "P10/blake3_key", target: Some(2.0) },
    Ratio { id: "P1", what: "get, 1 thread, vs dashmap", measured: "P1/get/hive_store/1t", baseline: "P1/get/dashmap/1t", target: Some(1.3) },
    Ratio { id: "P1", what: "get, 2 threads, vs dashmap", measured: "P1/get/hive_store/2t", baseline: "P1/get/dashmap/2t", target: Some(1.3) },
    Ratio { id: "P1", what: "set, 1 thread, vs dashmap", measured: "P1/set/hive_store/1t", baseline: "P1/set/dashmap/1t", target: Some(1.6) },
    Ratio { id: "P1", what: "set, 2 threads, vs dashmap", measured: "P1/set/hive_store/2t", baseline: "P1/set/dashmap/2t", target: Some(1.6) },
    Ratio { id: "P1", what: "get, 1 thread, vs Mutex<HashMap>", measured: "P1/get/hive_store/1t", baseline: "P1/get/mutex_hashmap/1t", target: None },
    Ratio { id: "P1", what: "get, 2 threads, vs Mutex<HashMap>", measured: "P1/get/hive_store/2t", baseline: "P1/get/mutex_hashmap/2t", target: None },
    Ratio { id: "P1", what: "set, 1 thread, vs Mutex<HashMap>", measured: "P1/set/hive_store/1t", baseline: "P1/set/mutex_hashmap/1t", target: None },
    Ratio { id: "P1", what: "set, 2 threads, vs Mutex<HashMap>", measured: "P1/set/hive_store/2t", baseline: "P1/set/mutex_hashmap/2t", target: None },
    Ratio { id: "P2", what: "typed get vs DashMap + rmp-serde", measured: "P2/get/value_store", baseline: "P2/get/baseline", target: Some(1.3) },
    Ratio { id: "P2", what: "typed set vs DashMap + rmp-serde", measured: "P2/set/value_store", baseline: "P2/set/baseline", target: Some(1.3) },
    Ratio { id: "P4", what: "forwarded get, sequential, vs gRPC echo", measured: "P4/forwarded_get", baseline: "P4/grpc_echo", target: Some(1.2) },
    Ratio { id: "P5", what: "forwarded get, 64 in flight, vs echo (time/op)", measured: "P5/forwarded_get/64", baseline: "P5/grpc_echo/64", target: Some(0.5) },
    Ratio { id: "P5", what: "forwarded get, 256 in flight, vs echo (time/op)", measured: "P5/forwarded_get/256", baseline: "P5/grpc_echo/256", target: Some(0.5) },
    Ratio { id: "P8", what: "join rebalance vs bare transfer stream (time)", measured: "P8/join_rebalance", baseline: "P8/bare_stream", target: Some(2.0) },
];

/// Criterion options behind `--quick`.
const QUICK: &[&str] = &["--warm-up-time", "1", "--measurement-time", "2"];

#[derive(Debug, PartialEq)]
struct Options {
    /// Indices into [`BENCHES`].
    selected: Vec<usize>,
    smoke: bool,
    criterion_args: Vec<String>,
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("resp") => return crate::resp::run(&args[1..]),
        Some("snapshot") => return crate::snapshot::run(&args[1..]),
        _ => {}
    }
    let Some(options) = parse_args(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    for &index in &options.selected {
        let bench = &BENCHES[index];
        let mut cmd = crate::cargo();
        cmd.args(["bench", "-p", bench.package, "--bench", bench.name]);
        if !options.criterion_args.is_empty() {
            cmd.arg("--").args(&options.criterion_args);
        }
        crate::run_command(&mut cmd)?;
    }
    if options.smoke {
        println!("\nsmoke run passed: every benchmark ran once (criterion --test mode)");
        return Ok(());
    }

    let dir = criterion_dir();
    let results = read_results(&dir)?;
    let groups: Vec<&str> = options
        .selected
        .iter()
        .flat_map(|&i| BENCHES[i].groups.iter().copied())
        .collect();
    let ratios: Vec<&Ratio> = RATIOS.iter().filter(|r| groups.contains(&r.id)).collect();
    let rows = rows(&ratios, &results);

    println!();
    println!("{}", machine_info());
    println!("criterion results: {}", dir.display());
    println!();
    print!("{}", render_table(&rows));
    println!(
        "\nmeans of criterion's `new` estimates; ratio = measured / baseline, lower is better"
    );
    for hint in hints(&rows, &results) {
        println!("{hint}");
    }
    println!("{}", summary(&rows));
    Ok(())
}

/// Parses the arguments after `bench`; `None` means help was asked for.
fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut selected = None;
    let mut smoke = false;
    let mut criterion_args = Vec::new();
    let mut extra = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--" => extra.extend(args.by_ref().cloned()),
            "-h" | "--help" => return Ok(None),
            "--smoke" => smoke = true,
            "--quick" => criterion_args.extend(QUICK.iter().map(|s| s.to_string())),
            flag if flag.starts_with('-') => {
                bail!("unknown option `{flag}`; pass criterion options after `--`\n\n{USAGE}")
            }
            name => {
                if selected.is_some() {
                    bail!("only one benchmark name may be given, got a second: `{name}`");
                }
                let index = BENCHES
                    .iter()
                    .position(|b| {
                        b.name == name || b.groups.iter().any(|g| g.eq_ignore_ascii_case(name))
                    })
                    .with_context(|| {
                        let known: Vec<String> = BENCHES
                            .iter()
                            .map(|b| format!("{} ({})", b.name, b.groups.join(", ")))
                            .collect();
                        format!("unknown benchmark `{name}`; known: {}", known.join(", "))
                    })?;
                selected = Some(index);
            }
        }
    }
    if smoke {
        criterion_args.push("--test".to_string());
    }
    criterion_args.extend(extra);
    Ok(Some(Options {
        selected: selected.map_or_else(|| (0..BENCHES.len()).collect(), |i| vec![i]),
        smoke,
        criterion_args,
    }))
}

/// Where criterion writes its results; mirrors criterion's own choice.
fn criterion_dir() -> PathBuf {
    let root = crate::workspace_root();
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return root.join(home);
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |t| root.join(t));
    target.join("criterion")
}

/// Mean time in nanoseconds of every benchmark under `dir`, by criterion full id.
///
/// Reads each `new/benchmark.json` and the `new/estimates.json` beside it; a missing `dir`
/// gives no results.
fn read_results(dir: &Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut results = BTreeMap::new();
    if dir.exists() {
        visit(dir, &mut results)?;
    }
    Ok(results)
}

fn visit(dir: &Path, results: &mut BTreeMap<String, f64>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            visit(&path, results)?;
        } else if path.file_name().is_some_and(|n| n == "benchmark.json")
            && dir.file_name().is_some_and(|n| n == "new")
        {
            let full_id = read_json(&path)?["full_id"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: no string `full_id`", path.display()))?;
            let estimates = dir.join("estimates.json");
            let mean = read_json(&estimates)?["mean"]["point_estimate"]
                .as_f64()
                .with_context(|| format!("{}: no `mean.point_estimate`", estimates.display()))?;
            results.insert(full_id, mean);
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One line of the table.
#[derive(Debug)]
struct Row<'a> {
    ratio: &'a Ratio,
    measured: Option<f64>,
    baseline: Option<f64>,
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    OverTarget,
    Informational,
    NotMeasured,
}

impl Row<'_> {
    fn value(&self) -> Option<f64> {
        Some(self.measured? / self.baseline?)
    }

    fn verdict(&self) -> Verdict {
        match (self.value(), self.ratio.target) {
            (None, _) => Verdict::NotMeasured,
            (Some(_), None) => Verdict::Informational,
            (Some(value), Some(target)) if value <= target => Verdict::Ok,
            (Some(_), Some(_)) => Verdict::OverTarget,
        }
    }
}

/// The rows for `ratios`; informational rows that were not measured are left out.
fn rows<'a>(ratios: &[&'a Ratio], results: &BTreeMap<String, f64>) -> Vec<Row<'a>> {
    ratios
        .iter()
        .map(|&ratio| Row {
            ratio,
            measured: results.get(ratio.measured).copied(),
            baseline: results.get(ratio.baseline).copied(),
        })
        .filter(|row| row.ratio.target.is_some() || row.value().is_some())
        .collect()
}

fn render_table(rows: &[Row<'_>]) -> String {
    let header = [
        "id", "what", "measured", "baseline", "ratio", "target", "verdict",
    ]
    .map(String::from);
    let dash = || "-".to_string();
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                row.ratio.id.to_string(),
                row.ratio.what.to_string(),
                row.measured.map_or_else(dash, format_time),
                row.baseline.map_or_else(dash, format_time),
                row.value().map_or_else(dash, |v| format!("{v:.2}x")),
                row.ratio.target.map_or_else(dash, |t| format!("<= {t:.2}")),
                match row.verdict() {
                    Verdict::Ok => "ok",
                    Verdict::OverTarget => "over target",
                    Verdict::Informational => "(info)",
                    Verdict::NotMeasured => "not measured",
                }
                .to_string(),
            ]
        })
        .collect();
    let mut widths = [0; 7];
    for line in std::iter::once(&header).chain(&lines) {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in std::iter::once(&header).chain(&lines) {
        let mut text = String::new();
        for (column, (cell, width)) in line.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            // Text columns are left-aligned, numbers right-aligned.
            if column < 2 || column == 6 {
                let _ = write!(text, "{cell}{pad}  ");
            } else {
                let _ = write!(text, "{pad}{cell}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// For each group with missing results, which full ids were missing and which were found.
fn hints(rows: &[Row<'_>], results: &BTreeMap<String, f64>) -> Vec<String> {
    let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for row in rows {
        for (id, mean) in [
            (row.ratio.measured, row.measured),
            (row.ratio.baseline, row.baseline),
        ] {
            let group = id.split('/').next().unwrap_or(id);
            let ids = missing.entry(group).or_default();
            if mean.is_none() && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let mut hints = Vec::new();
    for (group, ids) in missing.into_iter().filter(|(_, ids)| !ids.is_empty()) {
        let prefix = format!("{group}/");
        let found: Vec<&str> = results
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .map(String::as_str)
            .collect();
        let mut hint = format!("\nnot measured in {group}: {}", ids.join(", "));
        if found.is_empty() {
            let bench = BENCHES
                .iter()
                .find(|b| b.groups.contains(&group))
                .map_or("", |b| b.name);
            let _ = write!(
                hint,
                "\n  no criterion results under {group}/ at all; run `cargo xtask bench {bench}`"
            );
        } else {
            let _ = write!(
                hint,
                "\n  found under {group}/: {}\n  if the benchmarks were renamed, update RATIOS in xtask/src/bench.rs",
                found.join(", ")
            );
        }
        hints.push(hint);
    }
    hints
}

fn summary(rows: &[Row<'_>]) -> String {
    let count = |verdict: Verdict| rows.iter().filter(|r| r.verdict() == verdict).count();
    let (ok, over, missing) = (
        count(Verdict::Ok),
        count(Verdict::OverTarget),
        count(Verdict::NotMeasured),
    );
    format!("\ntargets: {ok} ok, {over} over target, {missing} not measured")
}

/// Formats a duration in nanoseconds with three significant digits: `84.4 ns`, `1.23 µs`.
fn format_time(ns: f64) -> String {
    let (value, unit) = if ns < 999.5 {
        (ns, "ns")
    } else if ns < 999.5e3 {
        (ns / 1e3, "µs")
    } else if ns < 999.5e6 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let decimals = if value < 9.995 {
        2
    } else if value < 99.95 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {unit}")
}

pub(crate) fn machine_info() -> String {
    let threads =
        std::thread::available_parallelism().map_or_else(|_| "?".to_string(), |n| n.to_string());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "machine: {threads} threads available, CPU: {cpu}, date: {year:04}-{month:02}-{day:02} (UTC)"
    )
}

/// The proleptic Gregorian date of the day `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A fresh, empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir =
                std::env::temp_dir().join(format!("xtask-{name}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes a criterion result the way criterion 0.8 lays it out on disk.
    fn write_result(root: &Path, dir: &str, kind: &str, full_id: &str, mean: f64) {
        let dir = root.join(dir).join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        let benchmark = serde_json::json!({
            "group_id": full_id.split('/').next().unwrap(),
            "function_id": "ignored",
            "value_str": null,
            "throughput": null,
            "full_id": full_id,
            "directory_name": "ignored",
            "title": full_id,
        });
        let estimates = serde_json::json!({
            "mean": {"point_estimate": mean, "standard_error": 1.0},
            "median": {"point_estimate": mean * 2.0},
        });
        std::fs::write(dir.join("benchmark.json"), benchmark.to_string()).unwrap();
        std::fs::write(dir.join("estimates.json"), estimates.to_string()).unwrap();
    }

    #[test]
    fn ratio_table_from_a_criterion_directory() {
        let tmp = TempDir::new("bench-ratios");
        let root = &tmp.0;
        write_result(root, "P10/blake3_key", "new", "P10/blake3_key", 100.0);
        write_result(root, "P10/owners_3", "new", "P10/owners_3", 150.0);
        // `base` holds the previous run and must be ignored.
        write_result(root, "P10/owners_3", "base", "P10/owners_3", 999.0);
        // Criterion mangles '/' in function names into '_' in directory names.
        write_result(
            root,
            "P1/get_hive_store/1t",
            "new",
            "P1/get/hive_store/1t",
            140.0,
        );
        write_result(root, "P1/get_dashmap/1t", "new", "P1/get/dashmap/1t", 100.0);
        write_result(
            root,
            "P1/get_mutex_hashmap/1t",
            "new",
            "P1/get/mutex_hashmap/1t",
            200.0,
        );
        write_result(root, "P1/put_store/1t", "new", "P1/put/store/1t", 1.0);
        std::fs::create_dir_all(root.join("report")).unwrap();

        let results = read_results(root).unwrap();
        assert_eq!(results.len(), 6);
        assert_eq!(results["P10/owners_3"], 150.0);

        let ratios: Vec<&Ratio> = RATIOS.iter().collect();
        let rows = rows(&ratios, &results);
        let find = |what: &str| rows.iter().find(|r| r.ratio.what == what).unwrap();

        let p10 = find("owners(key, 3) vs BLAKE3 of the key");
        assert_eq!(p10.value(), Some(1.5));
        assert_eq!(p10.verdict(), Verdict::Ok);
        let get = find("get, 1 thread, vs dashmap");
        assert_eq!(get.value(), Some(1.4));
        assert_eq!(get.verdict(), Verdict::OverTarget);
        assert_eq!(
            find("get, 1 thread, vs Mutex<HashMap>").verdict(),
            Verdict::Informational
        );
        assert_eq!(
            find("set, 1 thread, vs dashmap").verdict(),
            Verdict::NotMeasured
        );
        assert_eq!(
            find("typed get vs DashMap + rmp-serde").verdict(),
            Verdict::NotMeasured
        );
        // Informational rows without results are left out.
        assert!(
            !rows
                .iter()
                .any(|r| r.ratio.what == "set, 1 thread, vs Mutex<HashMap>")
        );

        let table = render_table(&rows);
        assert!(table.contains("150 ns"), "{table}");
        assert!(table.contains("1.50x"), "{table}");
        assert!(table.contains("over target"), "{table}");
        assert!(table.contains("not measured"), "{table}");

        let hints = hints(&rows, &results).join("\n");
        assert!(
            hints.contains("not measured in P1: P1/get/hive_store/2t"),
            "{hints}"
        );
        assert!(
            hints.contains("found under P1/: P1/get/dashmap/1t"),
            "{hints}"
        );
        assert!(hints.contains("P1/put/store/1t"), "{hints}");
        assert!(hints.contains("no criterion results under P2/"), "{hints}");
        assert!(!hints.contains("P10"), "{hints}");
        // Two targets have results in the fake directory; every other one is
        // not measured.
        let targets = RATIOS.iter().filter(|ratio| ratio.target.is_some()).count();
        assert_eq!(
            summary(&rows),
            format!(
                "\ntargets: 1 ok, 1 over target, {} not measured",
                targets - 2
            )
        );
    }

    #[test]
    fn missing_criterion_directory_gives_no_results() {
        let tmp = TempDir::new("bench-missing");
        assert!(read_results(&tmp.0.join("criterion")).unwrap().is_empty());
    }

    #[test]
    fn time_formatting() {
        assert_eq!(format_time(0.5), "0.50 ns");
        assert_eq!(format_time(84.384), "84.4 ns");
        assert_eq!(format_time(999.4), "999 ns");
        assert_eq!(format_time(999.6), "1.00 µs");
        assert_eq!(format_time(1_234.0), "1.23 µs");
        assert_eq!(format_time(56_780.0), "56.8 µs");
        assert_eq!(format_time(2_500_000.0), "2.50 ms");
        assert_eq!(format_time(3.2e9), "3.20 s");
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn argument_parsing() {
        let all: Vec<usize> = (0..BENCHES.len()).collect();
        let parsed = parse_args(&args(&[])).unwrap().unwrap();
        assert_eq!(
            parsed,
            Options {
                selected: all.clone(),
                smoke: false,
                criterion_args: vec![]
            }
        );

        let parsed = parse_args(&args(&["store", "--quick", "--", "--noplot"]))
            .unwrap()
            .unwrap();
        assert_eq!(BENCHES[parsed.selected[0]].name, "store");
        assert_eq!(
            parsed.criterion_args,
            args(&["--warm-up-time", "1", "--measurement-time", "2", "--noplot"])
        );

        let parsed = parse_args(&args(&["p10", "--smoke"])).unwrap().unwrap();
        assert_eq!(BENCHES[parsed.selected[0]].name, "ring");
        assert!(parsed.smoke);
        assert_eq!(parsed.criterion_args, args(&["--test"]));

        assert!(parse_args(&args(&["--help"])).unwrap().is_none());
        assert!(parse_args(&args(&["nope"])).is_err());
        assert!(parse_args(&args(&["ring", "store"])).is_err());
        assert!(parse_args(&args(&["--warm-up-time"])).is_err());
    }

    #[test]
    fn every_ratio_belongs_to_a_benchmark() {
        for ratio in RATIOS {
            assert!(
                BENCHES.iter().any(|b| b.groups.contains(&ratio.id)),
                "{ratio:?}"
            );
            for id in [ratio.measured, ratio.baseline] {
                assert!(id.starts_with(&format!("{}/", ratio.id)), "{ratio:?}");
            }
        }
    }
}
