//! Build steps that run before the crate compiles: the cluster bus's protobuf code (here) and
//! the web UI (`build/ui.rs`).

#[path = "build/ui.rs"]
mod ui;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos()?;
    ui::prepare_frontend();
    Ok(())
}

/// Compiles proto/cluster.proto with a vendored protoc, so a fresh machine needs nothing installed.
fn compile_protos() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    tonic_prost_build::configure()
        // Published messages are shared between the queues of every peer without copies.
        .bytes(".reredis.cluster.v1.PublishedMessage")
        .compile_protos(&["proto/cluster.proto"], &["proto"])?;
    Ok(())
}
