//! Confluence Cloud REST v2 (`/wiki/api/v2/…`) as CONFLUENCE.md §6 documents it: spaces, pages
//! (lookup by space and title or by ids, read, create, update, rename, delete), ancestors (ids and
//! types only), children, direct children and descendants of pages and folders, cursor pagination
//! with `_links.next` (site-relative, context included) and a `Link` header, and v2 error bodies.

use std::time::SystemTime;

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{Call, Failure, HttpResponse, check_xhtml, empty, iso8601, json_ok};
use crate::sim::State;
use crate::sim::store::{ContentKind, NewPage, Page, PageUpdate, StatusFilter, StoreError};

/// v2's default and largest page sizes.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 250;
/// The deepest `/descendants` goes in one answer.
const MAX_DESCENDANT_DEPTH: usize = 5;

/// The v2 routes, with their path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum V2Route {
    Spaces,
    Pages,
    Page(String),
    PageTitle(String),
    Ancestors(String),
    Children(String),
    DirectChildren(String),
    Descendants(String),
    Folder(String),
    FolderDirectChildren(String),
    FolderDescendants(String),
}

impl V2Route {
    /// The route for the segments after `api/v2`, if the method fits.
    pub(super) fn parse(method: &Method, segments: &[&str]) -> Option<V2Route> {
        let get = method == Method::GET;
        let id = |id: &str| id.to_owned();
        Some(match segments {
            ["spaces"] if get => V2Route::Spaces,
            ["pages"] if get || method == Method::POST => V2Route::Pages,
            ["pages", page] if get || method == Method::PUT || method == Method::DELETE => {
                V2Route::Page(id(page))
            }
            ["pages", page, "title"] if method == Method::PUT => V2Route::PageTitle(id(page)),
            ["pages", page, "ancestors"] if get => V2Route::Ancestors(id(page)),
            ["pages", page, "children"] if get => V2Route::Children(id(page)),
            ["pages", page, "direct-children"] if get => V2Route::DirectChildren(id(page)),
            ["pages", page, "descendants"] if get => V2Route::Descendants(id(page)),
            ["folders", folder] if get => V2Route::Folder(id(folder)),
            ["folders", folder, "direct-children"] if get => {
                V2Route::FolderDirectChildren(id(folder))
            }
            ["folders", folder, "descendants"] if get => V2Route::FolderDescendants(id(folder)),
            _ => return None,
        })
    }

    /// The route template, for the request log.
    pub(super) fn template(&self) -> &'static str {
        match self {
            V2Route::Spaces => "/api/v2/spaces",
            V2Route::Pages => "/api/v2/pages",
            V2Route::Page(_) => "/api/v2/pages/{id}",
            V2Route::PageTitle(_) => "/api/v2/pages/{id}/title",
            V2Route::Ancestors(_) => "/api/v2/pages/{id}/ancestors",
            V2Route::Children(_) => "/api/v2/pages/{id}/children",
            V2Route::DirectChildren(_) => "/api/v2/pages/{id}/direct-children",
            V2Route::Descendants(_) => "/api/v2/pages/{id}/descendants",
            V2Route::Folder(_) => "/api/v2/folders/{id}",
            V2Route::FolderDirectChildren(_) => "/api/v2/folders/{id}/direct-children",
            V2Route::FolderDescendants(_) => "/api/v2/folders/{id}/descendants",
        }
    }
}

/// `{"errors":[{"status","code","title","detail"}]}` (CONFLUENCE.md §4).
pub(super) fn error_body(failure: &Failure) -> Value {
    let status = failure.status;
    let code = match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST".to_owned(),
        StatusCode::NOT_FOUND => "NOT_FOUND".to_owned(),
        StatusCode::CONFLICT => "CONFLICT".to_owned(),
        other => other
            .canonical_reason()
            .unwrap_or("ERROR")
            .to_ascii_uppercase()
            .replace(' ', "_"),
    };
    json!({"errors": [{
        "status": status.as_u16(),
        "code": code,
        "title": failure.message,
        "detail": null,
    }]})
}

