//! Work queues of a pool: create, read, filter, update, delete, and the find-or-create the
//! deployment routes share.

use super::*;

impl QueueCreate {
    /// A `WorkQueueCreate` with only a name (the queue a deployment or run names).
    pub fn named(name: String) -> QueueCreate {
        QueueCreate {
            name,
            description: None,
            is_paused: false,
            concurrency_limit: None,
            priority: None,
            filter: None,
        }
    }

    /// The field constraints of Prefect's `WorkQueueCreate`.
    pub fn validate(&self) -> ApiResult<()> {
        check_name(&self.name)?;
        non_negative("concurrency_limit", self.concurrency_limit)?;
        positive("priority", self.priority)
    }
}

impl QueueUpdate {
    /// The field constraints of Prefect's `WorkQueueUpdate`.
    pub fn validate(&self) -> ApiResult<()> {
        non_negative("concurrency_limit", self.concurrency_limit.flatten())?;
        positive("priority", self.priority)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_paused: bool,
    #[serde(default)]
    pub concurrency_limit: Option<i32>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default)]
    pub filter: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QueueUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_paused: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::common::present")]
    pub concurrency_limit: Option<Option<i32>>,
    #[serde(default)]
    pub priority: Option<i32>,
    #[serde(default, with = "crate::time::opt")]
    pub last_polled: Option<chrono::DateTime<Utc>>,
    #[serde(default)]
    pub filter: Option<Value>,
}

pub(super) async fn create_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    name: PathPool,
    body: Json<QueueCreate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    b.validate()?;
    let row = pool(&state, &ws, &name).await?;
    let q = match insert_queue(&state, &ws, &row, b).await {
        // The reference's message (its placeholder is not filled in).
        Err(ApiError::Detail(s, _)) if s == actix_web::http::StatusCode::CONFLICT => {
            return Err(ApiError::conflict(
                "A work queue with this name already exists in work pool {work_pool_name!r}.",
            ))
        }
        other => other?,
    };
    // A new queue has no runs: a limit reports 0 active slots.
    Ok(HttpResponse::Created().json(QueueOut::new(&q, Some(&row.name), None)))
}

/// The queue `b.name` of `pool`, created from `b` when missing. A concurrent request that
/// created it first wins: its queue is answered, not a 409.
pub async fn find_or_create_queue(
    state: &AppState,
    ws: &Workspace,
    pool: &PoolRow,
    b: QueueCreate,
) -> ApiResult<QueueRow> {
    let db = &state.stores.orion;
    if let Some(q) = wp::find_queue(&mut db.read().await?, ws.id(), &pool.id, &b.name).await? {
        return Ok(q);
    }
    let name = b.name.clone();
    match insert_queue(state, ws, pool, b).await {
        Ok(q) => Ok(q),
        Err(e) => wp::find_queue(&mut db.read().await?, ws.id(), &pool.id, &name)
            .await?
            .ok_or(e),
    }
}

