//! The filters of deployments and of work pools/queues as [`Where`] conditions, and the
//! deployments related to a run/flow filter (the reference's `_apply_deployment_filters`).

use super::build::{flow, flow_runs_related, id_conds, name_conds, strings_conds, tags_conds};
use super::ids;
use super::sql::Where;
use crate::col;
use crate::query::pools::{WorkPoolFilter, WorkQueueFilter};
use crate::query::DeploymentFilter;
use crate::query::Related;

pub fn deployment(f: &DeploymentFilter) -> Where {
    let mut c = Vec::new();
    id_conds(&mut c, &f.id, col!(deployments::id));
    name_conds(&mut c, &f.name, col!(deployments::name));
    if let Some(l) = f
        .flow_or_deployment_name
        .as_ref()
        .and_then(|n| n.like_.as_ref())
    {
        let pat = format!("%{}%", l.to_lowercase());
        c.push(Where::any(vec![
            Where::ilike(col!(deployments::name), pat.clone(), false),
            Where::in_select(
                col!(deployments::flow_id),
                col!(flows::id),
                Where::ilike(col!(flows::name), pat, false),
            ),
        ]));
    }
    if let Some(p) = f.paused.as_ref().and_then(|p| p.eq_) {
        c.push(Where::eq(col!(deployments::paused), p));
    }
    tags_conds(&mut c, &f.tags, col!(deployments::tags));
    strings_conds(
        &mut c,
        &f.work_queue_name,
        col!(deployments::work_queue_name),
    );
    Where::all(c)
}

/// Work queues matching the queue filter and in a pool matching the pool filter.
pub fn queues_in_pools(pools: Option<&WorkPoolFilter>, queues: Option<&WorkQueueFilter>) -> Where {
    let mut qc = Vec::new();
    if let Some(q) = queues {
        if let Some(v) = q.id.as_ref().and_then(|i| i.any_.as_ref()) {
            qc.push(Where::is_in(col!(work_queues::id), ids(v)));
        }
        if let Some(v) = q.name.as_ref().and_then(|n| n.any_.as_ref()) {
            qc.push(Where::is_in(col!(work_queues::name), v.clone()));
        }
    }
    if let Some(p) = pools {
        let mut pc = Vec::new();
        if let Some(v) = p.id.as_ref().and_then(|i| i.any_.as_ref()) {
            pc.push(Where::is_in(col!(work_pools::id), ids(v)));
        }
        if let Some(v) = p.name.as_ref().and_then(|n| n.any_.as_ref()) {
            pc.push(Where::is_in(col!(work_pools::name), v.clone()));
        }
        if let Some(v) = p.pool_type.as_ref().and_then(|n| n.any_.as_ref()) {
            pc.push(Where::is_in(col!(work_pools::pool_type), v.clone()));
        }
        qc.push(Where::in_select(
            col!(work_queues::work_pool_id),
            col!(work_pools::id),
            Where::all(pc),
        ));
    }
    Where::all(qc)
}

/// Flow runs whose queue is in a matching pool / is a matching queue.
pub fn runs_in_pools(pools: Option<&WorkPoolFilter>, queues: Option<&WorkQueueFilter>) -> Where {
    Where::in_select(
        col!(flow_runs::work_queue_id),
        col!(work_queues::id),
        queues_in_pools(pools, queues),
    )
}

/// Deployments matching the deployment filter, with a matching flow, a matching flow run (and
/// task run), and a queue matching the queue filter in a pool matching the pool filter (the
/// reference's `_apply_deployment_filters`).
pub fn deployments_related(r: &Related) -> Where {
    let mut c = Vec::new();
    if let Some(d) = &r.deployments {
        c.push(deployment(d));
    }
    if let Some(f) = &r.flows {
        c.push(Where::in_select(
            col!(deployments::flow_id),
            col!(flows::id),
            flow(f),
        ));
    }
    if let Some(runs) = super::build::runs_part(r) {
        c.push(Where::in_select(
            col!(deployments::id),
            col!(flow_runs::deployment_id),
            Where::all(vec![
                flow_runs_related(&runs),
                Where::not_null(col!(flow_runs::deployment_id)),
            ]),
        ));
    }
    let queues = r.work_pool_queues.as_ref().or(r.work_queues.as_ref());
    if r.work_pools.is_some() || queues.is_some() {
        c.push(Where::in_select(
            col!(deployments::work_queue_id),
            col!(work_queues::id),
            queues_in_pools(r.work_pools.as_ref(), queues),
        ));
    }
    Where::all(c)
}