pub(super) fn dispatch(call: &Call<'_>, route: &V2Route) -> Result<HttpResponse, Failure> {
    match (route, &call.method) {
        (V2Route::Spaces, _) => spaces(call),
        (V2Route::Pages, &Method::GET) => pages(call),
        (V2Route::Pages, _) => create(call),
        (V2Route::Page(id), &Method::GET) => read(call, id),
        (V2Route::Page(id), &Method::PUT) => update(call, id),
        (V2Route::Page(id), _) => delete(call, id),
        (V2Route::PageTitle(id), _) => rename(call, id),
        (V2Route::Ancestors(id), _) => ancestors(call, id),
        (V2Route::Children(id), _) => children(call, id, ContentKind::Page, false),
        (V2Route::DirectChildren(id), _) => children(call, id, ContentKind::Page, true),
        (V2Route::Descendants(id), _) => descendants(call, id, ContentKind::Page),
        (V2Route::Folder(id), _) => folder(call, id),
        (V2Route::FolderDirectChildren(id), _) => children(call, id, ContentKind::Folder, true),
        (V2Route::FolderDescendants(id), _) => descendants(call, id, ContentKind::Folder),
    }
}

fn page_missing(id: &str) -> Failure {
    Failure::not_found(format!("Cannot find a page with id [{id}]"))
}

fn folder_missing(id: &str) -> Failure {
    Failure::not_found(format!("Cannot find a folder with id [{id}]"))
}

/// The current page (not folder) with this id.
fn current_page<'s>(state: &'s State, id: &str) -> Result<&'s Page, Failure> {
    id.parse::<u64>()
        .ok()
        .and_then(|numeric| {
            state
                .store
                .visible_page(numeric, StatusFilter::Current)
                .ok()
        })
        .ok_or_else(|| page_missing(id))
}

/// The current page or folder of `kind` with this id.
fn current_node<'s>(state: &'s State, id: &str, kind: ContentKind) -> Result<&'s Page, Failure> {
    match kind {
        ContentKind::Page => current_page(state, id),
        ContentKind::Folder => id
            .parse::<u64>()
            .ok()
            .and_then(|numeric| state.store.folder(numeric))
            .ok_or_else(|| folder_missing(id)),
    }
}

/// `limit` (1–250, default 25) and the offset an opaque `cursor` carries.
fn paging(call: &Call<'_>) -> Result<(usize, usize), Failure> {
    let cap = (call.shared.settings.v2_max_page_limit as usize).clamp(1, MAX_LIMIT);
    let limit = match call.param("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<usize>() {
            Ok(limit @ 1..=MAX_LIMIT) => limit,
            Ok(limit) if limit > MAX_LIMIT => MAX_LIMIT,
            _ => return Err(Failure::bad_request(format!("Invalid limit: {raw}"))),
        },
    }
    .min(cap);
    let offset = match call.param("cursor") {
        None | Some("") => 0,
        Some(cursor) => {
            decode_cursor(cursor).ok_or_else(|| Failure::bad_request("Invalid cursor"))?
        }
    };
    Ok((offset, limit))
}

