-- Blocks: block types (unique by slug), block schemas (unique by checksum and version) and the
-- references between nested schemas, block documents (unique by type and name) and the
-- references between nested documents. Every row carries workspace_id.
CREATE TABLE block_types (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    logo_url TEXT,
    documentation_url TEXT,
    description TEXT,
    code_example TEXT,
    is_protected BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE UNIQUE INDEX block_types_workspace_slug ON block_types (workspace_id, slug);
CREATE INDEX block_types_workspace_name ON block_types (workspace_id, name);

CREATE TABLE block_schemas (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    checksum TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '{}',
    capabilities TEXT NOT NULL DEFAULT '[]',
    version TEXT NOT NULL,
    block_type_id TEXT NOT NULL REFERENCES block_types (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX block_schemas_workspace_checksum_version ON block_schemas (workspace_id, checksum, version);
CREATE INDEX block_schemas_workspace_created ON block_schemas (workspace_id, created);
CREATE INDEX block_schemas_block_type ON block_schemas (block_type_id);

CREATE TABLE block_schema_references (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    parent_block_schema_id TEXT NOT NULL REFERENCES block_schemas (id) ON DELETE CASCADE,
    reference_block_schema_id TEXT NOT NULL REFERENCES block_schemas (id) ON DELETE CASCADE
);
CREATE INDEX block_schema_references_parent ON block_schema_references (parent_block_schema_id);
CREATE INDEX block_schema_references_reference ON block_schema_references (reference_block_schema_id);

CREATE TABLE block_documents (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    is_anonymous BOOLEAN NOT NULL DEFAULT FALSE,
    block_type_name TEXT,
    block_type_id TEXT NOT NULL REFERENCES block_types (id) ON DELETE CASCADE,
    block_schema_id TEXT NOT NULL REFERENCES block_schemas (id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX block_documents_workspace_type_name ON block_documents (workspace_id, block_type_id, name);
CREATE INDEX block_documents_workspace_name ON block_documents (workspace_id, name);
CREATE INDEX block_documents_block_schema ON block_documents (block_schema_id);

CREATE TABLE block_document_references (
    id TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    name TEXT NOT NULL,
    parent_block_document_id TEXT NOT NULL REFERENCES block_documents (id) ON DELETE CASCADE,
    reference_block_document_id TEXT NOT NULL REFERENCES block_documents (id) ON DELETE CASCADE,
    CHECK (parent_block_document_id <> reference_block_document_id)
);
CREATE INDEX block_document_references_parent ON block_document_references (parent_block_document_id);
CREATE INDEX block_document_references_reference ON block_document_references (reference_block_document_id);
