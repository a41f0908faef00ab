//! `ward validate --config FILE`: loads the config and its policy exactly as `ward run`
//! would, prints what would run, and exits 0; or prints every problem and exits 1.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CmdResult;
use crate::config::{Config, IdentityHeader, IdentitySource, OutboundMode, Protocol};
use crate::policy::Policy;

/// Arguments of `ward validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, env = "WARD_CONFIG", value_name = "FILE")]
    config: PathBuf,
}

/// Runs `ward validate`.
pub fn main(args: Args) -> CmdResult {
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            eprintln!("ward: {}: the config is invalid", args.config.display());
            return Ok(ExitCode::from(1));
        }
    };
    let policy = match &config.policy_file {
        Some(path) => match Policy::load(path) {
            Ok(policy) => Some((path, policy)),
            Err(err) => {
                eprintln!("{err}");
                eprintln!("ward: {}: the policy is invalid", path.display());
                return Ok(ExitCode::from(1));
            }
        },
        None => None,
    };
    println!("config {}: ok", args.config.display());
    print_summary(&config);
    if let Some((path, policy)) = policy {
        println!("policy {}: {} rules", path.display(), policy.len());
        if policy.is_empty() {
            println!("warning: the policy has no rules: every inbound peer is denied");
        }
        let known: Vec<&str> = config.inbound.iter().map(|l| l.name.as_str()).collect();
        for (rule, listener) in policy.unknown_listeners(&known) {
            let what = if config.listener_names().any(|n| n == listener) {
                "an outbound listener (policy applies to inbound listeners)"
            } else {
                "not a listener of this config"
            };
            println!("warning: rule {rule} names listener {listener}, which is {what}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(config: &Config) {
    match &config.identity {
        IdentitySource::WorkloadApi {
            socket,
            startup_timeout,
        } => {
            let env = std::env::var(ward_workload::addr::ENDPOINT_SOCKET_ENV).ok();
            let (at, from) = match (socket, &env) {
                (Some(s), _) => (s.as_str(), "config"),
                (None, Some(e)) => (e.as_str(), ward_workload::addr::ENDPOINT_SOCKET_ENV),
                (None, None) => ("(unset)", ward_workload::addr::ENDPOINT_SOCKET_ENV),
            };
            let wait = humantime::format_duration(*startup_timeout);
            println!("identity: Workload API at {at} (from {from}; first SVID within {wait})");
            if socket.is_none() && env.is_none() {
                println!(
                    "warning: no workload_api.socket and {} is not set: ward run cannot find \
                     the Workload API",
                    ward_workload::addr::ENDPOINT_SOCKET_ENV
                );
            }
        }
        IdentitySource::Files { cert, key, bundle } => {
            println!(
                "identity: files cert={} key={} bundle={}",
                cert.display(),
                key.display(),
                bundle.display()
            );
            for file in [cert, key, bundle] {
                if !file.exists() {
                    println!("warning: {} does not exist (yet)", file.display());
                }
            }
        }
    }
    match config.admin {
        Some(addr) => println!("admin: {addr}"),
        None => println!("admin: off"),
    }
    for l in &config.inbound {
        let mode = match l.protocol {
            Protocol::Tcp => "tcp".to_owned(),
            Protocol::Http => {
                let headers: Vec<&str> = l
                    .identity_headers
                    .iter()
                    .map(|h| match h {
                        IdentityHeader::XSpiffeId => "x-spiffe-id",
                        IdentityHeader::Xfcc => "xfcc",
                    })
                    .collect();
                format!("http, identity headers [{}]", headers.join(", "))
            }
        };
        println!("inbound {}: {} -> {} ({mode})", l.name, l.listen, l.target);
    }
    for l in &config.outbound {
        match &l.mode {
            OutboundMode::Tunnel { upstream, expect } => {
                let ids: Vec<&str> = expect.iter().map(|p| p.as_str()).collect();
                println!(
                    "outbound {}: {} -> {upstream} (expect {})",
                    l.name,
                    l.listen,
                    ids.join(", ")
                );
            }
            OutboundMode::HttpProxy { routes } => {
                println!(
                    "outbound {}: {} http proxy, {} routes",
                    l.name,
                    l.listen,
                    routes.len()
                );
                for r in routes {
                    let ids: Vec<&str> = r.expect.iter().map(|p| p.as_str()).collect();
                    println!(
                        "  route {} -> {} (expect {})",
                        r.host,
                        r.upstream,
                        ids.join(", ")
                    );
                }
            }
        }
    }
}
