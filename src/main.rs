//! `reredis`: CLI -> Config -> node, until SIGTERM/SIGINT or SHUTDOWN; `reredis healthcheck`
//! probes a running node's `/healthz`.

use std::process::ExitCode;

use reredis::cli::{self, LoadError};

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
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `reredis healthcheck [flags]`: the container probe (no curl in the runtime image).
    if args.get(1).is_some_and(|a| a == "healthcheck") {
        args.remove(1);
        return reredis::healthcheck::run(args, std::env::vars());
    }
    if args.get(1).is_some_and(|a| a == "check-aof") {
        return reredis::persist::check::main(&args[2..]);
    }
    let loaded = match cli::load(args, std::env::vars()) {
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
    // Logging starts inside the runtime: the OTLP exporter, when configured, runs on it.
    let telemetry = {
        let _rt = runtime.enter();
        reredis::observe::tracing::init(&loaded.config.log_format, &loaded.config.loglevel)
    };
    // A relative pid file is in `dir`, as Redis (which moves into `dir`) has it.
    let pidfile = Some(loaded.config.get("pidfile"))
        .filter(|p| !p.is_empty())
        .map(|p| std::path::Path::new(loaded.config.get("dir")).join(p));
    // Written before the first client is served, so whoever sees the node up finds it.
    if let Some(p) = &pidfile
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        // As Redis: a pid file that cannot be written is logged, not fatal.
        tracing::warn!("cannot write the pid file {}: {e}", p.display());
    }
    let code = runtime.block_on(async move {
        let handle = match reredis::start(loaded.config).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{e:#}");
                if let Some(p) = &pidfile {
                    let _ = std::fs::remove_file(p);
                }
                return ExitCode::from(1);
            }
        };
        loop {
            tokio::select! {
                _ = wait_for_signal() => {
                    tracing::info!("Received signal, shutting down");
                    // As Redis: a final snapshot that cannot be written keeps the node up.
                    if handle.save_before_shutdown().await.is_err() {
                        tracing::warn!("SIGTERM received but errors trying to shut down the server, check the logs for more information");
                        continue;
                    }
                }
                _ = handle.stopped() => {}
            }
            break;
        }
        let failure = handle.failure();
        handle.shutdown().await;
        if let Some(p) = &pidfile {
            let _ = std::fs::remove_file(p);
        }
        if let Some(why) = failure {
            tracing::error!("start-up failed: {why}");
            return ExitCode::from(1);
        }
        tracing::info!("Reredis is now ready to exit, bye bye...");
        ExitCode::SUCCESS
    });
    // Flushes buffered spans while the runtime still runs.
    {
        let _rt = runtime.enter();
        drop(telemetry);
    }
    code
}
