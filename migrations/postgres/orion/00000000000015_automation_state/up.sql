-- The state of trigger evaluation and the actions it started.
--
-- automation_buckets: one open window per (automation, event trigger, for_each key), counting the
-- events the trigger expects (Prefect's automation_bucket). The key is the JSON array of the
-- for_each label values.
CREATE TABLE automation_buckets (
    workspace_id TEXT NOT NULL,
    automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    trigger_id TEXT NOT NULL,
    bucketing_key TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    count BIGINT NOT NULL,
    last_event TEXT,
    updated TIMESTAMP NOT NULL,
    PRIMARY KEY (automation_id, trigger_id, bucketing_key)
);
-- The sweep of closed windows.
CREATE INDEX automation_buckets_end ON automation_buckets (window_end);

-- The firings of a composite trigger's children, until the composite fires or they age out.
CREATE TABLE automation_child_firings (
    automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    parent_trigger_id TEXT NOT NULL,
    child_trigger_id TEXT NOT NULL,
    child_firing_id TEXT NOT NULL,
    child_fired_at TIMESTAMP NOT NULL,
    child_firing TEXT NOT NULL,
    PRIMARY KEY (automation_id, parent_trigger_id, child_trigger_id)
);

-- Each action an automation's firing started: written with the firing, in its transaction, then
-- claimed and run by the action executor (the work role wakes it; this row is the durable record).
-- state: pending, running (claimed until not_before), done, failed.
CREATE TABLE automation_actions (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    automation_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    action_index INTEGER NOT NULL,
    triggered_action TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before TIMESTAMP NOT NULL,
    finished TIMESTAMP,
    reason TEXT
);
CREATE INDEX automation_actions_due ON automation_actions (not_before)
    WHERE state IN ('pending', 'running');
CREATE INDEX automation_actions_finished ON automation_actions (finished)
    WHERE finished IS NOT NULL;
