//! The command line: `orrery [--config FILE] [serve [--roles ...] | migrate | config show |
//! user add | workspace add | access grant | service-account add | api-key create|revoke|list]`.
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
    /// Users of the default account.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Workspaces.
    Workspace {
        #[command(subcommand)]
        action: WorkspaceAction,
    },
    /// Who may do what in a workspace.
    Access {
        #[command(subcommand)]
        action: AccessAction,
    },
    /// Service accounts (for workers and automation) of the default account.
    ServiceAccount {
        #[command(subcommand)]
        action: ServiceAccountAction,
    },
    /// API keys of users and service accounts.
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Teams of the default account (grant one a role with `access grant --team`).
    Team {
        #[command(subcommand)]
        action: TeamAction,
    },
}

#[derive(Subcommand, Debug)]
enum TeamAction {
    /// Add a team to the default account.
    Add {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Add a user or a service account to a team.
    AddMember {
        team: String,
        #[arg(long, group = "who")]
        user: Option<String>,
        #[arg(long, group = "who")]
        service_account: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum UserAction {
    /// Add a user to the default account.
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// owner, admin or member (owners and admins are owners of every workspace).
        #[arg(long, default_value = "member")]
        account_role: String,
        /// Read the user's password (for the UI and Basic credentials) from the first line of
        /// standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
enum WorkspaceAction {
    /// Add a workspace.
    Add {
        handle: String,
        #[arg(long)]
        name: Option<String>,
        /// The account's handle (the default account when not given).
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AccessAction {
    /// Give a user, service account or team a role in a workspace (replacing its role there).
    Grant {
        /// The workspace's handle (`ACCOUNT/HANDLE` for another account than the default).
        #[arg(long)]
        workspace: String,
        #[arg(long, group = "who")]
        user: Option<String>,
        #[arg(long, group = "who")]
        service_account: Option<String>,
        #[arg(long, group = "who")]
        team: Option<String>,
        /// owner, developer, runner, viewer or worker.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand, Debug)]
enum ServiceAccountAction {
    /// Add a service account to the default account.
    Add {
        name: String,
        #[arg(long, default_value = "member")]
        account_role: String,
    },
}

#[derive(Subcommand, Debug)]
enum ApiKeyAction {
    /// Make a key and print it (the only line on standard output; it is not shown again).
    Create {
        #[arg(long, group = "owner")]
        user: Option<String>,
        #[arg(long, group = "owner")]
        service_account: Option<String>,
        #[arg(long)]
        name: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a key by its id.
    Revoke { id: String },
    /// List keys (never the keys themselves).
    List,
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
        match (roles, command) {
            (Some(roles), _) => crate::app::serve(settings, roles).await,
            (None, Command::Migrate) => migrate(Arc::new(settings)).await,
            (None, admin) => administer(Arc::new(settings), admin).await,
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

/// The identity commands: each on the configured databases (migrated first, as `serve` would).
async fn administer(settings: Arc<Settings>, command: Command) -> Result<(), String> {
    use crate::auth::admin::{self, Target};
    let stores = crate::storage::Stores::connect(&settings)
        .await
        .map_err(|e| e.to_string())?;
    stores.migrate().await.map_err(|e| e.to_string())?;
    let target =
        |user: Option<String>, sa: Option<String>, team: Option<String>| match (user, sa, team) {
            (Some(u), None, None) => Ok(Target::User(u)),
            (None, Some(s), None) => Ok(Target::ServiceAccount(s)),
            (None, None, Some(t)) => Ok(Target::Team(t)),
            _ => Err("name exactly one of --user, --service-account or --team".to_string()),
        };
    match command {
        Command::User {
            action:
                UserAction::Add {
                    email,
                    name,
                    account_role,
                    password_stdin,
                },
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the password: {e}"))?;
                Some(line.trim_end_matches(['\r', '\n']).to_string())
            } else {
                None
            };
            let u = admin::add_user(
                &stores,
                &email,
                name.as_deref(),
                &account_role,
                password.as_deref(),
            )
            .await?;
            println!(
                "user {} added ({}, account role {})",
                u.email, u.id, u.account_role
            );
        }
        Command::Workspace {
            action:
                WorkspaceAction::Add {
                    handle,
                    name,
                    account,
                },
        } => {
            let w =
                admin::add_workspace(&stores, &handle, name.as_deref(), account.as_deref()).await?;
            println!(
                "workspace {} added: /api/accounts/{}/workspaces/{}",
                w.handle, w.account_id, w.id
            );
        }
        Command::Access {
            action:
                AccessAction::Grant {
                    workspace,
                    user,
                    service_account,
                    team,
                    role,
                },
        } => {
            let who = target(user, service_account, team)?;
            let w = admin::grant(&stores, &workspace, &who, &role).await?;
            println!("granted {role} in workspace {}", w.handle);
        }
        Command::Team {
            action: TeamAction::Add { name, description },
        } => {
            let t = admin::add_team(&stores, &name, description.as_deref()).await?;
            println!("team {} added ({})", t.name, t.id);
        }
        Command::Team {
            action:
                TeamAction::AddMember {
                    team,
                    user,
                    service_account,
                },
        } => {
            let who = target(user, service_account, None)?;
            admin::add_team_member(&stores, &team, &who).await?;
            println!("added to team {team}");
        }
        Command::ServiceAccount {
            action: ServiceAccountAction::Add { name, account_role },
        } => {
            let s = admin::add_service_account(&stores, &name, &account_role).await?;
            println!("service account {} added ({})", s.name, s.id);
        }
        Command::ApiKey { action } => match action {
            ApiKeyAction::Create {
                user,
                service_account,
                name,
                expires_in_days,
            } => {
                let who = target(user, service_account, None)?;
                let (row, key) = admin::create_key(&stores, &who, &name, expires_in_days).await?;
                eprintln!("API key {} created; it is shown once:", row.id);
                println!("{key}");
            }
            ApiKeyAction::Revoke { id } => {
                let hash = admin::revoke_key(&stores, &id).await?;
                // With Redis as the cache role, every replica stops accepting it now; an
                // in-memory cache (one process) within auth.cache_seconds.
                let brokers =
                    crate::broker::Brokers::connect(&crate::app::broker_config(&settings))
                        .await
                        .map_err(|e| e.to_string())?;
                crate::identity::forget_key(&brokers.cache, &hash).await;
                println!("API key {id} revoked");
            }
            ApiKeyAction::List => {
                let ts = |t: Option<chrono::NaiveDateTime>| {
                    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".into())
                };
                println!("ID\tNAME\tOWNER\tCREATED\tEXPIRES\tLAST USED\tREVOKED");
                for (k, owner) in admin::list_keys(&stores).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        k.id,
                        k.name,
                        owner.unwrap_or_else(|| format!("{} {}", k.actor_kind, k.actor_id)),
                        ts(Some(k.created)),
                        ts(k.expires),
                        ts(k.last_used),
                        ts(k.revoked)
                    );
                }
            }
        },
        Command::Serve { .. } | Command::Migrate | Command::Config { .. } => {}
    }
    Ok(())
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
