//! One module per subcommand. Each exposes `Args` (clap) and `main(Args)`.

pub mod dev;
pub mod fetch;
pub mod inspect;

/// What a subcommand returns: an exit code, or an error printed as `ward: error: ...`.
pub type CmdResult = Result<std::process::ExitCode, Box<dyn std::error::Error + Send + Sync>>;
