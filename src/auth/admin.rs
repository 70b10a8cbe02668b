//! Administration from the command line (`orrery user add`, `workspace add`, `access grant`,
//! `service-account add`, `api-key create|revoke|list`): each works against the configured
//! databases, with or without a server running. Errors are one sentence for the operator.

use chrono::{Duration, NaiveDateTime};
use uuid::Uuid;

use crate::identity::audit::{self, By, Change};
use crate::identity::{keys, AccountRole, Role};
use crate::storage::accounts::{Workspace, DEFAULT_ACCOUNT_ID};
use crate::storage::identities::{self, KeyRow, ServiceAccountRow, TeamRow, UserRow};
use crate::storage::{Conn, StorageError, StorageResult, Stores, WriteFn};

/// Who a key or a grant is for.
#[derive(Debug, Clone)]
pub enum Target {
    User(String),
    ServiceAccount(String),
    Team(String),
}

fn now() -> NaiveDateTime {
    crate::time::now_naive()
}

/// Audits a change made from the command line (written to the outbox; a running server
/// publishes it, or the next one to start). A failure is reported, not the change's.
async fn audited(stores: &Stores, change: Change<'_>) {
    if let Err(e) = audit::write(stores, &By::CommandLine, &[change]).await {
        tracing::warn!(error = %e, "could not write the audit event of a change");
    }
}

/// A refusal for the operator, carried through a storage closure.
fn refuse<T>(why: impl Into<String>) -> StorageResult<T> {
    Err(StorageError::Rejected(why.into()))
}

/// Runs `f` on the nebula writer (SQLite's readers cannot write); a refusal comes back as its
/// sentence, a uniqueness conflict as `conflict`.
async fn on_nebula<T, F>(stores: &Stores, conflict: String, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: for<'c> WriteFn<'c, T> + 'static,
{
    stores.nebula.write(f).await.map_err(|e| match e {
        StorageError::Rejected(why) => why,
        StorageError::Conflict(_) => conflict,
        other => other.to_string(),
    })
}

/// The account of handle `handle` (the default account when `None`).
async fn account(c: &mut Conn, handle: Option<&str>) -> StorageResult<String> {
    match handle {
        None => Ok(DEFAULT_ACCOUNT_ID.to_string()),
        Some(h) => match identities::account_by_handle(c, h).await? {
            Some(id) => Ok(id),
            None => refuse(format!("no account has the handle `{h}`")),
        },
    }
}

/// A workspace named `HANDLE` (default account) or `ACCOUNT/HANDLE`.
async fn workspace(c: &mut Conn, name: &str) -> StorageResult<Workspace> {
    let (account_handle, handle) = match name.split_once('/') {
        Some((a, w)) => (Some(a), w),
        None => (None, name),
    };
    let account_id = account(c, account_handle).await?;
    match identities::workspace_by_handle(c, &account_id, handle).await? {
        Some(ws) => Ok(ws),
        None => refuse(format!("no workspace has the handle `{name}`")),
    }
}

/// Whether `handle` is an account or workspace handle: 1 to 64 lowercase letters, digits and
/// dashes, not starting with a dash.
pub fn is_handle(handle: &str) -> bool {
    !handle.is_empty()
        && handle.len() <= 64
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !handle.starts_with('-')
}

fn valid_handle(handle: &str) -> Result<(), String> {
    is_handle(handle).then_some(()).ok_or_else(|| {
        format!("`{handle}` is not a handle: use 1 to 64 lowercase letters, digits and dashes")
    })
}

fn account_role(name: &str) -> Result<AccountRole, String> {
    AccountRole::parse(name)
        .ok_or_else(|| format!("`{name}` is not an account role (owner, admin, member)"))
}

pub async fn add_user(
    stores: &Stores,
    email: &str,
    name: Option<&str>,
    role: &str,
    password: Option<&str>,
) -> Result<UserRow, String> {
    let email = email.trim().to_ascii_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(format!("`{email}` is not an email address"));
    }
    let role = account_role(role)?;
    let password_hash = match password {
        Some(p) if p.chars().count() < 8 => {
            return Err("a password needs at least 8 characters".into())
        }
        Some(p) => Some(keys::hash_password(p)?),
        None => None,
    };
    let t = now();
    let row = UserRow {
        id: Uuid::new_v4().to_string(),
        created: t,
        updated: t,
        account_id: DEFAULT_ACCOUNT_ID.to_string(),
        name: name.map(str::to_string).unwrap_or_else(|| email.clone()),
        email,
        account_role: role.as_str().to_string(),
        password_hash,
    };
    let saved = row.clone();
    let conflict = format!("a user with the email `{}` exists", row.email);
    on_nebula(stores, conflict, async move |c| {
        identities::insert_user(c, &row).await
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "user",
            id: &saved.id,
            name: &saved.email,
            action: "created",
            account_id: &saved.account_id,
            workspace_id: None,
            payload: serde_json::json!({"account_role": saved.account_role}),
        },
    )
    .await;
    Ok(saved)
}

