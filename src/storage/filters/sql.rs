//! `Where`: a SQL condition built at run time from a request's filter, for either backend.
//!
//! Filter builders (`filters::runs`, `filters::deployments`, the other resources' filters) are
//! plain functions from a parsed filter to a `Where`; the value is a diesel expression of type
//! `Bool` on every table, rendered by one generic [`QueryFragment`] impl, so a query uses it as
//! `.filter(cond)` inside `db_run!` and both backends compile it. Columns are named through
//! [`col!`](crate::col), which checks them against `schema.rs` at compile time. Values are
//! always bind parameters, never SQL text. The one backend difference, a list of ids, is the
//! [`Dialect`] trait: PostgreSQL binds one array (`= ANY(?)`, a statement that stays prepared),
//! SQLite a parameter per element.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::expression::ValidGrouping;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, SelectableExpression};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Integer, Text, Timestamp};
use diesel::QueryResult;

use super::dialect::json_member_path;
pub use super::dialect::Dialect;

/// A column, as `table.column` in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    pub table: &'static str,
    pub name: &'static str,
}

/// `col!(flow_runs::id)`: the [`Col`] of a column declared in `storage::schema`, checked at
/// compile time (`sql_name` renames are honoured).
#[macro_export]
macro_rules! col {
    ($table:ident :: $column:ident) => {
        $crate::storage::filters::sql::Col {
            table: stringify!($table),
            name: <$crate::storage::schema::$table::$column as diesel::Column>::NAME,
        }
    };
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i32),
    Bool(bool),
    Time(NaiveDateTime),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_string())
    }
}

impl From<&crate::ids::WorkspaceId> for Value {
    fn from(v: &crate::ids::WorkspaceId) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<NaiveDateTime> for Value {
    fn from(t: NaiveDateTime) -> Value {
        Value::Time(t)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Le,
    Ge,
    Gt,
    Lt,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => " = ",
            CmpOp::Ne => " != ",
            CmpOp::Le => " <= ",
            CmpOp::Ge => " >= ",
            CmpOp::Gt => " > ",
            CmpOp::Lt => " < ",
        }
    }
}

/// A condition. Build it with the constructors below; `and`/`or` of nothing is true.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    True,
    False,
    And(Vec<Where>),
    Or(Vec<Where>),
    Not(Box<Where>),
    Cmp(Col, CmpOp, Value),
    /// `coalesce(first, then) op value`.
    CmpCoalesce(Col, Col, CmpOp, Value),
    /// `col op value`, with `col` kept from choosing the plan's index where the backend lets a
    /// query say so (SQLite's unary `+`; PostgreSQL plans by its statistics and needs no hint):
    /// for a query that a more selective condition should drive.
    CmpNoIndex(Col, CmpOp, Value),
    /// `col IN (values)`, or `NOT IN` when `negated`; text values only (ids, names).
    In {
        col: Col,
        values: Vec<String>,
        negated: bool,
    },
    IsNull(Col, bool),
    /// `col LIKE pattern [ESCAPE '\']`, on `lower(col)` when `lower`.
    Like {
        col: Col,
        pattern: String,
        lower: bool,
        escape: bool,
    },
    /// `col IN (SELECT select FROM select.table WHERE cond)`.
    InSelect {
        col: Col,
        select: Col,
        cond: Box<Where>,
    },
    /// The text value of label `key` of the JSON object in `col`, `LIKE pattern ESCAPE '\'`.
    /// `path` is the key as SQLite's JSON path (made by [`Where::json_like`]).
    JsonLike {
        col: Col,
        key: String,
        path: String,
        pattern: String,
    },
    /// `lower(a || ' ' || b …) LIKE pattern ESCAPE '\'`: a search over several text columns.
    TextLike {
        cols: Vec<Col>,
        pattern: String,
    },
    /// The rows that come first in their `partition` group by `order` (descending when `desc`)
    /// among those where `cond` holds: `id IN (SELECT … row_number() OVER (…) … = 1)`.
    FirstPer {
        id: Col,
        partition: Col,
        order: Col,
        desc: bool,
        cond: Box<Where>,
    },
}

impl Where {
    /// All of `conds` (true when empty).
    pub fn all(conds: Vec<Where>) -> Where {
        match conds.len() {
            0 => Where::True,
            1 => conds.into_iter().next().unwrap_or(Where::True),
            _ => Where::And(conds),
        }
    }

