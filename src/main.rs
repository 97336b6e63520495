//! `reredis`: CLI -> Config -> node, until SIGTERM/SIGINT or SHUTDOWN.

use std::process::ExitCode;

use reredis::cli::{self, LoadError};
use tracing_subscriber::EnvFilter;

fn init_logging(format: &str, level: &str) {
    let level = match level {
        "debug" => "debug",
        "verbose" => "info",
        "warning" => "warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let loaded = match cli::load(std::env::args_os(), std::env::vars()) {
        Ok(l) => l,
        Err(LoadError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("reredis: {e}");
            return ExitCode::from(1);
        }
    };
    if loaded.print_config {
        print!("{}", loaded.config.render());
        return ExitCode::SUCCESS;
    }
    init_logging(&loaded.config.log_format, &loaded.config.loglevel);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reredis: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let handle = match reredis::start(loaded.config).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{e:#}");
                return ExitCode::from(1);
            }
        };
        tokio::select! {
            _ = wait_for_signal() => tracing::info!("Received signal, shutting down"),
            _ = handle.stopped() => {}
        }
        handle.shutdown().await;
        tracing::info!("Reredis is now ready to exit, bye bye...");
        ExitCode::SUCCESS
    })
}