/// Cursors are opaque on the wire; this one carries the offset of the next result.
fn encode_cursor(offset: usize) -> String {
    BASE64_URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = BASE64_URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// A v2 collection over the window of `items` the request's cursor and limit select. `next` is
/// site-relative and holds the site's context (`/wiki/api/v2/…`) whichever form the request used,
/// as Confluence's is; it also goes out as a `Link` header.
fn collection(call: &Call<'_>, items: Vec<Value>) -> Result<HttpResponse, Failure> {
    let (offset, limit) = paging(call)?;
    let end = items.len().min(offset.saturating_add(limit));
    let has_more = end < items.len();
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let mut links = Map::new();
    links.insert("base".into(), json!(call.shared.base));
    if has_more {
        let link = format!(
            "{}{}",
            call.shared.context,
            call.link_with(&[("cursor", encode_cursor(end))])
        );
        links.insert("next".into(), json!(link));
        *call.link_next.borrow_mut() = Some(link);
    }
    Ok(json_ok(json!({"results": results, "_links": links})))
}

fn spaces(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    let keys = call.params("keys");
    let state = call.shared.lock();
    let items: Vec<Value> = state
        .store
        .spaces()
        .iter()
        .filter(|space| {
            keys.is_empty() || keys.iter().any(|key| key.eq_ignore_ascii_case(&space.key))
        })
        .map(|space| {
            json!({
                "id": space.id.to_string(),
                "key": space.key,
                "name": space.name,
                "type": "global",
                "status": "current",
                "homepageId": null,
                "_links": {"webui": format!("/spaces/{}", space.key)},
            })
        })
        .collect();
    drop(state);
    collection(call, items)
}

fn status_filter(call: &Call<'_>) -> Result<Vec<StatusFilter>, Failure> {
    let mut filters = Vec::new();
    for status in call.params("status") {
        match status {
            "current" => filters.push(StatusFilter::Current),
            "trashed" => filters.push(StatusFilter::Trashed),
            "archived" | "deleted" => {}
            "draft" => {
                return Err(Failure::bad_request(
                    "Draft status is not supported for this operation",
                ));
            }
            other => return Err(Failure::bad_request(format!("Invalid status: {other}"))),
        }
    }
    if filters.is_empty() && call.params("status").is_empty() {
        filters.push(StatusFilter::Current);
    }
    Ok(filters)
}

fn with_body(call: &Call<'_>) -> Result<bool, Failure> {
    match call.param("body-format") {
        None | Some("") => Ok(false),
        Some("storage") => Ok(true),
        Some("atlas_doc_format" | "view") => Ok(false),
        Some(other) => Err(Failure::bad_request(format!(
            "Invalid body-format: {other}"
        ))),
    }
}

/// `GET /pages?space-id=&title=&status=&id=&body-format=`: title compared whole and ignoring case.
fn pages(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    let space_ids: Vec<u64> = call
        .params("space-id")
        .into_iter()
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| Failure::bad_request(format!("Invalid space-id: {id}")))
        })
        .collect::<Result<_, _>>()?;
    let ids: Vec<u64> = call
        .params("id")
        .into_iter()
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| Failure::bad_request(format!("Invalid id: {id}")))
        })
        .collect::<Result<_, _>>()?;
    if ids.len() > MAX_LIMIT {
        return Err(Failure::bad_request(format!(
            "At most {MAX_LIMIT} ids are allowed"
        )));
    }
    let title = call.param("title");
    let filters = status_filter(call)?;
    let body = with_body(call)?;
    let state = call.shared.lock();
    let space_keys: Vec<&str> = space_ids
        .iter()
        .filter_map(|id| state.store.space_by_id(*id))
        .map(|space| space.key.as_str())
        .collect();
    if !space_ids.is_empty() && space_keys.is_empty() {
        return Ok(json_ok(
            json!({"results": [], "_links": {"base": call.shared.base}}),
        ));
    }
    let items: Vec<Value> = state
        .store
        .all_pages()
        .filter(|page| page.kind == ContentKind::Page)
        .filter(|page| filters.iter().any(|filter| filter.accepts(page.status)))
        .filter(|page| space_keys.is_empty() || space_keys.contains(&page.space_key.as_str()))
        .filter(|page| ids.is_empty() || ids.contains(&page.id))
        .filter(|page| title.is_none_or(|title| crate::sim::store::same_title(&page.title, title)))
        .map(|page| page_json(&state, page, body))
        .collect();
    drop(state);
    collection(call, items)
}

