//! `ward run --config FILE`: the sidecar, every listener of the config file.
//!
//! Shared by `ward inbound` / `ward outbound`, which build the same [`Config`] in
//! memory: [`serve`] starts the identity source, binds every listener, serves until
//! SIGTERM/SIGINT, drains, and returns exit code 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::CmdResult;
use crate::config::Config;
use crate::policy::{Policy, PolicyHandle};
use crate::proxy::{identity, Metrics, Proxy};
use crate::reload::PolicyReloader;

/// Arguments of `ward run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (YAML).
    #[arg(long, short, env = "WARD_CONFIG")]
    pub config: PathBuf,
}

/// Runs `ward run`.
pub fn main(args: Args) -> CmdResult {
    let config = Config::load(&args.config)?;
    let policy = match &config.policy_file {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    runtime()?.block_on(serve(config, policy))
}

/// The runtime: one thread unless `WARD_WORKER_THREADS` says otherwise. On the shared
/// bench a current-thread runtime beat a work-stealing one (a sidecar shares its core
/// with the app; stealing only adds latency).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::env::var("WARD_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Starts identity, binds everything, serves until a signal, drains; exit 0.
pub async fn serve(config: Config, policy: Policy) -> CmdResult {
    let metrics = Arc::new(Metrics::new());
    let names: Vec<&str> = config.listener_names().collect();
    for (rule, listener) in policy.unknown_listeners(&names) {
        tracing::warn!(
            rule,
            listener,
            "policy rule names a listener this config does not have"
        );
    }
    let policy = PolicyHandle::new(policy);
    let source = identity::start(&config.identity).await?;
    if let Some(path) = &config.policy_file {
        let reloader = PolicyReloader::new(policy.clone(), path.clone());
        reloader.spawn()?;
        metrics.follow_policy_reloads(reloader.stats());
    }
    let proxy = Proxy::bind(&config, source, policy, metrics).await?;
    proxy.run(shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
