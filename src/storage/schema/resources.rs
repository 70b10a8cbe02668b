//! The tables of saved searches, variables, blocks, flow-run inputs and artifacts.

diesel::table! {
    saved_searches (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        filters -> Text,
    }
}

diesel::table! {
    variables (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        value -> Text,
        tags -> Text,
    }
}

diesel::table! {
    block_types (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        slug -> Text,
        logo_url -> Nullable<Text>,
        documentation_url -> Nullable<Text>,
        description -> Nullable<Text>,
        code_example -> Nullable<Text>,
        is_protected -> Bool,
    }
}

diesel::table! {
    block_schemas (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        checksum -> Text,
        fields -> Text,
        capabilities -> Text,
        version -> Text,
        block_type_id -> Text,
    }
}

diesel::table! {
    block_schema_references (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        parent_block_schema_id -> Text,
        reference_block_schema_id -> Text,
    }
}

diesel::table! {
    block_documents (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        data -> Text,
        is_anonymous -> Bool,
        block_type_name -> Nullable<Text>,
        block_type_id -> Text,
        block_schema_id -> Text,
    }
}

diesel::table! {
    block_document_references (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        name -> Text,
        parent_block_document_id -> Text,
        reference_block_document_id -> Text,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    block_types,
    block_schemas,
    block_schema_references,
    block_documents,
    block_document_references,
);

diesel::table! {
    flow_run_inputs (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        flow_run_id -> Text,
        key -> Text,
        value -> Text,
        sender -> Nullable<Text>,
    }
}

diesel::table! {
    artifacts (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        key -> Nullable<Text>,
        #[sql_name = "type"]
        artifact_type -> Nullable<Text>,
        description -> Nullable<Text>,
        data -> Nullable<Text>,
        metadata_ -> Nullable<Text>,
        flow_run_id -> Nullable<Text>,
        task_run_id -> Nullable<Text>,
    }
}

diesel::table! {
    artifact_collections (id) {
        id -> Text,
        workspace_id -> Text,
        created -> Timestamp,
        updated -> Timestamp,
        key -> Text,
        latest_id -> Text,
        #[sql_name = "type"]
        artifact_type -> Nullable<Text>,
        description -> Nullable<Text>,
        data -> Nullable<Text>,
        metadata_ -> Nullable<Text>,
        flow_run_id -> Nullable<Text>,
        task_run_id -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(artifacts, artifact_collections);