/// The v2 page object (CONFLUENCE.md §6), with the storage body when asked.
fn page_json(state: &State, page: &Page, body: bool) -> Value {
    let space_id = state
        .store
        .space(&page.space_key)
        .map(|space| space.id.to_string());
    let parent_type = page
        .parent_id
        .and_then(|parent| state.store.page(parent))
        .map(|parent| parent.kind.as_str());
    let mut value = json!({
        "id": page.id.to_string(),
        "status": page.status.as_str(),
        "title": page.title,
        "spaceId": space_id,
        "parentId": page.parent_id.map(|parent| parent.to_string()),
        "parentType": parent_type,
        "position": page.position,
        "authorId": "557058:simulator",
        "ownerId": "557058:simulator",
        "createdAt": iso8601(page.created),
        "version": {
            "createdAt": iso8601(page.updated),
            "message": page.version_message,
            "number": page.version,
            "minorEdit": false,
            "authorId": "557058:simulator",
        },
        "body": {},
        "_links": {
            "webui": format!("/spaces/{}/pages/{}", page.space_key, page.id),
            "editui": format!("/pages/resumedraft.action?draftId={}", page.id),
            "tinyui": format!("/x/{}", page.id),
        },
    });
    if body {
        value["body"] = json!({"storage": {"representation": "storage", "value": page.body}});
    }
    value
}

fn read(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let body = with_body(call)?;
    let state = call.shared.lock();
    let page = current_page(&state, id)?;
    Ok(json_ok(page_json(&state, page, body)))
}

fn folder(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let state = call.shared.lock();
    let folder = current_node(&state, id, ContentKind::Folder)?;
    Ok(json_ok(json!({
        "id": folder.id.to_string(),
        "type": "folder",
        "status": "current",
        "title": folder.title,
        "parentId": folder.parent_id.map(|parent| parent.to_string()),
        "position": folder.position,
        "createdAt": iso8601(folder.created),
    })))
}

/// `{id, type}` of each ancestor, top to bottom; the nearest `limit` of them (continue from the first).
fn ancestors(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    // The ancestor chain has its own cap (250), not the collections' knob: it pages from the top.
    let limit = match call.param("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(limit)) if limit >= 1 => limit.min(MAX_LIMIT),
        Some(_) => return Err(Failure::bad_request("Invalid limit")),
    };
    let state = call.shared.lock();
    let page = current_page(&state, id)?;
    let chain = state.store.ancestors(page.id);
    let skip = chain.len().saturating_sub(limit);
    let results: Vec<Value> = chain[skip..]
        .iter()
        .filter_map(|&ancestor| state.store.page(ancestor))
        .map(|ancestor| json!({"id": ancestor.id.to_string(), "type": ancestor.kind.as_str()}))
        .collect();
    Ok(json_ok(
        json!({"results": results, "_links": {"base": call.shared.base}}),
    ))
}

/// `/children` (pages only, folders left out) or `/direct-children` (pages and folders).
fn children(
    call: &Call<'_>,
    id: &str,
    kind: ContentKind,
    all_kinds: bool,
) -> Result<HttpResponse, Failure> {
    let state = call.shared.lock();
    let parent = current_node(&state, id, kind)?;
    let ids = if all_kinds {
        state.store.children_all(parent.id)
    } else {
        state.store.children(parent.id)
    };
    let items: Vec<Value> = ids
        .iter()
        .filter_map(|&child| state.store.page(child))
        .map(|child| {
            let mut value = json!({
                "id": child.id.to_string(),
                "status": child.status.as_str(),
                "title": child.title,
                "spaceId": state.store.space(&child.space_key).map(|space| space.id.to_string()),
                "childPosition": child.position,
            });
            if all_kinds {
                value["type"] = json!(child.kind.as_str());
            }
            value
        })
        .collect();
    drop(state);
    collection(call, items)
}

