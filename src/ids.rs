//! Typed ids. [`WorkspaceId`] scopes every orion and events query: storage functions take it
//! as their first argument after the connection, so a workspace id can't be passed where a
//! run's or a deployment's id goes (or the other way round) without the compiler saying so.
//! It binds as SQL text on both backends and serialises as its string.

use std::fmt;

use diesel::backend::Backend;
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Text;

/// The id of a workspace (a UUID in its lowercase text form, as stored).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    AsExpression,
    FromSqlRow,
    serde::Serialize,
    serde::Deserialize,
)]
#[diesel(sql_type = Text)]
#[serde(transparent)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    /// The id of a workspace read from storage or resolved from a request path.
    pub fn new(id: impl Into<String>) -> WorkspaceId {
        WorkspaceId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for WorkspaceId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for WorkspaceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for WorkspaceId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl<DB> FromSql<Text, DB> for WorkspaceId
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        String::from_sql(bytes).map(WorkspaceId)
    }
}

impl ToSql<Text, diesel::pg::Pg> for WorkspaceId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
        <str as ToSql<Text, diesel::pg::Pg>>::to_sql(self.0.as_str(), out)
    }
}

impl ToSql<Text, diesel::sqlite::Sqlite> for WorkspaceId {
    fn to_sql<'b>(
        &'b self,
        out: &mut Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        <str as ToSql<Text, diesel::sqlite::Sqlite>>::to_sql(self.0.as_str(), out)
    }
}

impl PartialEq<WorkspaceId> for String {
    fn eq(&self, other: &WorkspaceId) -> bool {
        *self == other.0
    }
}

impl PartialEq<&WorkspaceId> for String {
    fn eq(&self, other: &&WorkspaceId) -> bool {
        *self == other.0
    }
}

impl PartialEq<&WorkspaceId> for WorkspaceId {
    fn eq(&self, other: &&WorkspaceId) -> bool {
        self == *other
    }
}
