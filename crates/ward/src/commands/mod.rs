//! One module per subcommand. Each exposes `Args` (clap) and `main(Args)`.

pub mod demo;
pub mod dev;
pub mod fetch;
pub mod inbound;
pub mod inspect;
pub mod outbound;
pub mod policy;
pub mod run;
pub mod validate;

/// What a subcommand returns: an exit code, or an error printed as `ward: error: ...`.
pub type CmdResult = Result<std::process::ExitCode, Box<dyn std::error::Error + Send + Sync>>;