/// `/descendants?depth=`: every page and folder below, at most `depth` (1–5, default 5) levels,
/// top to bottom (level by level, siblings in tree order), with `parentId` and `depth`.
fn descendants(call: &Call<'_>, id: &str, kind: ContentKind) -> Result<HttpResponse, Failure> {
    let max_depth = match call.param("depth") {
        None | Some("") => MAX_DESCENDANT_DEPTH,
        Some(raw) => match raw.parse::<usize>() {
            Ok(depth) if depth >= 1 => depth.min(MAX_DESCENDANT_DEPTH),
            _ => return Err(Failure::bad_request(format!("Invalid depth: {raw}"))),
        },
    };
    let state = call.shared.lock();
    let start = current_node(&state, id, kind)?;
    let mut items = Vec::new();
    let mut level = vec![start.id];
    for depth in 1..=max_depth {
        let mut next = Vec::new();
        for parent in level {
            for child in state.store.children_all(parent) {
                let Some(node) = state.store.page(child) else {
                    continue;
                };
                items.push(json!({
                    "id": node.id.to_string(),
                    "status": node.status.as_str(),
                    "title": node.title,
                    "type": node.kind.as_str(),
                    "parentId": parent.to_string(),
                    "depth": depth,
                    "childPosition": node.position,
                }));
                next.push(child);
            }
        }
        level = next;
    }
    drop(state);
    collection(call, items)
}

/// The storage body of a v2 write: `{representation: "storage", value}`, checked for well-formedness.
fn storage_body(request: &Value) -> Result<Option<String>, Failure> {
    let Some(body) = request.get("body").filter(|body| !body.is_null()) else {
        return Ok(None);
    };
    match body.get("representation").and_then(Value::as_str) {
        Some("storage") => {}
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "Unsupported body representation: {other}"
            )));
        }
        None => return Err(Failure::bad_request("body.representation is required")),
    }
    let value = body.get("value").and_then(Value::as_str).unwrap_or("");
    check_xhtml(value)?;
    Ok(Some(value.to_owned()))
}

fn id_field(request: &Value, name: &str) -> Result<Option<u64>, Failure> {
    match request.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => id
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Failure::bad_request(format!("Invalid {name}: {id}"))),
        Some(Value::Number(id)) => id
            .as_u64()
            .map(Some)
            .ok_or_else(|| Failure::bad_request(format!("Invalid {name}"))),
        Some(_) => Err(Failure::bad_request(format!("Invalid {name}"))),
    }
}

fn require_current_status(request: &Value) -> Result<(), Failure> {
    match request.get("status").and_then(Value::as_str) {
        None | Some("current") => Ok(()),
        Some(other) => Err(Failure::bad_request(format!(
            "Unsupported status for this operation: {other}"
        ))),
    }
}

/// `POST /pages`: 200 with the new page; a taken title is a 400 (CONFLUENCE.md §6).
fn create(call: &Call<'_>) -> Result<HttpResponse, Failure> {
    let request = call.json_body()?;
    require_current_status(&request)?;
    let space_id = id_field(&request, "spaceId")?
        .ok_or_else(|| Failure::bad_request("spaceId is required"))?;
    let parent_id = id_field(&request, "parentId")?;
    let title = request.get("title").and_then(Value::as_str).unwrap_or("");
    let body = storage_body(&request)?.unwrap_or_default();
    let mut state = call.shared.lock();
    let space_key = state
        .store
        .space_by_id(space_id)
        .map(|space| space.key.clone())
        .ok_or_else(|| Failure::bad_request(format!("Space with id {space_id} does not exist")))?;
    let new_page = NewPage {
        space_key: &space_key,
        title,
        parent_id,
        body: &body,
    };
    let id = state
        .store
        .create(&new_page, SystemTime::now())
        .map_err(|error| failure(&error))?;
    let page = state.store.page(id).expect("the page was just created");
    Ok(json_ok(page_json(&state, page, false)))
}

