//! Connection and introspection commands: `PING`, `ECHO`, `HELLO`, `AUTH`,
//! `SELECT`, `QUIT`, `RESET`, `CLIENT`, `COMMAND`, `CONFIG GET`, `TIME`.

use bytes::Bytes;

use super::{Args, Command, Conn, handler, is, table};
use crate::glob;
use crate::resp::{Frame, Protocol};

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "ping",
        arity: -1,
        flags: &["fast", "stale"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Returns the server's liveliness response.",
        run: handler!(ping),
    },
    Command {
        name: "echo",
        arity: 2,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Returns the given string.",
        run: handler!(echo),
    },
    Command {
        name: "hello",
        arity: -1,
        flags: &["noauth", "fast", "no_auth"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Handshakes with the server: protocol version, authentication, client name.",
        run: handler!(hello),
    },
    Command {
        name: "auth",
        arity: -2,
        flags: &["noauth", "fast", "no_auth"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Authenticates the connection.",
        run: handler!(auth),
    },
    Command {
        name: "select",
        arity: 2,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Selects the database; Hive has only database 0.",
        run: handler!(select),
    },
    Command {
        name: "quit",
        arity: -1,
        flags: &["noauth", "fast", "no_auth"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Closes the connection.",
        run: handler!(quit),
    },
    Command {
        name: "reset",
        arity: 1,
        flags: &["noauth", "fast", "no_auth"],
        keys: (0, 0, 0),
        group: "connection",
        summary: "Resets the connection: RESP2, no name, unauthenticated if a password is set.",
        run: handler!(reset),
    },
    Command {
        name: "client",
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        group: "connection",
        summary: "CLIENT SETNAME, GETNAME, ID, INFO and SETINFO.",
        run: handler!(client),
    },
    Command {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Describes the commands: COMMAND, COMMAND COUNT, COMMAND INFO, COMMAND DOCS, COMMAND LIST.",
        run: handler!(command),
    },
    Command {
        name: "config",
        arity: -2,
        flags: &[],
        keys: (0, 0, 0),
        group: "server",
        summary: "CONFIG GET reports the listen address, limits and memory policy; CONFIG SET changes maxmemory-policy and maxmemory-samples.",
        run: handler!(config),
    },
    Command {
        name: "time",
        arity: 1,
        flags: &["fast"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Returns the server time: Unix seconds and microseconds.",
        run: handler!(time),
    },
];

async fn ping(_: &mut Conn, mut args: Args) -> Frame {
    match args.len() {
        1 => Frame::Simple("PONG"),
        2 => Frame::Bulk(args.swap_remove(1)),
        _ => Frame::err("wrong number of arguments for 'ping' command"),
    }
}

async fn echo(_: &mut Conn, mut args: Args) -> Frame {
    Frame::Bulk(args.swap_remove(1))
}

async fn hello(conn: &mut Conn, args: Args) -> Frame {
    let mut rest = args[1..].iter();
    let mut protocol = conn.protocol;
    let mut name = None;
    if let Some(version) = rest.next() {
        protocol = match version.as_ref() {
            b"2" => Protocol::Resp2,
            b"3" => Protocol::Resp3,
            _ => {
                return Frame::Error("NOPROTO unsupported protocol version".into());
            }
        };
    }
    while let Some(option) = rest.next() {
        if is(option, "auth") {
            let (Some(_user), Some(password)) = (rest.next(), rest.next()) else {
                return Frame::err("Syntax error in HELLO option 'auth'");
            };
            if let Err(refusal) = check_password(conn, password) {
                return refusal;
            }
        } else if is(option, "setname") {
            let Some(value) = rest.next() else {
                return Frame::err("Syntax error in HELLO option 'setname'");
            };
            name = Some(value.clone());
        } else {
            return Frame::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(option)
            ));
        }
    }
    if !conn.authenticated {
        return Frame::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        );
    }
    conn.protocol = protocol;
    if name.is_some() {
        conn.name = name;
    }
    let text = |value: &str| Frame::bulk(Bytes::copy_from_slice(value.as_bytes()));
    Frame::Map(vec![
        (text("server"), text("hive")),
        (text("version"), text(env!("CARGO_PKG_VERSION"))),
        (
            text("proto"),
            Frame::Integer(if protocol == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (text("id"), Frame::count(conn.id)),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Frame::Array(Vec::new())),
    ])
}

/// Authenticates `conn` with `password`, or returns the refusal.
fn check_password(conn: &mut Conn, password: &[u8]) -> Result<(), Frame> {
    match &conn.shared.password {
        None => Err(Frame::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        )),
        Some(expected) if expected.as_bytes() == password => {
            conn.authenticated = true;
            Ok(())
        }
        Some(_) => Err(Frame::Error(
            "WRONGPASS invalid username-password pair or user is disabled.".into(),
        )),
    }
}

