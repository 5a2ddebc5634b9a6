//! `hived`'s options: flags, then `HIVE_*` environment variables, then a TOML
//! file (`--config`), in that order of precedence. `hived --help` lists every
//! one; the file uses the flags' long names as keys (`replication-factor = 2`,
//! `seed = ["10.0.0.4:7946"]`, `mem-limit = "4GiB"`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{FromArgMatches, Parser};

/// One Hive node as a process, serving clients over the Redis protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "hived", version, about, long_about = None)]
pub struct Options {
    /// A TOML file of options (keys are the long flag names); flags and
    /// environment variables override it.
    #[arg(long, env = "HIVE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Address clients connect to (RESP).
    #[arg(long, env = "HIVE_RESP", default_value = "127.0.0.1:6380")]
    pub resp: SocketAddr,
    /// Run as a cluster member: gossip on --bind/--port, join --seed.
    #[arg(long, env = "HIVE_CLUSTER")]
    pub cluster: bool,
    /// Gossip bind address (cluster mode).
    #[arg(long, env = "HIVE_BIND", default_value = "0.0.0.0")]
    pub bind: String,
    /// Gossip port (cluster mode); 0 picks a free one.
    #[arg(long, env = "HIVE_PORT", default_value_t = 7946)]
    pub port: u16,
    /// Peer RPC port (cluster mode); 0 picks a free one.
    #[arg(long, env = "HIVE_RPC_PORT", default_value_t = 0)]
    pub rpc_port: u16,
    /// Address other nodes should dial, when it differs from --bind.
    #[arg(long, env = "HIVE_ADVERTISE")]
    pub advertise: Option<String>,
    /// A member to join (host:port of its gossip address); repeat for several.
    /// Implies --cluster.
    #[arg(long = "seed", env = "HIVE_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Copies of each key (cluster mode).
    #[arg(long, env = "HIVE_REPLICATION_FACTOR", default_value_t = 1)]
    pub replication_factor: usize,
    /// Memory limit for stored data, such as 512MiB or 4GiB; 0 for none.
    #[arg(long, visible_alias = "maxmemory", env = "HIVE_MEM_LIMIT", default_value = "0", value_parser = parse_size)]
    pub mem_limit: u64,
    /// What goes when memory reaches the limit (Redis's names):
    /// `noeviction` refuses writes with OOM; `allkeys-lru`, `allkeys-lfu`,
    /// `allkeys-random`, `volatile-lru`, `volatile-lfu`, `volatile-random`
    /// and `volatile-ttl` evict.
    #[arg(long, env = "HIVE_MAXMEMORY_POLICY", default_value = "noeviction", value_parser = parse_policy)]
    pub maxmemory_policy: hive::EvictionPolicy,
    /// Keys sampled per eviction, 1 to 64.
    #[arg(long, env = "HIVE_MAXMEMORY_SAMPLES", default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub maxmemory_samples: u8,
    /// Node id; generated when empty.
    #[arg(long, env = "HIVE_NODE_ID", default_value = "")]
    pub node_id: String,
    /// Gossip timing: `lan` (default) or `local` (fast, for one machine).
    #[arg(long, env = "HIVE_GOSSIP", default_value = "lan", value_parser = ["lan", "local"])]
    pub gossip: String,
    /// Password clients must AUTH with.
    #[arg(long, env = "HIVE_PASSWORD")]
    pub requirepass: Option<String>,
    /// Log level filter (`info`, `debug`, `hive_cluster=debug`, ...).
    #[arg(long, env = "HIVE_LOG", default_value = "info")]
    pub log: String,
    /// Log format: `human` or `json` (one object per line).
    #[arg(long, env = "HIVE_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// Address of the Prometheus scrape endpoint (any path answers); off
    /// when unset.
    #[arg(long, env = "HIVE_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// Most reply bytes queued for one client, such as 1GiB (at least
    /// 1MiB): a reply larger than this is not sent, the client gets an error
    /// and is disconnected, and random picks (SRANDMEMBER, HRANDFIELD with a
    /// negative count) whose reply could be larger are refused. Replies are
    /// written out from 64KiB queued, and a client that does not read them
    /// is not served further commands until it does.
    #[arg(long, env = "HIVE_OUTPUT_BUFFER_LIMIT", default_value = "1GiB", value_parser = parse_output_limit)]
    pub output_buffer_limit: usize,
    /// Milliseconds of quiet after a membership change before data moves.
    #[arg(long, env = "HIVE_REBALANCE_DEBOUNCE_MS", default_value_t = 500)]
    pub rebalance_debounce_ms: u64,
    /// Milliseconds a deleted or expired key's tombstone is kept once every
    /// member has settled (none is kept shorter while a member is away);
    /// must exceed --rebalance-debounce-ms.
    #[arg(long, env = "HIVE_TOMBSTONE_RETENTION_MS", default_value_t = 120_000)]
    pub tombstone_retention_ms: u64,
    /// Directory for the snapshot: loaded at start (a corrupt one stops the
    /// start and is left as it is; in a cluster one older than
    /// --tombstone-retention-ms is discarded), written by SAVE, BGSAVE, every
    /// --save-interval and at shutdown. Off when unset.
    #[arg(long, env = "HIVE_DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Seconds between automatic snapshots with --dir; 0 saves only on
    /// SAVE, BGSAVE and shutdown.
    #[arg(long, env = "HIVE_SAVE_INTERVAL", default_value_t = 300)]
    pub save_interval: u64,
}

