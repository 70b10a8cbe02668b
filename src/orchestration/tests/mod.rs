//! Unit tests of orchestration: the rules one by one (`flow`, `task`), whole lifecycles
//! (`flow_lifecycle`, `e2e`), with the builders of `support`.

mod e2e;
mod flow;
mod flow_lifecycle;
mod states;
mod support;
mod task;
