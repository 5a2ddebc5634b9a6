//! Linux network namespaces for the process runners (`partition`, `chaos`):
//! one namespace per node, joined by veth pairs to a bridge in the root
//! namespace, where the runner stays and reaches every node throughout. The
//! runner can cut one node off from the others and heal the cut.
//!
//! A cut routes the traffic between the isolated node and every other node to
//! a neighbour that does not exist, in both directions: packets vanish
//! silently, as in a real partition (a blackhole route would fail the send at
//! once, which memberlist does not count as a failed probe).

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context as _, bail};

/// Returns why this run cannot set up namespaces, if it cannot.
pub(crate) fn missing_privileges() -> Option<&'static str> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("needs root to create network namespaces");
    }
    let ip = Command::new("ip").arg("-V").output();
    if !ip.is_ok_and(|out| out.status.success()) {
        return Some("needs iproute2 (`ip`)");
    }
    None
}

/// The namespaces, veth pairs and bridge of one run; removed on drop.
pub(crate) struct Net {
    /// Starts every interface and namespace name, unique per run.
    pub(crate) prefix: String,
    subnet: [u8; 3],
    /// Namespaces `0..nodes`, one per node.
    nodes: usize,
}

impl Net {
    /// Creates `nodes` namespaces, each with one address on a bridge the
    /// root namespace holds an address on too.
    pub(crate) fn create(nodes: usize) -> anyhow::Result<Net> {
        // Unique per run, so a leftover of a killed run cannot collide.
        let pid = std::process::id();
        let net = Net {
            prefix: format!("hv{}", pid % 100_000),
            subnet: [10, 213, u8::try_from(20 + pid % 200).expect("below 256")],
            nodes,
        };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.ip(254)),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for node in 0..nodes {
            let (ns, host, inner) = (net.ns(node), net.host_veth(node), net.inner_veth(node));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &bridge])?;
            ip(&["link", "set", &host, "up"])?;
            let addr = format!("{}/24", net.node_ip(node));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// The namespace of `node`.
    pub(crate) fn ns(&self, node: usize) -> String {
        format!("{}n{node}", self.prefix)
    }

    /// The address of `node`, reachable from the root namespace.
    pub(crate) fn node_ip(&self, node: usize) -> Ipv4Addr {
        self.ip(u8::try_from(node + 1).expect("a handful of nodes"))
    }

    /// Cuts `isolated` off from every other node, both directions. The
    /// bridge, and so the runner, still reaches every node.
    pub(crate) fn cut(&self, isolated: usize) -> anyhow::Result<()> {
        for (ns, dest) in self.cut_routes(isolated) {
            ip(&["-n", &ns, "route", "add", &dest, "via", &self.nowhere()])?;
        }
        Ok(())
    }

    /// Undoes [`Net::cut`] of `isolated`.
    pub(crate) fn heal(&self, isolated: usize) -> anyhow::Result<()> {
        for (ns, dest) in self.cut_routes(isolated) {
            ip(&["-n", &ns, "route", "del", &dest, "via", &self.nowhere()])?;
        }
        Ok(())
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    fn host_veth(&self, node: usize) -> String {
        format!("{}h{node}", self.prefix)
    }

    fn inner_veth(&self, node: usize) -> String {
        format!("{}c{node}", self.prefix)
    }

    fn ip(&self, last: u8) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, last)
    }

    /// An address on the subnet that no interface holds.
    fn nowhere(&self) -> String {
        self.ip(200).to_string()
    }

    /// The routes that cut `isolated` off: through a gateway nobody answers
    /// ARP for.
    fn cut_routes(&self, isolated: usize) -> Vec<(String, String)> {
        let mut routes = Vec::new();
        for other in (0..self.nodes).filter(|&other| other != isolated) {
            routes.push((self.ns(isolated), format!("{}/32", self.node_ip(other))));
            routes.push((self.ns(other), format!("{}/32", self.node_ip(isolated))));
        }
        routes
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the
        // pair; failures here (already gone) do not matter.
        for node in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.ns(node)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

/// Prints and runs `ip ARGS`, failing with its message if it fails.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    println!("$ ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