pub async fn add_workspace(
    stores: &Stores,
    handle: &str,
    name: Option<&str>,
    account_handle: Option<&str>,
) -> Result<Workspace, String> {
    valid_handle(handle)?;
    let ws = Workspace {
        id: Uuid::new_v4().to_string(),
        account_id: String::new(),
        name: name.unwrap_or(handle).to_string(),
        handle: handle.to_string(),
    };
    let account_handle = account_handle.map(str::to_string);
    let conflict = format!("the account has a workspace `{handle}` already");
    let ws = on_nebula(stores, conflict, async move |c| {
        let account_id = account(c, account_handle.as_deref()).await?;
        identities::insert_workspace(c, &ws.id, &account_id, &ws.handle, &ws.name, now()).await?;
        Ok(Workspace { account_id, ..ws })
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "workspace",
            id: &ws.id,
            name: &ws.handle,
            action: "created",
            account_id: &ws.account_id,
            workspace_id: Some(&ws.id),
            payload: serde_json::json!({"name": ws.name, "handle": ws.handle}),
        },
    )
    .await;
    Ok(ws)
}

pub async fn add_service_account(
    stores: &Stores,
    name: &str,
    role: &str,
) -> Result<ServiceAccountRow, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err("a service account needs a name of 1 to 200 characters".into());
    }
    let role = account_role(role)?;
    let t = now();
    let row = ServiceAccountRow {
        id: Uuid::new_v4().to_string(),
        created: t,
        updated: t,
        account_id: DEFAULT_ACCOUNT_ID.to_string(),
        name: name.to_string(),
        account_role: role.as_str().to_string(),
    };
    let saved = row.clone();
    let conflict = format!("a service account `{name}` exists");
    on_nebula(stores, conflict, async move |c| {
        identities::insert_service_account(c, &row).await
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "service-account",
            id: &saved.id,
            name: &saved.name,
            action: "created",
            account_id: &saved.account_id,
            workspace_id: None,
            payload: serde_json::json!({"account_role": saved.account_role}),
        },
    )
    .await;
    Ok(saved)
}

pub async fn add_team(
    stores: &Stores,
    name: &str,
    description: Option<&str>,
) -> Result<TeamRow, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err("a team needs a name of 1 to 200 characters".into());
    }
    let t = now();
    let row = TeamRow {
        id: Uuid::new_v4().to_string(),
        created: t,
        updated: t,
        account_id: DEFAULT_ACCOUNT_ID.to_string(),
        name: name.to_string(),
        description: description.unwrap_or_default().to_string(),
    };
    let saved = row.clone();
    on_nebula(stores, format!("a team `{name}` exists"), async move |c| {
        identities::insert_team(c, &row).await
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "team",
            id: &saved.id,
            name: &saved.name,
            action: "created",
            account_id: &saved.account_id,
            workspace_id: None,
            payload: serde_json::Value::Null,
        },
    )
    .await;
    Ok(saved)
}

/// Adds a user or service account of the default account to team `team` (by name).
pub async fn add_team_member(stores: &Stores, team: &str, who: &Target) -> Result<(), String> {
    if matches!(who, Target::Team(_)) {
        return Err("a team's members are users and service accounts".into());
    }
    let (team_name, who) = (team.to_string(), who.clone());
    let (team_id, kind, id) = on_nebula(stores, String::new(), async move |c| {
        let Some(team_id) = identities::team_by_name(c, DEFAULT_ACCOUNT_ID, &team_name).await?
        else {
            return refuse(format!("no team is named `{team_name}`"));
        };
        let (kind, id) = resolve(c, &who).await?;
        identities::add_team_member(c, &team_id, kind, &id).await?;
        Ok((team_id, kind, id))
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "team",
            id: &team_id,
            name: team,
            action: "members-added",
            account_id: DEFAULT_ACCOUNT_ID,
            workspace_id: None,
            payload: serde_json::json!({"members": [id], "kind": kind}),
        },
    )
    .await;
    Ok(())
}

