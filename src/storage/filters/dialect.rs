//! What differs between the backends when rendering a [`Where`](super::sql::Where): lists of
//! values, reading a label out of a JSON column, and keeping a column from choosing an index.

use diesel::backend::Backend;
use diesel::query_builder::AstPass;
use diesel::sql_types::{Array, Text};
use diesel::QueryResult;

use super::sql::{push_col, Col};
/// What differs between the backends when rendering a [`Where`].
pub trait Dialect: Backend + Sized {
    /// Put before a column to keep it from choosing the index of a plan ([`Where::CmpNoIndex`]).
    const NO_INDEX: &'static str;

    /// `col IN (values)` / `NOT IN`, `values` not empty.
    fn push_in<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        values: &'b [String],
        negated: bool,
    ) -> QueryResult<()>;

    /// The text of label `key` of the JSON object stored as text in `col` (null when absent);
    /// `path` is the same key as a JSON path.
    fn push_json_text<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        col: &Col,
        key: &'b str,
        path: &'b str,
    ) -> QueryResult<()>;
}

/// SQLite's JSON path of an object's member, quoted so dots in label names stay in the name.
/// (SQLite's quoted labels can't hold a `"`: [`Where::json_like`] matches nothing for one.)
pub(super) fn json_member_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

impl Dialect for diesel::pg::Pg {
    const NO_INDEX: &'static str = "";

    fn push_in<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        values: &'b [String],
        negated: bool,
    ) -> QueryResult<()> {
        out.push_sql(if negated { " != ALL(" } else { " = ANY(" });
        out.push_bind_param::<Array<Text>, [String]>(values)?;
        out.push_sql(")");
        Ok(())
    }

    fn push_json_text<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        col: &Col,
        key: &'b str,
        _path: &'b str,
    ) -> QueryResult<()> {
        out.push_sql("(CAST(");
        push_col(out, col)?;
        out.push_sql(" AS jsonb) ->> ");
        out.push_bind_param::<Text, str>(key)?;
        out.push_sql(")");
        Ok(())
    }
}

impl Dialect for diesel::sqlite::Sqlite {
    /// `+col` has no index and no affinity; the columns it is used on hold text compared with
    /// text, so no affinity applies either way.
    const NO_INDEX: &'static str = "+";

    fn push_in<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        values: &'b [String],
        negated: bool,
    ) -> QueryResult<()> {
        // One parameter per element: the statement text depends on the list's length.
        out.unsafe_to_cache_prepared();
        out.push_sql(if negated { " NOT IN (" } else { " IN (" });
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, String>(v)?;
        }
        out.push_sql(")");
        Ok(())
    }

    fn push_json_text<'b>(
        out: &mut AstPass<'_, 'b, Self>,
        col: &Col,
        _key: &'b str,
        path: &'b str,
    ) -> QueryResult<()> {
        out.push_sql("json_extract(");
        push_col(out, col)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, str>(path)?;
        out.push_sql(")");
        Ok(())
    }
}
