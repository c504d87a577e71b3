//! Compiles every `.proto` file under `proto/` (needs `protoc`, Debian package
//! `protobuf-compiler`; `make deps` installs it).
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    if files.is_empty() {
        return Ok(());
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // File contents as `Bytes`: decoded without a copy (slices of the received buffer)
        // and forwarded from one hop to the next as they are.
        .bytes(".wrenn.hostagent.v1.WriteFileStreamRequest")
        .bytes(".wrenn.hostagent.v1.FileChunk")
        .compile_protos(&files, &[dir])?;
    Ok(())
}
