//! `argus-bench`: the benchmark harnesses as their own binary, out of the product binary.
//! `argus-bench worker` is what `argus bench` was, `argus-bench drift` what
//! `argus drift bench` was; flags are unchanged. `argus-bench serve` and `argus-bench
//! evidence` are new. Exit codes as `argus`: 64 for bad options, 1 for a failed run.
mod cli;

use argus_bench::BenchError;
use clap::Parser;
use std::process::ExitCode;

/// Exit code for usage and configuration errors (sysexits EX_USAGE), as `argus`.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("argus-bench-rt")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            cli::Command::Worker(args) => argus_bench::worker::run(args.options()).await,
            cli::Command::Drift(args) => argus_bench::drift::run(args.options()).await,
            cli::Command::Serve(args) => argus_bench::serve::run(args.options()).await,
            cli::Command::Evidence(args) => argus_bench::evidence::run(args.options()).await,
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(BenchError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, `text` or `json`; level from `RUST_LOG` (default `info`).
fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
