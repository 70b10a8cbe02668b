//! Typed ids. Every id is an [`Id`] of a kind: [`WorkspaceId`] scopes every orion and events
//! query (storage functions take it first after the connection), and the main entities —
//! [`FlowId`], [`FlowRunId`], [`TaskRunId`], [`DeploymentId`] — are their own types, so a run's
//! id can't be passed where a deployment's or a workspace's goes without the compiler saying so.
//! An id binds as SQL text on both backends, loads from a text column and serialises as its
//! string; the kind is a type parameter with no data, so all ids cost what a `String` costs.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::Text;

/// The kinds of id; uninhabited, used only as [`Id`]'s parameter.
pub mod kind {
    #[derive(Debug)]
    pub enum Workspace {}
    #[derive(Debug)]
    pub enum Flow {}
    #[derive(Debug)]
    pub enum FlowRun {}
    #[derive(Debug)]
    pub enum TaskRun {}
    #[derive(Debug)]
    pub enum Deployment {}
}

pub type WorkspaceId = Id<kind::Workspace>;
pub type FlowId = Id<kind::Flow>;
pub type FlowRunId = Id<kind::FlowRun>;
pub type TaskRunId = Id<kind::TaskRun>;
pub type DeploymentId = Id<kind::Deployment>;

/// The id of one `K` (a UUID in its lowercase text form, as stored).
#[derive(AsExpression, FromSqlRow, serde::Serialize, serde::Deserialize)]
#[diesel(sql_type = Text)]
#[serde(transparent, bound = "")]
pub struct Id<K> {
    id: String,
    #[serde(skip)]
    kind: PhantomData<fn() -> K>,
}

impl<K> Id<K> {
    /// An id read from storage, a request path or a body that has already been checked.
    pub fn new(id: impl Into<String>) -> Id<K> {
        Id {
            id: id.into(),
            kind: PhantomData,
        }
    }

    /// A fresh random id (UUID v4), for a row about to be inserted.
    pub fn random() -> Id<K> {
        Id::new(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn into_string(self) -> String {
        self.id
    }
}

// Written out rather than derived: a derive would require `K: Clone` (etc.), which the
// uninhabited kinds don't need to be.
impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Id::new(self.id.clone())
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.id, f)
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl<K> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl<K> std::ops::Deref for Id<K> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.id
    }
}

impl<K> std::borrow::Borrow<str> for Id<K> {
    fn borrow(&self) -> &str {
        &self.id
    }
}

impl<K> From<uuid::Uuid> for Id<K> {
    fn from(id: uuid::Uuid) -> Id<K> {
        Id::new(id.to_string())
    }
}

impl<K> From<Id<K>> for String {
    fn from(id: Id<K>) -> String {
        id.id
    }
}

impl<K> PartialEq<str> for Id<K> {
    fn eq(&self, other: &str) -> bool {
        self.id == other
    }
}

impl<K> PartialEq<&str> for Id<K> {
    fn eq(&self, other: &&str) -> bool {
        self.id == *other
    }
}

impl<K> PartialEq<String> for Id<K> {
    fn eq(&self, other: &String) -> bool {
        &self.id == other
    }
}

impl<K> PartialEq<Id<K>> for String {
    fn eq(&self, other: &Id<K>) -> bool {
        *self == other.id
    }
}

impl<K> PartialEq<&Id<K>> for String {
    fn eq(&self, other: &&Id<K>) -> bool {
        *self == other.id
    }
}

impl<K> PartialEq<&Id<K>> for Id<K> {
    fn eq(&self, other: &&Id<K>) -> bool {
        self == *other
    }
}

impl<K, DB> FromSql<Text, DB> for Id<K>
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        String::from_sql(bytes).map(Id::new)
    }
}

impl<K> ToSql<Text, diesel::pg::Pg> for Id<K> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
        <str as ToSql<Text, diesel::pg::Pg>>::to_sql(self.id.as_str(), out)
    }
}

impl<K> ToSql<Text, diesel::sqlite::Sqlite> for Id<K> {
    fn to_sql<'b>(
        &'b self,
        out: &mut Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        <str as ToSql<Text, diesel::sqlite::Sqlite>>::to_sql(self.id.as_str(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_its_string_and_compares_with_text() {
        let id = FlowRunId::new("5d6f0c1e-0000-4000-8000-000000000001");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"5d6f0c1e-0000-4000-8000-000000000001\""
        );
        let back: FlowRunId =
            serde_json::from_str("\"5d6f0c1e-0000-4000-8000-000000000001\"").unwrap();
        assert_eq!(back, id);
        assert!(id == "5d6f0c1e-0000-4000-8000-000000000001");
        assert_ne!(FlowRunId::random(), FlowRunId::random());
    }
}