/// (kind, id) of a target in the default account.
async fn resolve(c: &mut Conn, target: &Target) -> StorageResult<(&'static str, String)> {
    let found = match target {
        Target::User(email) => {
            let email = email.trim().to_ascii_lowercase();
            identities::user_by_email(c, &email)
                .await?
                .map(|u| (identities::USER, u.id))
        }
        Target::ServiceAccount(name) => {
            identities::service_account_by_name(c, DEFAULT_ACCOUNT_ID, name)
                .await?
                .map(|s| (identities::SERVICE_ACCOUNT, s.id))
        }
        Target::Team(name) => identities::team_by_name(c, DEFAULT_ACCOUNT_ID, name)
            .await?
            .map(|id| (identities::TEAM, id)),
    };
    match (found, target) {
        (Some(f), _) => Ok(f),
        (None, Target::User(email)) => refuse(format!("no user has the email `{email}`")),
        (None, Target::ServiceAccount(n)) => refuse(format!("no service account is named `{n}`")),
        (None, Target::Team(n)) => refuse(format!("no team is named `{n}`")),
    }
}

pub async fn grant(
    stores: &Stores,
    workspace_name: &str,
    target: &Target,
    role: &str,
) -> Result<Workspace, String> {
    let role = Role::parse(role).ok_or_else(|| {
        format!("`{role}` is not a workspace role (owner, developer, runner, viewer, worker)")
    })?;
    let workspace_name = workspace_name.to_string();
    let target = target.clone();
    let (ws, kind, id) = on_nebula(stores, String::new(), async move |c| {
        let ws = workspace(c, &workspace_name).await?;
        let (kind, id) = resolve(c, &target).await?;
        identities::grant(c, &ws.id, kind, &id, role.as_str(), now()).await?;
        Ok((ws, kind, id))
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "workspace-access",
            id: &id,
            name: kind,
            action: "granted",
            account_id: &ws.account_id,
            workspace_id: Some(&ws.id),
            payload: serde_json::json!({"grantee_kind": kind, "role": role.as_str()}),
        },
    )
    .await;
    Ok(ws)
}

/// Makes a key; returns its row and the key itself (shown once, never stored).
pub async fn create_key(
    stores: &Stores,
    target: &Target,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<(KeyRow, String), String> {
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        return Err("a key needs a name of 1 to 200 characters".into());
    }
    let t = now();
    let expires = match expires_in_days {
        Some(0) => return Err("--expires-in-days must be at least 1".into()),
        Some(d) => Some(
            t.checked_add_signed(Duration::days(i64::from(d)))
                .ok_or("--expires-in-days is too far in the future")?,
        ),
        None => None,
    };
    let target = target.clone();
    let made = on_nebula(stores, String::new(), async move |c| {
        let (kind, actor_id) = resolve(c, &target).await?;
        let prefix = match kind {
            identities::USER => "pnu_",
            identities::SERVICE_ACCOUNT => "pnb_",
            _ => return refuse("keys belong to a user or a service account, not a team"),
        };
        let key = match keys::generate(prefix) {
            Ok(k) => k,
            Err(e) => return refuse(e),
        };
        let secret = keys::secret_of(c).await?;
        let row = KeyRow {
            id: Uuid::new_v4().to_string(),
            created: t,
            name,
            actor_kind: kind.to_string(),
            actor_id,
            key_hash: keys::hash(&secret, &key),
            expires,
            last_used: None,
            revoked: None,
        };
        identities::insert_key(c, &row).await?;
        Ok((row, key))
    })
    .await?;
    audited(stores, key_change(&made.0, "created")).await;
    Ok(made)
}

/// The audit change of key `k`, in the default account (where the command line's actors are).
fn key_change<'a>(k: &'a KeyRow, action: &'a str) -> Change<'a> {
    Change {
        kind: "api-key",
        id: &k.id,
        name: &k.name,
        action,
        account_id: DEFAULT_ACCOUNT_ID,
        workspace_id: None,
        payload: serde_json::json!({"owner_kind": k.actor_kind, "owner_id": k.actor_id}),
    }
}

/// Revokes key `id` and returns its hash (for [`forget_key`](crate::identity::forget_key));
/// an error when there is no live key with that id.
pub async fn revoke_key(stores: &Stores, id: &str) -> Result<String, String> {
    let id = id.trim().to_string();
    let key_id = id.clone();
    let hash = on_nebula(stores, String::new(), async move |c| {
        if identities::revoke_key(c, &id, now()).await? {
            identities::key_hash(c, &id)
                .await?
                .ok_or(StorageError::NotFound)
        } else {
            refuse(format!("no live API key has the id `{id}`"))
        }
    })
    .await?;
    audited(
        stores,
        Change {
            kind: "api-key",
            id: &key_id,
            name: &key_id,
            action: "revoked",
            account_id: DEFAULT_ACCOUNT_ID,
            workspace_id: None,
            payload: serde_json::Value::Null,
        },
    )
    .await;
    Ok(hash)
}

pub async fn list_keys(stores: &Stores) -> Result<Vec<(KeyRow, Option<String>)>, String> {
    let mut c = stores.nebula.read().await.map_err(|e| e.to_string())?;
    identities::list_keys(&mut c)
        .await
        .map_err(|e| e.to_string())
}
