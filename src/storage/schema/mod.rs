//! Diesel table definitions shared by both backends (portable types: ids and JSON as text,
//! timestamps as naive UTC). Orion and events tables carry `workspace_id` on every row.

diesel::table! {
    accounts (id) {
        id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        handle -> Text,
    }
}

diesel::table! {
    workspaces (id) {
        id -> Text,
        account_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        handle -> Text,
        description -> Text,
    }
}

diesel::table! {
    flows (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        tags -> Text,
        labels -> Text,
    }
}

diesel::table! {
    flow_runs (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        flow_id -> Text,
        state_id -> Nullable<Text>,
        state_type -> Nullable<Text>,
        state_name -> Nullable<Text>,
        state_timestamp -> Nullable<Timestamp>,
        deployment_id -> Nullable<Text>,
        deployment_version -> Nullable<Text>,
        work_queue_id -> Nullable<Text>,
        work_queue_name -> Nullable<Text>,
        work_pool_id -> Nullable<Text>,
        work_pool_name -> Nullable<Text>,
        flow_version -> Nullable<Text>,
        parameters -> Text,
        idempotency_key -> Nullable<Text>,
        context -> Text,
        empirical_policy -> Text,
        tags -> Text,
        labels -> Text,
        parent_task_run_id -> Nullable<Text>,
        run_count -> BigInt,
        expected_start_time -> Nullable<Timestamp>,
        next_scheduled_start_time -> Nullable<Timestamp>,
        start_time -> Nullable<Timestamp>,
        end_time -> Nullable<Timestamp>,
        total_run_time -> Double,
        auto_scheduled -> Bool,
        infrastructure_document_id -> Nullable<Text>,
        infrastructure_pid -> Nullable<Text>,
        created_by -> Nullable<Text>,
        job_variables -> Text,
    }
}

diesel::table! {
    flow_run_states (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        flow_run_id -> Text,
        #[sql_name = "type"]
        state_type -> Text,
        name -> Text,
        timestamp -> Timestamp,
        message -> Nullable<Text>,
        data -> Nullable<Text>,
        state_details -> Text,
    }
}

diesel::table! {
    task_runs (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        flow_run_id -> Nullable<Text>,
        task_key -> Text,
        dynamic_key -> Text,
        cache_key -> Nullable<Text>,
        cache_expiration -> Nullable<Timestamp>,
        task_version -> Nullable<Text>,
        empirical_policy -> Text,
        tags -> Text,
        labels -> Text,
        task_inputs -> Text,
        state_id -> Nullable<Text>,
        state_type -> Nullable<Text>,
        state_name -> Nullable<Text>,
        state_timestamp -> Nullable<Timestamp>,
        run_count -> BigInt,
        flow_run_run_count -> BigInt,
        expected_start_time -> Nullable<Timestamp>,
        next_scheduled_start_time -> Nullable<Timestamp>,
        start_time -> Nullable<Timestamp>,
        end_time -> Nullable<Timestamp>,
        total_run_time -> Double,
    }
}

diesel::table! {
    task_run_states (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        task_run_id -> Text,
        #[sql_name = "type"]
        state_type -> Text,
        name -> Text,
        timestamp -> Timestamp,
        message -> Nullable<Text>,
        data -> Nullable<Text>,
        state_details -> Text,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        workspace_id -> Text,
        occurred -> Timestamp,
        received -> Timestamp,
        event -> Text,
        resource_id -> Text,
        resource -> Text,
        related -> Text,
        payload -> Text,
        follows -> Nullable<Text>,
    }
}

diesel::table! {
    event_resources (event_id, resource_id, resource_role) {
        event_id -> Text,
        workspace_id -> Text,
        occurred -> Timestamp,
        resource_id -> Text,
        resource_role -> Text,
        resource -> Text,
    }
}