async fn auth(conn: &mut Conn, args: Args) -> Frame {
    // AUTH password, or AUTH username password (only the default user exists).
    let password = match args.len() {
        2 => &args[1],
        3 => &args[2],
        _ => return Frame::err("syntax error"),
    };
    match check_password(conn, password) {
        Ok(()) => Frame::OK,
        Err(refusal) => refusal,
    }
}

async fn select(_: &mut Conn, args: Args) -> Frame {
    match args[1].as_ref() {
        b"0" => Frame::OK,
        _ => Frame::err("DB index is out of range"),
    }
}

async fn quit(conn: &mut Conn, _: Args) -> Frame {
    conn.closing = true;
    Frame::OK
}

async fn reset(conn: &mut Conn, _: Args) -> Frame {
    conn.protocol = Protocol::Resp2;
    conn.name = None;
    conn.authenticated = conn.shared.password.is_none();
    Frame::Simple("RESET")
}

async fn client(conn: &mut Conn, args: Args) -> Frame {
    let sub = &args[1];
    if is(sub, "setname") && args.len() == 3 {
        if args[2].iter().any(|byte| *byte <= b' ' || *byte > b'~') {
            return Frame::err(
                "Client names cannot contain spaces, newlines or special characters.",
            );
        }
        conn.name = (!args[2].is_empty()).then(|| args[2].clone());
        Frame::OK
    } else if is(sub, "getname") && args.len() == 2 {
        conn.name.clone().map_or(Frame::Null, Frame::Bulk)
    } else if is(sub, "id") && args.len() == 2 {
        Frame::count(conn.id)
    } else if is(sub, "info") && args.len() == 2 {
        let name = conn
            .name
            .as_ref()
            .map(|name| String::from_utf8_lossy(name).into_owned())
            .unwrap_or_default();
        let resp = if conn.protocol == Protocol::Resp3 {
            3
        } else {
            2
        };
        let addr =
            |addr: Option<std::net::SocketAddr>| addr.map(|a| a.to_string()).unwrap_or_default();
        Frame::bulk(format!(
            "id={} addr={} laddr={} name={name} db=0 resp={resp} lib-name={} lib-ver={}\n",
            conn.id,
            addr(conn.peer),
            addr(conn.local),
            conn.lib_name,
            conn.lib_ver,
        ))
    } else if is(sub, "setinfo") && args.len() == 4 {
        let value = &args[3];
        if value.iter().any(|byte| *byte <= b' ' || *byte > b'~') {
            return Frame::err(format!(
                "{} cannot contain spaces, newlines or special characters.",
                String::from_utf8_lossy(&args[2])
            ));
        }
        let value = String::from_utf8_lossy(value).into_owned();
        if is(&args[2], "lib-name") {
            conn.lib_name = value;
        } else if is(&args[2], "lib-ver") {
            conn.lib_ver = value;
        } else {
            return Frame::err(format!(
                "Unrecognized option '{}'",
                String::from_utf8_lossy(&args[2])
            ));
        }
        Frame::OK
    } else {
        Frame::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        ))
    }
}