/// `PUT /pages/{id}`: status, title, body and version are all required; `parentId` moves the page.
fn update(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let request = call.json_body()?;
    let numeric = id.parse::<u64>().map_err(|_| page_missing(id))?;
    {
        let state = call.shared.lock();
        if !state.store.is_page(numeric) {
            return Err(page_missing(id));
        }
    }
    if request.get("status").and_then(Value::as_str).is_none() {
        return Err(Failure::bad_request("status is required"));
    }
    require_current_status(&request)?;
    let title = request
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("title is required"))?;
    let body = storage_body(&request)?.ok_or_else(|| Failure::bad_request("body is required"))?;
    let version = request
        .pointer("/version/number")
        .and_then(Value::as_u64)
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| Failure::bad_request("version.number is required"))?;
    let message = request
        .pointer("/version/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    let new_parent = id_field(&request, "parentId")?;
    let mut state = call.shared.lock();
    if let Some(parent) = new_parent {
        let same_space = state
            .store
            .page(parent)
            .zip(state.store.page(numeric))
            .is_none_or(|(parent, page)| parent.space_key == page.space_key);
        if !same_space {
            return Err(Failure::bad_request(
                "Changing the space of a page is not supported",
            ));
        }
    }
    let update = PageUpdate {
        version: Some(version),
        title,
        new_parent,
        body: Some(&body),
        message,
    };
    apply_update(&mut state, numeric, &update)
}

/// Applies `update` to page `numeric` and answers the page as it is then.
fn apply_update(
    state: &mut State,
    numeric: u64,
    update: &PageUpdate<'_>,
) -> Result<HttpResponse, Failure> {
    state
        .store
        .update(numeric, update, SystemTime::now())
        .map_err(|error| failure(&error))?;
    let page = state
        .store
        .page(numeric)
        .expect("an updated page stays stored");
    Ok(json_ok(page_json(state, page, false)))
}

/// `PUT /pages/{id}/title`: a new title and nothing else; no version needed (CONFLUENCE.md §6).
fn rename(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let request = call.json_body()?;
    require_current_status(&request)?;
    let title = request
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("title is required"))?;
    let mut state = call.shared.lock();
    let page = current_page(&state, id)?;
    let (numeric, version) = (page.id, page.version);
    let update = PageUpdate {
        version: Some(version + 1),
        title,
        new_parent: None,
        body: None,
        message: "",
    };
    apply_update(&mut state, numeric, &update)
}

/// `DELETE /pages/{id}` (to the trash, 204); `?purge=true` removes a trashed page for good.
fn delete(call: &Call<'_>, id: &str) -> Result<HttpResponse, Failure> {
    let numeric = id.parse::<u64>().map_err(|_| page_missing(id))?;
    let purge = call.param("purge") == Some("true");
    call.shared
        .lock()
        .store
        .delete(numeric, purge)
        .map_err(|_| page_missing(id))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Store refusals in v2's words.
fn failure(error: &StoreError) -> Failure {
    match error {
        StoreError::NoSpace(key) => Failure::bad_request(format!("Space {key} does not exist")),
        StoreError::NoPage(id) | StoreError::NotCurrent(id) => page_missing(&id.to_string()),
        StoreError::NoParent(id) => Failure::bad_request(format!(
            "The parent ID specified does not exist, or user does not have permissions: {id}"
        )),
        StoreError::DuplicateTitle { .. } => Failure::bad_request(
            "A page with this title already exists: A page already exists with the same TITLE in this space",
        ),
        StoreError::EmptyTitle => Failure::bad_request("Title cannot be empty"),
        StoreError::TitleTooLong(_) => Failure::bad_request(format!(
            "Title cannot be longer than {} characters",
            crate::sim::store::MAX_TITLE_CHARS
        )),
        StoreError::VersionMissing => Failure::bad_request("version.number is required"),
        StoreError::VersionMismatch { current, given } => Failure {
            status: StatusCode::CONFLICT,
            message: format!(
                "Version must be incremented when updating a page. Current Version: [{current}]. Provided version: [{given}]"
            ),
        },
        StoreError::IllegalMove { page, target } => Failure::bad_request(format!(
            "Illegal move of page [{page}] under its own descendant [{target}]: a parent-child loop"
        )),
        StoreError::ParentInOtherSpace(_) => {
            Failure::bad_request("Changing the space of a page is not supported")
        }
    }
}
