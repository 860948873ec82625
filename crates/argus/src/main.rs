//! `argus`: the one binary. Subcommands live in their own modules; this file parses the
//! command line, sets up tracing, and maps errors to exit codes: 1 a failure, 3 drift found
//! (`drift compare --fail-on-drift`), 64 usage or configuration, 65 bad input data; `model
//! compare` exits 1 when the gate refuses the candidate.
mod cli;
mod config;
mod demo;
mod demo_drift;
mod demo_models;
mod drift;
mod env_ref;
mod explain;
mod export;
mod flags;
mod label;
mod metrics;
mod model;
mod model_eval;
mod produce;
mod score;
mod serve;
mod shutdown;
mod telemetry;
mod work;

use clap::Parser;
use std::process::ExitCode;

/// Exit code for usage and configuration errors (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for bad input data, e.g. a bad row with `--on-bad-row fail` (EX_DATAERR).
pub const EXIT_DATA: u8 = 65;
/// Exit code of `argus drift compare --fail-on-drift` when some segment drifted: the
/// comparison ran and found drift, which is neither a failure (1) nor bad usage (64).
pub const EXIT_DRIFT: u8 = 3;

/// An error that says whether it is the user's configuration (exit 64) or a runtime failure.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    /// The input data is bad (exit 65).
    Data(String),
    /// The comparison ran and found drift, with `--fail-on-drift` (exit 3).
    Drift(String),
    /// The promotion gate refused the candidate (exit 1, the reason on stderr).
    Refused(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Runtime(e)
    }
}

/// The configuration: defaults, `--config` file, `ARGUS_*` environment, the command's flags.
fn load_layers(
    file: Option<std::path::PathBuf>,
    flags: &dyn Fn(&mut config::Flags),
) -> Result<config::Loaded, CliError> {
    let mut sources = config::Sources {
        file,
        env: std::env::vars().collect(),
        ..Default::default()
    };
    flags(&mut sources.flags);
    config::load(sources).map_err(CliError::Usage)
}

fn load_config(
    file: Option<std::path::PathBuf>,
    flags: &dyn Fn(&mut config::Flags),
) -> Result<config::ArgusConfig, CliError> {
    load_layers(file, flags).map(|l| l.config)
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    telemetry::init_tracing(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("argus")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = cli.config.clone();
    let load = move |flags: &dyn Fn(&mut config::Flags)| load_config(file, flags);
    let result = runtime.block_on(async move {
        match cli.command {
            cli::Command::Demo(args) => {
                let c = load(&|f| args.flags(f))?;
                demo::run(demo::DemoArgs::new(c, args.cameras.brighten)).await
            }
            cli::Command::Produce(args) => {
                let c = load(&|f| args.flags(f))?;
                produce::run(args, c).await
            }
            cli::Command::Work(args) => work::run(load(&|f| args.flags(f))?).await,
            cli::Command::Score(args) => {
                score::run(score::ScoreArgs::new(load(&|f| args.flags(f))?)?).await
            }
            cli::Command::Serve(args) => serve::run(load(&|f| args.flags(f))?).await,
            cli::Command::Drift(cmd) => drift::run(cmd, |w| load(&|f| w.flags(f))).await,
            cli::Command::Model(cmd) => {
                let c = load(&|f| cmd.flags(f))?;
                model::run(cmd, c).await
            }
            cli::Command::Explain(args) => explain::run(args),
            cli::Command::Label(args) => {
                let c = load(&|f| args.flags(f))?;
                label::run(args, c).await
            }
            cli::Command::ExportTraining(args) => {
                let c = load(&|f| args.flags(f))?;
                export::run(args, c).await
            }
            cli::Command::Config(args) if args.role.as_deref() == Some(cli::ENV_REFERENCE) => {
                print!("{}", env_ref::markdown());
                Ok(())
            }
            cli::Command::Config(args) => {
                let loaded = load_layers(cli.config.clone(), &|f| args.kafka.flags(f))?;
                let text = loaded
                    .render(args.role.as_deref())
                    .map_err(CliError::Usage)?;
                print!("{text}");
                Ok(())
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(CliError::Data(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_DATA)
        }
        Err(CliError::Drift(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(EXIT_DRIFT)
        }
        Err(CliError::Refused(msg)) => {
            eprintln!("refused: {msg}");
            ExitCode::FAILURE
        }
        Err(CliError::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