async fn command(_: &mut Conn, args: Args) -> Frame {
    let Some(sub) = args.get(1) else {
        return Frame::Array(table().map(info).collect());
    };
    let named = || args[2..].iter().map(|name| super::lookup(name));
    if is(sub, "count") && args.len() == 2 {
        Frame::count(table().count())
    } else if is(sub, "info") {
        if args.len() == 2 {
            return Frame::Array(table().map(info).collect());
        }
        Frame::Array(
            named()
                .map(|found| found.map_or(Frame::NullArray, info))
                .collect(),
        )
    } else if is(sub, "list") {
        command_list(&args[2..])
    } else if is(sub, "docs") {
        let commands: Vec<_> = if args.len() == 2 {
            table().collect()
        } else {
            named().flatten().collect()
        };
        Frame::Map(
            commands
                .into_iter()
                .map(|command| (Frame::bulk(command.name), docs(command)))
                .collect(),
        )
    } else {
        Frame::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        ))
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | PATTERN pattern]`.
fn command_list(filter: &[Bytes]) -> Frame {
    let names = table().map(|command| command.name);
    let names: Vec<&str> = match filter {
        [] => names.collect(),
        [by, kind, pattern] if is(by, "filterby") && is(kind, "pattern") => names
            .filter(|name| glob::matches(&pattern.to_ascii_lowercase(), name.as_bytes()))
            .collect(),
        // Hive loads no modules.
        [by, kind, _] if is(by, "filterby") && is(kind, "module") => Vec::new(),
        _ => return Frame::err("syntax error"),
    };
    Frame::Array(names.into_iter().map(Frame::bulk).collect())
}

/// A command's `COMMAND INFO` entry, in Redis 7's shape.
fn info(command: &Command) -> Frame {
    let (first, last, step) = command.keys;
    Frame::Array(vec![
        Frame::bulk(command.name),
        Frame::Integer(command.arity.into()),
        Frame::Set(
            command
                .flags
                .iter()
                .map(|flag| Frame::Simple(flag))
                .collect(),
        ),
        Frame::Integer(first.into()),
        Frame::Integer(last.into()),
        Frame::Integer(step.into()),
        Frame::Set(vec![Frame::Simple(group_category(command.group))]),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

fn group_category(group: &str) -> &'static str {
    match group {
        "string" => "@string",
        "hash" => "@hash",
        "list" => "@list",
        "set" => "@set",
        "sorted-set" => "@sortedset",
        "generic" => "@keyspace",
        "connection" => "@connection",
        _ => "@admin",
    }
}

/// A command's `COMMAND DOCS` entry.
fn docs(command: &Command) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("summary"), Frame::bulk(command.summary)),
        (Frame::bulk("since"), Frame::bulk("1.0.0")),
        (Frame::bulk("group"), Frame::bulk(command.group)),
    ])
}

async fn config(conn: &mut Conn, args: Args) -> Frame {
    if is(&args[1], "get") && args.len() >= 3 {
        let eviction = conn.shared.node.eviction();
        let live = [
            ("maxmemory-policy", eviction.policy.redis_name().to_owned()),
            ("maxmemory-samples", eviction.samples.to_string()),
        ];
        Frame::Map(
            conn.shared
                .settings
                .iter()
                .cloned()
                .chain(live)
                .filter(|(name, _)| {
                    args[2..].iter().any(|pattern| {
                        glob::matches(&pattern.to_ascii_lowercase(), name.as_bytes())
                    })
                })
                .map(|(name, value)| (Frame::bulk(name), Frame::bulk(value)))
                .collect(),
        )
    } else if is(&args[1], "set") && args.len() >= 4 && args.len().is_multiple_of(2) {
        config_set(conn, &args[2..])
    } else {
        Frame::err(format!(
            "unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&args[1])
        ))
    }
}

/// `CONFIG SET name value [name value ...]`: all or nothing, as in Redis.
fn config_set(conn: &Conn, pairs: &[bytes::Bytes]) -> Frame {
    let node = &conn.shared.node;
    let mut eviction = node.eviction();
    for pair in pairs.chunks(2) {
        let (name, value) = (&pair[0], String::from_utf8_lossy(&pair[1]));
        let invalid = || {
            Frame::err(format!(
                "CONFIG SET failed (possibly related to argument '{}') - argument couldn't be parsed into an integer or is out of range",
                String::from_utf8_lossy(name)
            ))
        };
        if is(name, "maxmemory-policy") {
            match value.parse::<hive::EvictionPolicy>() {
                Ok(policy) => eviction.policy = policy,
                Err(_) => {
                    return Frame::err(format!(
                        "CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: {}",
                        hive::EvictionPolicy::ALL
                            .map(|policy| policy.redis_name())
                            .join(", ")
                    ));
                }
            }
        } else if is(name, "maxmemory-samples") {
            match value.parse::<usize>() {
                Ok(samples) if (1..=hive::MAX_EVICTION_SAMPLES).contains(&samples) => {
                    eviction.samples = samples;
                }
                _ => return invalid(),
            }
        } else {
            return Frame::err(format!(
                "Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            ));
        }
    }
    match node.set_eviction(eviction) {
        Ok(()) => Frame::OK,
        Err(error) => Frame::err(error.to_string()),
    }
}

async fn time(_: &mut Conn, _: Args) -> Frame {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros())
        .unwrap_or(0);
    Frame::Array(vec![
        Frame::bulk((micros / 1_000_000).to_string()),
        Frame::bulk((micros % 1_000_000).to_string()),
    ])
}