    /// Any of `conds` (true when empty, as a filter that names nothing restricts nothing).
    pub fn any(conds: Vec<Where>) -> Where {
        match conds.len() {
            0 => Where::True,
            1 => conds.into_iter().next().unwrap_or(Where::True),
            _ => Where::Or(conds),
        }
    }

    pub fn negate(self) -> Where {
        Where::Not(Box::new(self))
    }

    pub fn eq(col: Col, v: impl Into<Value>) -> Where {
        Where::Cmp(col, CmpOp::Eq, v.into())
    }

    pub fn ne(col: Col, v: impl Into<Value>) -> Where {
        Where::Cmp(col, CmpOp::Ne, v.into())
    }

    pub fn cmp(col: Col, op: CmpOp, v: impl Into<Value>) -> Where {
        Where::Cmp(col, op, v.into())
    }

    /// Compares `coalesce(first, then)`: `first`, or `then` where `first` is null.
    pub fn cmp_coalesce(first: Col, then: Col, op: CmpOp, v: impl Into<Value>) -> Where {
        Where::CmpCoalesce(first, then, op, v.into())
    }

    pub fn is_in(col: Col, values: Vec<String>) -> Where {
        Where::In {
            col,
            values,
            negated: false,
        }
    }

    pub fn not_in(col: Col, values: Vec<String>) -> Where {
        Where::In {
            col,
            values,
            negated: true,
        }
    }

    pub fn is_null(col: Col) -> Where {
        Where::IsNull(col, true)
    }

    pub fn not_null(col: Col) -> Where {
        Where::IsNull(col, false)
    }

    /// `col LIKE pattern ESCAPE '\'`.
    pub fn like(col: Col, pattern: String) -> Where {
        Where::Like {
            col,
            pattern,
            lower: false,
            escape: true,
        }
    }

    /// `col LIKE pattern` without an escape character.
    pub fn like_raw(col: Col, pattern: String) -> Where {
        Where::Like {
            col,
            pattern,
            lower: false,
            escape: false,
        }
    }

    /// `lower(col) LIKE pattern`, with `ESCAPE '\'` when `escape`.
    pub fn ilike(col: Col, pattern: String, escape: bool) -> Where {
        Where::Like {
            col,
            pattern,
            lower: true,
            escape,
        }
    }

    /// Label `key` of the JSON object in `col` `LIKE pattern ESCAPE '\'`.
    /// A label name with a `"` in it matches nothing (no resource has one).
    pub fn json_like(col: Col, key: &str, pattern: String) -> Where {
        if key.contains('"') {
            return Where::False;
        }
        Where::JsonLike {
            col,
            key: key.to_string(),
            path: json_member_path(key),
            pattern,
        }
    }

    /// `col IN (SELECT select FROM … WHERE cond)`.
    pub fn in_select(col: Col, select: Col, cond: Where) -> Where {
        Where::InSelect {
            col,
            select,
            cond: Box::new(cond),
        }
    }
}

pub(super) fn push_col<DB: Backend>(out: &mut AstPass<'_, '_, DB>, col: &Col) -> QueryResult<()> {
    out.push_identifier(col.table)?;
    out.push_sql(".");
    out.push_identifier(col.name)
}

fn push_value<'b, DB>(out: &mut AstPass<'_, 'b, DB>, v: &'b Value) -> QueryResult<()>
where
    DB: Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<Bool>
        + diesel::sql_types::HasSqlType<Timestamp>,
    String: diesel::serialize::ToSql<Text, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    bool: diesel::serialize::ToSql<Bool, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
{
    match v {
        Value::Text(s) => out.push_bind_param::<Text, String>(s),
        Value::Int(i) => out.push_bind_param::<Integer, i32>(i),
        Value::Bool(b) => out.push_bind_param::<Bool, bool>(b),
        Value::Time(t) => out.push_bind_param::<Timestamp, NaiveDateTime>(t),
    }
}

