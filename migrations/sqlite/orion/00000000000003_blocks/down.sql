DROP TABLE block_document_references;
DROP TABLE block_documents;
DROP TABLE block_schema_references;
DROP TABLE block_schemas;
DROP TABLE block_types;
