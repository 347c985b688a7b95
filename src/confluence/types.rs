//! Wire types of the Confluence REST APIs (v1 for Data Center and CQL, v2 for Cloud pages): the only
//! place that knows the JSON shapes.

use serde::{Deserialize, Deserializer, Serialize};

/// A v1 collection (`ContentArray`): one page of results plus the links to the next one.
#[derive(Debug, Deserialize)]
pub(crate) struct ContentArray<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    /// The effective page size the server applied (it may cap what was asked for).
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default, rename = "_links")]
    pub links: Links,
}

/// `_links` of a collection: `next` is relative to the context path, `base` is the absolute site base.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Links {
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
}

/// A `Content` object with the expansions this client asks for.
#[derive(Debug, Deserialize)]
pub(crate) struct Content {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub ancestors: Option<Vec<ContentRef>>,
    #[serde(default)]
    pub body: Option<Body>,
    #[serde(default)]
    pub children: Option<Children>,
}

/// An ancestor or child entry: only the fields the client reads.
#[derive(Debug, Deserialize)]
pub(crate) struct ContentRef {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub title: String,
}

/// `version` of a `Content`.
#[derive(Debug, Deserialize)]
pub(crate) struct Version {
    pub number: u64,
}

/// `body` of a `Content`; only the storage representation is used.
#[derive(Debug, Deserialize)]
pub(crate) struct Body {
    #[serde(default)]
    pub storage: Option<Storage>,
}

/// `body.storage`.
#[derive(Debug, Deserialize)]
pub(crate) struct Storage {
    #[serde(default)]
    pub value: String,
}

/// `children` of a `Content` expanded with `children.page`: the first items only (25 by default).
#[derive(Debug, Deserialize)]
pub(crate) struct Children {
    #[serde(default)]
    pub page: Option<ContentArray<ContentRef>>,
}

/// Body of `POST /rest/api/content`.
#[derive(Debug, Serialize)]
pub(crate) struct CreateRequest<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'a str,
    pub space: SpaceKey<'a>,
    pub ancestors: [IdRef<'a>; 1],
    pub body: BodyRequest<'a>,
}

/// Body of `PUT /rest/api/content/{id}`: `body` and `ancestors` are left out when not changing.
#[derive(Debug, Serialize)]
pub(crate) struct UpdateRequest<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'a str,
    pub version: VersionRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ancestors: Option<[IdRef<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyRequest<'a>>,
}

/// `{"key": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct SpaceKey<'a> {
    pub key: &'a str,
}

/// `{"id": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct IdRef<'a> {
    pub id: &'a str,
}

/// `{"number": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct VersionRequest {
    pub number: u64,
}

/// `{"storage": {"value": …, "representation": "storage"}}`.
#[derive(Debug, Serialize)]
pub(crate) struct BodyRequest<'a> {
    pub storage: StorageRequest<'a>,
}

/// The storage representation of a body being written.
#[derive(Debug, Serialize)]
pub(crate) struct StorageRequest<'a> {
    pub value: &'a str,
    pub representation: &'static str,
}

impl<'a> BodyRequest<'a> {
    /// A storage-format body.
    pub fn storage(value: &'a str) -> BodyRequest<'a> {
        BodyRequest {
            storage: StorageRequest {
                value,
                representation: "storage",
            },
        }
    }
}

/// The fields of an error body that carry a message, in the v1 and v2 shapes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

/// One v2 `errors[]` entry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorEntry {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

/// A v2 collection: one page of results and the cursor link to the next (CONFLUENCE.md §6).
#[derive(Debug, Deserialize)]
pub(crate) struct V2List<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default, rename = "_links")]
    pub links: V2Links,
}

/// `_links` of a v2 collection: `next` is site-relative and already holds the context (`/wiki/…`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct V2Links {
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub base: Option<String>,
}

/// A v2 space, as `GET /spaces?keys=` lists it.
#[derive(Debug, Deserialize)]
pub(crate) struct V2Space {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub key: String,
}

/// A v2 page (`GET /pages…`, and the answer of create, update and rename).
#[derive(Debug, Deserialize)]
pub(crate) struct V2Page {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub body: Option<V2Body>,
}

