//! Chooses the folder that `src/http/ui.rs` embeds, building the web UI first when it can.
//!
//! `cargo run --release` on a fresh clone must give a working UI, so when `frontend/dist` is
//! missing or older than the frontend's sources and npm is on the PATH, this runs `npm ci` (only
//! if `node_modules` is missing) and `npm run build`. Without npm, or when that fails, the build
//! goes on with a cargo warning: the node then embeds the last good `dist`, or else the committed
//! `src/http/ui-missing/` page that says how to build the UI. The Rust build never fails because
//! of the frontend. `SKIP_REREDIS_UI_BUILD=1` skips npm entirely (CI steps that build it first).
//!
//! The chosen folder reaches `#[derive(RustEmbed)]` as the `EMBED_REREDIS_UI_DIR` compile-time variable.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Inputs of the frontend build; a change in any of them makes `dist` stale.
const SOURCES: &[&str] = &[
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

pub fn prepare_frontend() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let frontend = root.join("frontend");
    let dist = frontend.join("dist");
    let index = dist.join("index.html");

    println!("cargo:rerun-if-env-changed=SKIP_REREDIS_UI_BUILD");
    println!("cargo:rerun-if-changed=src/http/ui-missing");
    for source in SOURCES {
        let path = frontend.join(source);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let skip = std::env::var_os("SKIP_REREDIS_UI_BUILD").is_some_and(|v| v != "0" && !v.is_empty());
    let wanted = frontend.join("package.json").exists() && !skip && is_stale(&frontend, &index);
    if wanted && let Err(why) = build_with_npm(&frontend) {
        println!(
            "cargo:warning=web UI not built ({why}); run `cd frontend && npm ci && npm run build`"
        );
    }

    let embedded = if index.exists() {
        // Watching dist means a `npm run build` by hand is picked up by the next cargo build.
        println!("cargo:rerun-if-changed={}", dist.display());
        dist
    } else {
        println!(
            "cargo:warning=frontend/dist is missing: the node will serve a page saying how to build the UI"
        );
        root.join("src/http/ui-missing")
    };
    println!(
        "cargo:rustc-env=EMBED_REREDIS_UI_DIR={}",
        embedded.display()
    );
}

fn is_stale(frontend: &Path, index: &Path) -> bool {
    let Some(built) = modified(index) else {
        return true;
    };
    SOURCES
        .iter()
        .filter_map(|source| newest(&frontend.join(source), 8))
        .any(|changed| changed > built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The newest modification time under `path`, descending at most `depth` folders.
fn newest(path: &Path, depth: usize) -> Option<SystemTime> {
    let own = modified(path);
    if !path.is_dir() || depth == 0 {
        return own;
    }
    let children = std::fs::read_dir(path).ok()?;
    children
        .filter_map(Result::ok)
        .filter_map(|entry| newest(&entry.path(), depth - 1))
        .chain(own)
        .max()
}

fn build_with_npm(frontend: &Path) -> Result<(), String> {
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let available = Command::new(npm)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !available {
        return Err("npm is not on the PATH".into());
    }
    if !frontend.join("node_modules").exists() {
        run(Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(frontend))?;
    }
    run(Command::new(npm)
        .args(["run", "build"])
        .current_dir(frontend))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(format!(
            "{shown} failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}
