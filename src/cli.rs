//! The command line: `orrery [--config FILE] [serve [--roles ...] | migrate | config show]`.
//! Settings problems exit with status 2; run-time failures with status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::settings::Settings;
use crate::state::Roles;

#[derive(Parser, Debug)]
#[command(
    name = "orrery",
    version,
    about = "A self-hosted orchestration server for the Prefect 3 client"
)]
struct Cli {
    /// A TOML file of settings, applied over the defaults (environment variables win over it).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve {
        /// Comma-separated parts this process runs: api, ui, services, events.
        #[arg(long, default_value = "api,ui,services,events")]
        roles: String,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Inspect the settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the effective settings, with passwords redacted.
    Show,
}

/// Parses the command line, loads settings and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprint!("orrery: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve {
        roles: "api,ui,services,events".into(),
    });
    let roles = match &command {
        Command::Serve { roles } => match Roles::parse(roles) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("orrery: {e}");
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    if let Command::Config {
        action: ConfigAction::Show,
    } = command
    {
        print!("{}", settings.redacted());
        return ExitCode::SUCCESS;
    }
    crate::telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orrery: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match roles {
            Some(roles) => crate::app::serve(settings, roles).await,
            None => migrate(Arc::new(settings)).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("orrery: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: Arc<Settings>) -> Result<(), String> {
    let stores = crate::storage::Stores::connect(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let applied = stores.migrate().await.map_err(|e| e.to_string())?;
    tracing::info!(applied, "migrations applied");
    println!("applied {applied} migration(s)");
    Ok(())
}
