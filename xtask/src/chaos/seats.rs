//! The chaos runner's members: one seat per member, with a fixed address and
//! fixed ports so a member restarts where it was, and the waits that tell a
//! fault is over.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::Settings;
use crate::cluster::{Member, Node};
use crate::netns::Net;

/// Short, so that the long pause outlasts it (it must exceed the rebalance
/// debounce, 100 ms).
const TOMBSTONE_RETENTION_MS: &str = "1000";
/// A fault is over once the cluster has looked settled for this long
/// without a break: a member restarted at once may look alive to the
/// others before they notice its new incarnation and start refilling it.
const STEADY: Duration = Duration::from_millis(1_500);
/// Bound on every wait for the cluster to settle.
const SETTLE: Duration = Duration::from_secs(60);
/// Ports every seat uses in its own network namespace.
const NETNS_PORTS: [u16; 3] = [6380, 7946, 7947];

/// A place for one member: fixed address and ports, so a member restarts
/// where it was. Seats `0..N` hold the cluster; seat N is the spare a
/// joining member takes.
pub(super) struct Seat {
    /// Its network namespace, when nodes run in namespaces.
    namespace: Option<String>,
    host: IpAddr,
    /// RESP, gossip and peer RPC.
    ports: [u16; 3],
    /// The id of the member running here, or that ran here last.
    pub(super) id: String,
    node: Option<Node>,
    /// `hived`'s stderr, appended to across restarts.
    log: PathBuf,
}

impl Seat {
    pub(super) fn resp(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.ports[0])
    }

    fn gossip(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.ports[1])
    }
}

pub(super) struct Cluster {
    binary: PathBuf,
    replication_factor: usize,
    pub(super) seats: Vec<Seat>,
    /// The number of the next new id (`node{n}`).
    next_id: usize,
    pub(super) logs: PathBuf,
    /// Declared after `seats`, so the processes go before their namespaces.
    pub(super) net: Option<Net>,
}

impl Cluster {
    pub(super) fn create(binary: &Path, settings: &Settings) -> anyhow::Result<Cluster> {
        let count = settings.nodes + 1;
        let logs = crate::workspace_root().join("target/chaos");
        std::fs::create_dir_all(&logs)?;
        let net = if settings.netns {
            Some(Net::create(count)?)
        } else {
            None
        };
        let ports = if net.is_some() {
            Vec::new()
        } else {
            loopback_ports(3 * count)?
        };
        let seats = (0..count)
            .map(|index| {
                let log = logs.join(format!("seat{index}.log"));
                File::create(&log)?;
                Ok(Seat {
                    namespace: net.as_ref().map(|net| net.ns(index)),
                    host: net.as_ref().map_or(IpAddr::from([127, 0, 0, 1]), |net| {
                        net.node_ip(index).into()
                    }),
                    ports: match net {
                        Some(_) => NETNS_PORTS,
                        None => [ports[3 * index], ports[3 * index + 1], ports[3 * index + 2]],
                    },
                    id: format!("node{}", index + 1),
                    node: None,
                    log,
                })
            })
            .collect::<anyhow::Result<Vec<Seat>>>()?;
        println!("chaos: hived logs in {}", logs.display());
        Ok(Cluster {
            binary: binary.to_path_buf(),
            replication_factor: settings.replication_factor,
            seats,
            next_id: settings.nodes + 1,
            logs,
            net,
        })
    }

    /// The panic messages in the members' logs, with the seat's log file.
    pub(super) fn panics(&self) -> Vec<String> {
        let mut panics = Vec::new();
        for seat in &self.seats {
            let log = std::fs::read_to_string(&seat.log).unwrap_or_default();
            let mut lines = log.lines();
            while let Some(line) = lines.next() {
                if line.contains("panicked at") {
                    let message = lines.next().unwrap_or_default();
                    panics.push(format!("{}: {line} {message}", seat.log.display()));
                }
            }
        }
        panics
    }

    /// The seat the spare member joins on.
    pub(super) fn spare(&self) -> usize {
        self.seats.len() - 1
    }

