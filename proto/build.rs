//! Compiles `proto/hive/peer/v1/peer.proto` into Rust with protox (pure Rust, no
//! `protoc` binary) and tonic-prost-build; also writes the file descriptor set so
//! the crate can expose it.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["hive/peer/v1/peer.proto"], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    std::fs::write(
        out_dir.join("hive_peer_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .bytes(".") // every `bytes` field becomes `bytes::Bytes`: payloads are not copied
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