/// `body` of a v2 page read with `body-format=storage`.
#[derive(Debug, Deserialize)]
pub(crate) struct V2Body {
    #[serde(default)]
    pub storage: Option<Storage>,
}

/// An entry of `/ancestors`, `/direct-children` or `/descendants`: ids, types and, where the
/// endpoint gives them, titles and parents. v2 ancestors carry only `id` and `type`.
#[derive(Debug, Deserialize)]
pub(crate) struct V2Node {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(
        default,
        rename = "parentId",
        deserialize_with = "optional_string_or_number"
    )]
    pub parent_id: Option<String>,
}

impl V2Node {
    /// Whether the node is a folder (Cloud folders sit between pages but are not pages).
    pub fn is_folder(&self) -> bool {
        self.kind.as_deref() == Some("folder")
    }

    /// Whether the node is a page; entries without a type come from page-only endpoints.
    pub fn is_page(&self) -> bool {
        self.kind.as_deref().is_none_or(|kind| kind == "page")
    }
}

/// Body of `POST /api/v2/pages`.
#[derive(Debug, Serialize)]
pub(crate) struct V2CreateRequest<'a> {
    #[serde(rename = "spaceId")]
    pub space_id: &'a str,
    pub status: &'static str,
    pub title: &'a str,
    #[serde(rename = "parentId")]
    pub parent_id: &'a str,
    pub body: V2BodyRequest<'a>,
}

/// Body of `PUT /api/v2/pages/{id}`: v2 requires the body, title, status and version every time.
#[derive(Debug, Serialize)]
pub(crate) struct V2UpdateRequest<'a> {
    pub id: &'a str,
    pub status: &'static str,
    pub title: &'a str,
    pub body: V2BodyRequest<'a>,
    pub version: VersionRequest,
    #[serde(rename = "parentId", skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<&'a str>,
}

/// Body of `PUT /api/v2/pages/{id}/title`.
#[derive(Debug, Serialize)]
pub(crate) struct V2TitleRequest<'a> {
    pub status: &'static str,
    pub title: &'a str,
}

/// `{"representation": "storage", "value": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct V2BodyRequest<'a> {
    pub representation: &'static str,
    pub value: &'a str,
}

impl<'a> V2BodyRequest<'a> {
    /// A storage-format body.
    pub fn storage(value: &'a str) -> V2BodyRequest<'a> {
        V2BodyRequest {
            representation: "storage",
            value,
        }
    }
}

fn optional_string_or_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(deserializer)?.map(|id| match id {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    }))
}

/// Content ids are documented as strings; accept a bare number too rather than fail a whole listing.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_with_expansions_parses_and_numeric_ids_are_accepted() {
        let json = r#"{"id":"42","type":"page","title":"A/B \"c\"","version":{"number":7},
            "ancestors":[{"id":1,"title":"Root"},{"id":"2","title":"Parent"}],
            "body":{"storage":{"value":"<p>x</p>","representation":"storage"}},
            "children":{"page":{"results":[{"id":"5","title":"Kid"}],"size":1,"limit":25,"_links":{}}},
            "_links":{"base":"https://h/wiki"}}"#;
        let content: Content = serde_json::from_str(json).expect("valid fixture");
        assert_eq!(content.id, "42");
        assert_eq!(content.version.map(|v| v.number), Some(7));
        let ancestors = content.ancestors.expect("ancestors expanded");
        assert_eq!(ancestors[0].id, "1");
        assert_eq!(ancestors[1].title, "Parent");
        let body = content.body.and_then(|b| b.storage).map(|s| s.value);
        assert_eq!(body.as_deref(), Some("<p>x</p>"));
        let kids = content
            .children
            .and_then(|c| c.page)
            .expect("children expanded");
        assert_eq!(kids.results[0].title, "Kid");
    }

    #[test]
    fn update_request_leaves_out_body_and_ancestors_when_not_changing() {
        let request = UpdateRequest {
            id: "9",
            kind: "page",
            title: "T",
            version: VersionRequest { number: 3 },
            ancestors: None,
            body: None,
        };
        let json = serde_json::to_string(&request).expect("serializable");
        assert_eq!(
            json,
            r#"{"id":"9","type":"page","title":"T","version":{"number":3}}"#
        );
    }
}