/// Adds a queue to a pool: priority defaults to after the last queue; 409 on a duplicate name.
pub async fn insert_queue(
    state: &AppState,
    ws: &Workspace,
    pool: &PoolRow,
    b: QueueCreate,
) -> ApiResult<QueueRow> {
    b.validate()?;
    let priority = match b.priority {
        Some(p) => p,
        None => {
            // The first free priority (Prefect: the first gap in the sorted priorities, else
            // the highest plus one).
            let existing = wp::list_queues(
                &mut state.stores.orion.read().await?,
                ws.id(),
                Some(&pool.id),
                &WorkQueueFilter::default(),
                Page {
                    limit: i64::MAX / 2,
                    offset: 0,
                },
            )
            .await?;
            let mut taken: Vec<i32> = existing.iter().map(|q| q.priority).collect();
            taken.sort_unstable();
            taken
                .iter()
                .enumerate()
                .find(|(i, p)| *i as i32 + 1 != **p)
                .map(|(i, _)| i as i32 + 1)
                .unwrap_or_else(|| taken.last().copied().unwrap_or(0).saturating_add(1))
        }
    };
    let mut q = new_queue(
        ws.id(),
        &pool.id,
        &b.name,
        priority,
        crate::time::now().naive_utc(),
    );
    q.description = b.description.unwrap_or_default();
    q.is_paused = b.is_paused;
    q.concurrency_limit = b.concurrency_limit;
    q.filter = b.filter.filter(|f| !f.is_null()).map(|f| f.to_string());
    // An explicit priority that is taken pushes the other queues down (priorities stay unique).
    let (written, explicit) = (q.clone(), b.priority.is_some());
    let inserted = state
        .stores
        .orion
        .write(async move |c| wp::insert_queue(c, &written, explicit).await)
        .await;
    match inserted {
        Ok(()) => Ok(q),
        Err(crate::storage::StorageError::Conflict(_)) => Err(ApiError::conflict(
            "A work queue with this name already exists.",
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn queue_in_pool(
    state: &AppState,
    ws: &Workspace,
    pool_name: &str,
    name: &str,
) -> ApiResult<(PoolRow, QueueRow)> {
    let missing =
        || ApiError::not_found(format!("Work pool queue '{pool_name}/{name}' not found."));
    let mut c = state.stores.orion.read().await?;
    let p = wp::find_pool(&mut c, ws.id(), pool_name)
        .await?
        .ok_or_else(missing)?;
    let q = wp::find_queue(&mut c, ws.id(), &p.id, name)
        .await?
        .ok_or_else(missing)?;
    Ok((p, q))
}

pub(super) async fn read_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let (p, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    Ok(HttpResponse::Ok().json(one_queue_out(&state, &q, Some(&p.name), &wp::ACTIVE).await?))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct QueueListBody {
    work_queues: Option<WorkQueueFilter>,
    #[serde(flatten)]
    paging: Paging,
}

pub(super) async fn filter_queues(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    body: JsonOrDefault<QueueListBody>,
) -> ApiResult<HttpResponse> {
    let p = pool(&state, &ws, &pool_name).await?;
    let b = body.into_inner();
    let rows = wp::list_queues(
        &mut state.stores.orion.read().await?,
        ws.id(),
        Some(&p.id),
        &b.work_queues.unwrap_or_default(),
        b.paging.page(&state)?,
    )
    .await?;
    let names = std::collections::HashMap::from([(p.id.clone(), p.name.clone())]);
    Ok(HttpResponse::Ok().json(queues_out(&state, &rows, &names, &wp::ACTIVE).await?))
}

/// Applies an update to a queue row and saves it.
pub async fn apply_queue_update(
    state: &AppState,
    mut q: QueueRow,
    b: QueueUpdate,
) -> ApiResult<()> {
    if let Some(v) = b.name {
        q.name = v;
    }
    if let Some(v) = b.description {
        q.description = v;
    }
    if let Some(v) = b.is_paused {
        q.is_paused = v;
    }
    if let Some(v) = b.concurrency_limit {
        q.concurrency_limit = v;
    }
    let new_priority = b.priority.filter(|p| *p != q.priority);
    if let Some(v) = b.priority {
        q.priority = v;
    }
    if let Some(v) = b.last_polled {
        q.last_polled = Some(v.naive_utc());
    }
    if let Some(v) = b.filter {
        q.filter = (!v.is_null()).then(|| v.to_string());
    }
    q.updated = crate::time::now().naive_utc();
    state
        .stores
        .orion
        .write(async move |c| wp::update_queue(c, &q, new_priority).await)
        .await?;
    Ok(())
}

pub(super) async fn update_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
    body: Json<QueueUpdate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    b.validate()?;
    let (_, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    apply_queue_update(&state, q, b).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub(super) async fn delete_queue(
    state: web::Data<AppState>,
    ws: Workspace,
    pool_name: PathPool,
    name: PathName,
) -> ApiResult<HttpResponse> {
    let (p, q) = queue_in_pool(&state, &ws, &pool_name, &name).await?;
    if p.default_queue_id.as_deref() == Some(q.id.as_str()) {
        return Err(ApiError::bad_request(
            "Can't delete a pool's default queue.",
        ));
    }
    let ws = ws.id().clone();
    state
        .stores
        .orion
        .write(async move |c| wp::delete_queue(c, &ws, &q.id).await)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