impl<DB> QueryFragment<DB> for Where
where
    DB: Dialect
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<Bool>
        + diesel::sql_types::HasSqlType<Timestamp>,
    String: diesel::serialize::ToSql<Text, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    bool: diesel::serialize::ToSql<Bool, DB>,
    NaiveDateTime: diesel::serialize::ToSql<Timestamp, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        match self {
            Where::True => out.push_sql("1=1"),
            Where::False => out.push_sql("1=0"),
            Where::And(conds) | Where::Or(conds) => {
                let joiner = if matches!(self, Where::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                out.push_sql("(");
                for (i, c) in conds.iter().enumerate() {
                    if i > 0 {
                        out.push_sql(joiner);
                    }
                    c.walk_ast(out.reborrow())?;
                }
                out.push_sql(")");
            }
            Where::Not(c) => {
                out.push_sql("NOT (");
                c.walk_ast(out.reborrow())?;
                out.push_sql(")");
            }
            Where::Cmp(col, op, v) => {
                push_col(&mut out, col)?;
                out.push_sql(op.sql());
                push_value(&mut out, v)?;
            }
            Where::CmpNoIndex(col, op, v) => {
                out.push_sql(DB::NO_INDEX);
                push_col(&mut out, col)?;
                out.push_sql(op.sql());
                push_value(&mut out, v)?;
            }
            Where::CmpCoalesce(first, then, op, v) => {
                out.push_sql("coalesce(");
                push_col(&mut out, first)?;
                out.push_sql(", ");
                push_col(&mut out, then)?;
                out.push_sql(")");
                out.push_sql(op.sql());
                push_value(&mut out, v)?;
            }
            Where::In {
                col,
                values,
                negated,
            } => {
                if values.is_empty() {
                    out.push_sql(if *negated { "1=1" } else { "1=0" });
                } else {
                    push_col(&mut out, col)?;
                    DB::push_in(&mut out, values, *negated)?;
                }
            }
            Where::IsNull(col, null) => {
                push_col(&mut out, col)?;
                out.push_sql(if *null { " IS NULL" } else { " IS NOT NULL" });
            }
            Where::Like {
                col,
                pattern,
                lower,
                escape,
            } => {
                if *lower {
                    out.push_sql("lower(");
                    push_col(&mut out, col)?;
                    out.push_sql(")");
                } else {
                    push_col(&mut out, col)?;
                }
                out.push_sql(" LIKE ");
                out.push_bind_param::<Text, String>(pattern)?;
                if *escape {
                    out.push_sql(" ESCAPE '\\'");
                }
            }
            Where::InSelect { col, select, cond } => {
                push_col(&mut out, col)?;
                out.push_sql(" IN (SELECT ");
                push_col(&mut out, select)?;
                out.push_sql(" FROM ");
                out.push_identifier(select.table)?;
                out.push_sql(" WHERE ");
                cond.walk_ast(out.reborrow())?;
                out.push_sql(")");
            }
            Where::JsonLike {
                col,
                key,
                path,
                pattern,
            } => {
                DB::push_json_text(&mut out, col, key, path)?;
                out.push_sql(" LIKE ");
                out.push_bind_param::<Text, String>(pattern)?;
                out.push_sql(" ESCAPE '\\'");
            }
            Where::TextLike { cols, pattern } => {
                out.push_sql("lower(");
                for (i, c) in cols.iter().enumerate() {
                    if i > 0 {
                        out.push_sql(" || ' ' || ");
                    }
                    push_col(&mut out, c)?;
                }
                out.push_sql(") LIKE ");
                out.push_bind_param::<Text, String>(pattern)?;
                out.push_sql(" ESCAPE '\\'");
            }
            Where::FirstPer {
                id,
                partition,
                order,
                desc,
                cond,
            } => {
                push_col(&mut out, id)?;
                out.push_sql(" IN (SELECT first_per.i FROM (SELECT ");
                push_col(&mut out, id)?;
                out.push_sql(" AS i, row_number() OVER (PARTITION BY ");
                push_col(&mut out, partition)?;
                out.push_sql(" ORDER BY ");
                push_col(&mut out, order)?;
                out.push_sql(if *desc { " DESC" } else { " ASC" });
                out.push_sql(") AS rn FROM ");
                out.push_identifier(id.table)?;
                out.push_sql(" WHERE ");
                cond.walk_ast(out.reborrow())?;
                out.push_sql(") AS first_per WHERE first_per.rn = 1)");
            }
        }
        Ok(())
    }
}

impl Expression for Where {
    type SqlType = Bool;
}

impl<QS> AppearsOnTable<QS> for Where {}

impl<QS> SelectableExpression<QS> for Where {}

impl ValidGrouping<()> for Where {
    type IsAggregate = is_aggregate::Never;
}

impl QueryId for Where {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