diesel::table! {
    /// Events per workspace, hour and event name (maintained with `events` by the persister and
    /// retention): what counts and totals read instead of the events of whole hours.
    event_counts (workspace_id, hour, event) {
        workspace_id -> Text,
        hour -> Timestamp,
        event -> Text,
        count -> BigInt,
        first_occurred -> Timestamp,
        last_occurred -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(events, event_resources);

diesel::table! {
    automations (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        description -> Text,
        enabled -> Bool,
        tags -> Text,
        trigger -> Text,
        actions -> Text,
        actions_on_trigger -> Text,
        actions_on_resolve -> Text,
    }
}

diesel::table! {
    automation_related_resources (automation_id, resource_id) {
        workspace_id -> Text,
        automation_id -> Text,
        resource_id -> Text,
        owned_by_resource -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(automations, automation_related_resources);

diesel::table! {
    webhooks (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        description -> Text,
        enabled -> Bool,
        template -> Text,
        slug -> Text,
        service_account_id -> Nullable<Text>,
    }
}

diesel::table! {
    automation_evaluated_events (event_id) {
        event_id -> Text,
        evaluated -> Timestamp,
    }
}

diesel::table! {
    automation_buckets (automation_id, trigger_id, bucketing_key) {
        workspace_id -> Text,
        automation_id -> Text,
        trigger_id -> Text,
        bucketing_key -> Text,
        window_start -> Timestamp,
        window_end -> Timestamp,
        count -> BigInt,
        last_event -> Nullable<Text>,
        updated -> Timestamp,
    }
}

diesel::table! {
    automation_child_firings (automation_id, parent_trigger_id, child_trigger_id) {
        automation_id -> Text,
        parent_trigger_id -> Text,
        child_trigger_id -> Text,
        child_firing_id -> Text,
        child_fired_at -> Timestamp,
        child_firing -> Text,
    }
}

diesel::table! {
    automation_actions (id) {
        id -> Text,
        workspace_id -> Text,
        automation_id -> Text,
        created -> Timestamp,
        action_index -> Integer,
        triggered_action -> Text,
        state -> Text,
        attempts -> Integer,
        not_before -> Timestamp,
        finished -> Nullable<Timestamp>,
        reason -> Nullable<Text>,
    }
}

diesel::table! {
    logs (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        level -> Integer,
        message -> Text,
        timestamp -> Timestamp,
        flow_run_id -> Nullable<Text>,
        task_run_id -> Nullable<Text>,
        worker_id -> Nullable<Text>,
    }
}

diesel::table! {
    event_outbox (seq) {
        seq -> BigInt,
        workspace_id -> Text,
        created -> Timestamp,
        event_id -> Text,
        event -> Text,
        published -> Nullable<Timestamp>,
        pending -> Integer,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    flows,
    flow_runs,
    flow_run_states,
    task_runs,
    task_run_states,
    logs
);

diesel::table! {
    configuration (workspace_id, key) {
        workspace_id -> Text,
        key -> Text,
        value -> Nullable<Text>,
        updated -> Timestamp,
    }
}

diesel::table! {
    task_run_state_cache (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        cache_key -> Text,
        cache_expiration -> Nullable<Timestamp>,
        task_run_state_id -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(task_run_state_cache, task_run_states);

diesel::table! {
    concurrency_limits (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        active -> Bool,
        name -> Text,
        #[sql_name = "limit"]
        limit_ -> Integer,
        active_slots -> Integer,
        denied_slots -> Integer,
        slot_decay_per_second -> Double,
        avg_slot_occupancy_seconds -> Double,
    }
}

diesel::table! {
    concurrency_leases (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        expiration -> Timestamp,
        limit_ids -> Text,
        slots -> Integer,
        holder -> Nullable<Text>,
    }
}

diesel::table! {
    work_pools (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        description -> Nullable<Text>,
        #[sql_name = "type"]
        pool_type -> Text,
        base_job_template -> Text,
        is_paused -> Bool,
        concurrency_limit -> Nullable<Integer>,
        status -> Text,
        default_queue_id -> Nullable<Text>,
        storage_configuration -> Text,
    }
}

diesel::table! {
    work_queues (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        description -> Text,
        is_paused -> Bool,
        concurrency_limit -> Nullable<Integer>,
        priority -> Integer,
        work_pool_id -> Text,
        filter -> Nullable<Text>,
        last_polled -> Nullable<Timestamp>,
        status -> Text,
    }
}

diesel::table! {
    workers (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        work_pool_id -> Text,
        last_heartbeat_time -> Timestamp,
        heartbeat_interval_seconds -> Nullable<Integer>,
        status -> Text,
    }
}

diesel::table! {
    deployments (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        version -> Nullable<Text>,
        description -> Nullable<Text>,
        flow_id -> Text,
        paused -> Bool,
        concurrency_limit -> Nullable<Integer>,
        concurrency_options -> Nullable<Text>,
        global_concurrency_limit_id -> Nullable<Text>,
        job_variables -> Text,
        parameters -> Text,
        tags -> Text,
        labels -> Text,
        work_queue_name -> Nullable<Text>,
        work_queue_id -> Nullable<Text>,
        last_polled -> Nullable<Timestamp>,
        parameter_openapi_schema -> Nullable<Text>,
        path -> Nullable<Text>,
        pull_steps -> Nullable<Text>,
        entrypoint -> Nullable<Text>,
        storage_document_id -> Nullable<Text>,
        infrastructure_document_id -> Nullable<Text>,
        created_by -> Nullable<Text>,
        updated_by -> Nullable<Text>,
        status -> Text,
        enforce_parameter_schema -> Bool,
        version_info -> Nullable<Text>,
    }
}

diesel::table! {
    deployment_schedules (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        deployment_id -> Text,
        schedule -> Text,
        active -> Bool,
        max_scheduled_runs -> Nullable<Integer>,
        parameters -> Text,
        slug -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    work_pools,
    work_queues,
    workers,
    deployments,
    deployment_schedules
);
diesel::allow_tables_to_appear_in_same_query!(work_queues, flow_runs);
diesel::allow_tables_to_appear_in_same_query!(work_pools, flow_runs);
diesel::allow_tables_to_appear_in_same_query!(deployments, flow_runs);
diesel::allow_tables_to_appear_in_same_query!(deployments, flows);
diesel::allow_tables_to_appear_in_same_query!(work_queues, flows);
diesel::allow_tables_to_appear_in_same_query!(work_pools, flows);
diesel::allow_tables_to_appear_in_same_query!(deployments, flow_run_states);

mod resources;
pub use resources::*;
mod nebula;
pub use nebula::*;