impl Options {
    /// Reads the options from `args` (the program name first), the environment
    /// and the `--config` file.
    pub fn load<I, T>(args: I) -> Result<Options, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let command = <Options as clap::CommandFactory>::command();
        let matches = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(LoadError::Args)?;
        let Some(path) = matches.get_one::<std::path::PathBuf>("config") else {
            return Options::from_arg_matches(&matches).map_err(LoadError::Args);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| LoadError::File(format!("reading {}: {err}", path.display())))?;
        let table: toml::Table = text
            .parse()
            .map_err(|err| LoadError::File(format!("{}: {err}", path.display())))?;
        // The file's settings become flags, placed before the real ones and
        // only for options neither a flag nor a variable set.
        let mut merged = vec![args[0].clone()];
        for (key, value) in &table {
            let Some(arg) = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(key.as_str()))
            else {
                return Err(LoadError::File(format!(
                    "{}: unknown option `{key}`",
                    path.display()
                )));
            };
            let id = arg.get_id().as_str();
            if matches!(
                matches.value_source(id),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            ) {
                continue;
            }
            let values: Vec<&toml::Value> = match value {
                toml::Value::Array(items) => items.iter().collect(),
                single => vec![single],
            };
            for value in values {
                let text = match value {
                    toml::Value::String(text) => text.clone(),
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Boolean(true) if !arg.get_action().takes_values() => {
                        merged.push(format!("--{key}").into());
                        continue;
                    }
                    toml::Value::Boolean(false) if !arg.get_action().takes_values() => continue,
                    other => {
                        return Err(LoadError::File(format!(
                            "{}: `{key}` cannot be {other}",
                            path.display()
                        )));
                    }
                };
                merged.push(format!("--{key}={text}").into());
            }
        }
        merged.extend(args.into_iter().skip(1));
        Options::try_parse_from(merged).map_err(LoadError::Args)
    }

    /// Returns the node configuration these options describe.
    pub fn node_config(&self) -> hive::Config {
        let cluster = self.cluster || !self.seeds.is_empty();
        hive::Config {
            node_id: self.node_id.clone(),
            mode: if cluster {
                hive::Mode::Cluster
            } else {
                hive::Mode::Standalone
            },
            bind_addr: self.bind.clone(),
            bind_port: self.port,
            rpc_port: self.rpc_port,
            advertise_addr: self.advertise.clone(),
            seeds: self.seeds.clone(),
            replication_factor: self.replication_factor,
            mem_limit: self.mem_limit,
            eviction: hive::Eviction {
                policy: self.maxmemory_policy,
                samples: usize::from(self.maxmemory_samples),
                ..hive::Eviction::default()
            },
            gossip_preset: if self.gossip == "local" {
                hive::GossipPreset::Local
            } else {
                hive::GossipPreset::Lan
            },
            rebalance_debounce: Duration::from_millis(self.rebalance_debounce_ms),
            tombstone_retention: Duration::from_millis(self.tombstone_retention_ms),
            data_dir: self.dir.clone(),
            snapshot_interval: (self.dir.is_some() && self.save_interval > 0)
                .then(|| Duration::from_secs(self.save_interval)),
            ..hive::Config::default()
        }
    }
}