    /// Starts the seat's member (its current id), joining every running
    /// member, and waits until it serves clients.
    pub(super) fn start(&mut self, seat: usize) -> anyhow::Result<()> {
        let seeds: Vec<SocketAddr> = self
            .seats
            .iter()
            .filter(|other| other.node.is_some())
            .map(Seat::gossip)
            .collect();
        let place = &self.seats[seat];
        let member = Member {
            namespace: place.namespace.as_deref(),
            id: Some(&place.id),
            host: place.host,
            resp_port: place.ports[0],
            gossip_port: place.ports[1],
            rpc_port: Some(place.ports[2]),
            replication_factor: self.replication_factor,
            seeds: &seeds,
        };
        let mut command = member.command(&self.binary);
        command.args(["--tombstone-retention-ms", TOMBSTONE_RETENTION_MS]);
        println!("$ {}", crate::display_command(&command));
        let log = File::options().append(true).open(&place.log)?;
        if std::env::var_os("HIVE_CHAOS_LOG").is_some() {
            command.stdout(log.try_clone()?);
        }
        command.stderr(log);
        let child = command.spawn().context("starting hived")?;
        let node = Node::serving(child, place.resp()).with_context(|| {
            format!("{} on seat {seat} (log: {})", place.id, place.log.display())
        })?;
        self.seats[seat].node = Some(node);
        Ok(())
    }

    /// `kill -9`s the seat's member and reaps it.
    pub(super) fn kill(&mut self, seat: usize) -> anyhow::Result<()> {
        let mut node = self.seats[seat].node.take().context("no member to kill")?;
        node.signal("KILL")?;
        node.child.wait()?;
        node.alive = false;
        Ok(())
    }

    /// SIGTERMs the seat's member and waits for it to exit (it hands its
    /// data off and leaves); returns how long that took.
    pub(super) fn terminate(&mut self, seat: usize) -> anyhow::Result<Duration> {
        let mut node = self.seats[seat].node.take().context("no member to stop")?;
        let started = Instant::now();
        node.signal("TERM")?;
        let deadline = started + SETTLE;
        loop {
            if let Some(status) = node.child.try_wait()? {
                node.alive = false;
                if !status.success() {
                    bail!("{} exited with {status} after SIGTERM", self.seats[seat].id);
                }
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not exit within {SETTLE:?} of SIGTERM",
                    self.seats[seat].id
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn signal(&self, seat: usize, name: &str) -> anyhow::Result<()> {
        let node = self.seats[seat].node.as_ref().context("no member there")?;
        node.signal(name)
    }

    pub(super) fn running(&self) -> impl Iterator<Item = (&Seat, &Node)> {
        self.seats
            .iter()
            .filter_map(|seat| Some((seat, seat.node.as_ref()?)))
    }

    /// Polls `HIVE.STATUS` on every running member until each sees exactly
    /// the running members alive and nothing left to move, without a break
    /// for [`STEADY`]; returns how long until that began.
    pub(super) fn settle(&self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let expected: BTreeSet<&str> = self.running().map(|(seat, _)| seat.id.as_str()).collect();
        let mut since: Option<Instant> = None;
        loop {
            let mut last = Vec::new();
            let settled = self.running().all(|(seat, node)| match node.status() {
                Ok(status) => {
                    let alive: BTreeSet<&str> = status.alive().collect();
                    let settled = alive == expected && status.rebalance_pending == 0;
                    if !settled {
                        last.push(format!("{}: {status:?}", seat.id));
                    }
                    settled
                }
                Err(err) => {
                    last.push(format!("{}: {err:#}", seat.id));
                    false
                }
            });
            let now = Instant::now();
            if settled {
                let since = *since.get_or_insert(now);
                if now - since >= STEADY {
                    return Ok(since - started);
                }
            } else {
                since = None;
                if now - started > SETTLE {
                    bail!(
                        "the cluster did not settle on {expected:?} within {SETTLE:?}: {}",
                        last.join("; ")
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls the running members until none sees `id` alive or suspect.
    pub(super) fn detected(&self, id: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let detected = self.running().all(|(_, node)| {
                node.status().is_ok_and(|status| {
                    !status.members.iter().any(|(member, state)| {
                        member == id && (state == "alive" || state == "suspect")
                    })
                })
            });
            if detected {
                return Ok(started.elapsed());
            }
            if started.elapsed() > SETTLE {
                bail!("the others still see {id} within {SETTLE:?} of its crash");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Gives the seat a member id never used before.
    pub(super) fn new_id(&mut self, seat: usize) {
        self.seats[seat].id = format!("node{}", self.next_id);
        self.next_id += 1;
    }
}

/// `count` ports on 127.0.0.1, free now and below the ephemeral range, so
/// no outgoing connection takes one while its member is down.
fn loopback_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".to_owned());
    let ephemeral: u16 = range
        .split_whitespace()
        .next()
        .and_then(|low| low.parse().ok())
        .unwrap_or(32_768);
    let low = ephemeral.saturating_sub(12_000).max(1_024);
    let start = low + u16::try_from(std::process::id() % 8_000).expect("below 8000");
    let free = |port: u16| {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
    };
    let ports: Vec<u16> = (start..ephemeral)
        .filter(|&port| free(port))
        .take(count)
        .collect();
    if ports.len() < count {
        bail!("found only {} free ports from {start} up", ports.len());
    }
    Ok(ports)
}