fn parse_policy(name: &str) -> Result<hive::EvictionPolicy, String> {
    name.parse()
}

/// Why the options could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// The command line (or a value from the environment or the file) is
    /// invalid, or help or the version was asked for: clap reports it.
    Args(clap::Error),
    /// The `--config` file cannot be read or names an unknown option.
    File(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Args(err) => write!(f, "{err}"),
            LoadError::File(message) => f.write_str(message),
        }
    }
}

/// Parses a byte size: a number with an optional unit (`B`, `KB`, `KiB`, `MB`,
/// `MiB`, `GB`, `GiB`, `TB`, `TiB`; case-insensitive).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 512MiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" | "t" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `--output-buffer-limit`: a size of at least
/// [`crate::MIN_MAX_OUTPUT_BUFFER`].
fn parse_output_limit(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    usize::try_from(size)
        .ok()
        .filter(|size| *size >= crate::MIN_MAX_OUTPUT_BUFFER)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a size from {} bytes (1MiB) up",
                crate::MIN_MAX_OUTPUT_BUFFER
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn a_config_file_fills_in_what_flags_and_variables_leave_unset() {
        let dir = std::env::temp_dir().join(format!("hived-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hived.toml");
        std::fs::write(
            &file,
            "resp = \"127.0.0.1:7000\"\nreplication-factor = 3\nseed = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\nmem-limit = \"1GiB\"\ncluster = true\n",
        )
        .unwrap();
        let config = file.to_str().unwrap();
        let options = Options::load(["hived", "--config", config, "--replication-factor", "2"])
            .expect("loads");
        assert_eq!(options.resp, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(options.replication_factor, 2, "the flag wins over the file");
        assert_eq!(options.seeds, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(options.mem_limit, 1 << 30);
        assert!(options.cluster);
        std::fs::write(&file, "no-such-option = 1\n").unwrap();
        let refused = Options::load(["hived", "--config", config]);
        assert!(
            matches!(refused, Err(LoadError::File(message)) if message.contains("no-such-option"))
        );
        std::fs::write(&file, "port = \"not a number\"\n").unwrap();
        assert!(Options::load(["hived", "--config", config]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seeds_imply_cluster_mode() {
        let options = Options::parse_from(["hived", "--seed", "127.0.0.1:7946", "--port", "0"]);
        assert_eq!(options.node_config().mode, hive::Mode::Cluster);
        let options = Options::parse_from(["hived"]);
        assert_eq!(options.node_config().mode, hive::Mode::Standalone);
        assert_eq!(options.resp, "127.0.0.1:6380".parse().unwrap());
    }

    #[test]
    fn the_output_buffer_limit_defaults_to_1gib_and_refuses_tiny_sizes() {
        let options = Options::parse_from(["hived"]);
        assert_eq!(
            options.output_buffer_limit,
            crate::DEFAULT_MAX_OUTPUT_BUFFER
        );
        let options = Options::parse_from(["hived", "--output-buffer-limit", "16MiB"]);
        assert_eq!(options.output_buffer_limit, 16 << 20);
        assert!(Options::try_parse_from(["hived", "--output-buffer-limit", "0"]).is_err());
        assert!(Options::try_parse_from(["hived", "--output-buffer-limit", "64KiB"]).is_err());
    }
}
