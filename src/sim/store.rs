//! The simulator's state machine: spaces, pages, the page tree and the rules Confluence enforces on them.
//!
//! Pure and synchronous: no HTTP, no clock reads beyond stamping versions. Every operation either
//! applies completely or returns a [`StoreError`] and leaves the state untouched.

use std::collections::BTreeMap;
use std::time::SystemTime;

use thiserror::Error;

/// The rules that differ between Confluence deployments and versions (CONFLUENCE.md §8, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreRules {
    /// Whether `GET /rest/api/content?title=` compares titles case-sensitively.
    pub v1_title_lookup_case_sensitive: bool,
    /// Whether a trashed page keeps its title reserved.
    pub trashed_reserves_title: bool,
    /// Whether deleting a page moves its children up to the deleted page's parent.
    pub delete_reparents_children: bool,
    /// Whether the move endpoint creates a new version.
    pub move_bumps_version: bool,
}

/// Longest title Confluence accepts, in Unicode scalar values.
pub const MAX_TITLE_CHARS: usize = 255;

/// A page's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStatus {
    /// A live page.
    Current,
    /// In the space's trash: hidden from default reads and from search.
    Trashed,
}

impl PageStatus {
    /// The wire name Confluence uses.
    pub fn as_str(self) -> &'static str {
        match self {
            PageStatus::Current => "current",
            PageStatus::Trashed => "trashed",
        }
    }
}

/// What a stored item is: a page, or a Cloud folder (which sits in the tree between pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// A page.
    Page,
    /// A Cloud folder: no body, no version history, no title reservation, and page routes 404 on it.
    Folder,
}

impl ContentKind {
    /// The wire name v2 uses in `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Page => "page",
            ContentKind::Folder => "folder",
        }
    }
}

/// Which statuses a read accepts (the `status` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Only current pages (the default).
    Current,
    /// Only trashed pages.
    Trashed,
    /// Current and trashed pages.
    Any,
}

impl StatusFilter {
    /// Whether a page with `status` passes this filter.
    pub fn accepts(self, status: PageStatus) -> bool {
        match self {
            StatusFilter::Current => status == PageStatus::Current,
            StatusFilter::Trashed => status == PageStatus::Trashed,
            StatusFilter::Any => true,
        }
    }
}

/// A space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    /// Numeric id, as Confluence reports it.
    pub id: u64,
    /// Canonical key.
    pub key: String,
    /// Display name.
    pub name: String,
}

/// One stored version of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Numeric content id; the wire form is its decimal string.
    pub id: u64,
    /// Page or folder.
    pub kind: ContentKind,
    /// Key of the space the page lives in.
    pub space_key: String,
    /// Title as the user gave it.
    pub title: String,
    /// Lifecycle state.
    pub status: PageStatus,
    /// Parent page, `None` for a top-level page.
    pub parent_id: Option<u64>,
    /// Sort key among siblings; larger is later.
    pub position: u64,
    /// Current version number, starting at 1.
    pub version: u32,
    /// Storage-format body.
    pub body: String,
    /// When the page was created.
    pub created: SystemTime,
    /// When the current version was written.
    pub updated: SystemTime,
    /// Message of the current version.
    pub version_message: String,
    /// When the page last changed in any way (create, update, move); the search index lags behind it.
    pub last_write: SystemTime,
}

/// Why the store refused an operation. Each variant maps to one Confluence response.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// The space does not exist.
    #[error("no space with key {0}")]
    NoSpace(String),
    /// The page does not exist or is not visible with the requested status.
    #[error("no page with id {0}")]
    NoPage(u64),
    /// The requested parent (or move target) does not exist or is not current.
    #[error("parent {0} does not exist")]
    NoParent(u64),
    /// Another page in the space already holds the title (compared case-insensitively).
    #[error("title {title} is taken in space {space_key}")]
    DuplicateTitle {
        /// The title that was asked for.
        title: String,
        /// The space in which it is taken.
        space_key: String,
    },
    /// The title is empty or blank.
    #[error("title is empty")]
    EmptyTitle,
    /// The title is longer than [`MAX_TITLE_CHARS`].
    #[error("title has {0} characters")]
    TitleTooLong(usize),
    /// An update carried no version number.
    #[error("no version supplied")]
    VersionMissing,
    /// An update's version was not exactly current+1.
    #[error("version must be {} but was {given}", current + 1)]
    VersionMismatch {
        /// The page's current version.
        current: u32,
        /// The version the caller sent.
        given: u32,
    },
    /// A move would put a page under itself or one of its descendants.
    #[error("illegal move of {page} under {target}")]
    IllegalMove {
        /// The page being moved.
        page: u64,
        /// The would-be parent inside the page's own subtree.
        target: u64,
    },
    /// A parent in another space was given where Confluence requires the same space.
    #[error("parent {0} is in another space")]
    ParentInOtherSpace(u64),
    /// A plain delete of a page that is already in the trash.
    #[error("page {0} is not current")]
    NotCurrent(u64),
}

/// A page to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPage<'a> {
    /// Space key (compared case-insensitively, stored canonically).
    pub space_key: &'a str,
    /// Title.
    pub title: &'a str,
    /// Parent page id; `None` for top-level.
    pub parent_id: Option<u64>,
    /// Storage-format body.
    pub body: &'a str,
}

/// An update to an existing page (the v1 `PUT /content/{id}` semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUpdate<'a> {
    /// The version the caller claims to write; must be current+1.
    pub version: Option<u32>,
    /// New (or unchanged) title.
    pub title: &'a str,
    /// New parent, if the caller sent `ancestors`.
    pub new_parent: Option<u64>,
    /// New body, if the caller sent one.
    pub body: Option<&'a str>,
    /// Version message.
    pub message: &'a str,
}

/// Where the move endpoint puts a page relative to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovePosition {
    /// Sibling immediately before the target.
    Before,
    /// Sibling immediately after the target.
    After,
    /// Last child of the target.
    Append,
}

/// All spaces and pages.
#[derive(Debug, Clone)]
pub struct Store {
    rules: StoreRules,
    spaces: Vec<Space>,
    pages: BTreeMap<u64, Page>,
    next_id: u64,
    next_position: u64,
}

impl Store {
    /// An empty store following `rules`.
    pub fn new(rules: StoreRules) -> Store {
        Store {
            rules,
            spaces: Vec::new(),
            pages: BTreeMap::new(),
            next_id: 65_537,
            next_position: 1,
        }
    }

    /// Adds a space, or renames it if the key exists.
    pub fn add_space(&mut self, key: &str, name: &str) {
        if let Some(space) = self.spaces.iter_mut().find(|space| space.key == key) {
            space.name = name.to_owned();
            return;
        }
        let id = 98_305 + self.spaces.len() as u64;
        self.spaces.push(Space {
            id,
            key: key.to_owned(),
            name: name.to_owned(),
        });
    }

    /// The space with exactly this key.
    pub fn space(&self, key: &str) -> Option<&Space> {
        self.spaces.iter().find(|space| space.key == key)
    }

    /// The space whose key equals `key` ignoring case (how the create path resolves it).
    fn space_ignoring_case(&self, key: &str) -> Option<&Space> {
        self.spaces
            .iter()
            .find(|space| space.key.eq_ignore_ascii_case(key))
    }

    /// The page with `id`, whatever its status.
    pub fn page(&self, id: u64) -> Option<&Page> {
        self.pages.get(&id)
    }

    /// The page with `id` if its status passes `filter`.
    pub fn visible_page(&self, id: u64, filter: StatusFilter) -> Result<&Page, StoreError> {
        self.pages
            .get(&id)
            .filter(|page| page.kind == ContentKind::Page && filter.accepts(page.status))
            .ok_or(StoreError::NoPage(id))
    }

    /// Creates a page as the last child of its parent; returns its id.
    pub fn create(&mut self, new_page: &NewPage<'_>, now: SystemTime) -> Result<u64, StoreError> {
        let space_key = self
            .space_ignoring_case(new_page.space_key)
            .ok_or_else(|| StoreError::NoSpace(new_page.space_key.to_owned()))?
            .key
            .clone();
        check_title_shape(new_page.title)?;
        if let Some(parent_id) = new_page.parent_id {
            let parent = self.current_parent(parent_id)?;
            if parent.space_key != space_key {
                return Err(StoreError::ParentInOtherSpace(parent_id));
            }
        }
        self.check_title_free(&space_key, new_page.title, None)?;
        Ok(self.insert_new(
            ContentKind::Page,
            space_key,
            new_page.title,
            new_page.parent_id,
            new_page.body,
            now,
        ))
    }

    /// Creates a Cloud folder as the last child of `parent_id` (a page or folder); returns its id.
    /// Folders do not reserve titles (CONFLUENCE.md §8).
    pub fn create_folder(
        &mut self,
        space_key: &str,
        title: &str,
        parent_id: Option<u64>,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        let space_key = self
            .space_ignoring_case(space_key)
            .ok_or_else(|| StoreError::NoSpace(space_key.to_owned()))?
            .key
            .clone();
        check_title_shape(title)?;
        if let Some(parent_id) = parent_id {
            self.current_parent(parent_id)?;
        }
        Ok(self.insert_new(ContentKind::Folder, space_key, title, parent_id, "", now))
    }

    /// Stores new content as version 1, last among its siblings; returns its id.
    fn insert_new(
        &mut self,
        kind: ContentKind,
        space_key: String,
        title: &str,
        parent_id: Option<u64>,
        body: &str,
        now: SystemTime,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let position = self.take_position();
        self.pages.insert(
            id,
            Page {
                id,
                kind,
                space_key,
                title: title.to_owned(),
                status: PageStatus::Current,
                parent_id,
                position,
                version: 1,
                body: body.to_owned(),
                created: now,
                updated: now,
                version_message: String::new(),
                last_write: now,
            },
        );
        id
    }

    /// Applies a v1 update: new version, optional rename, optional move, optional body.
    /// A trashed page is restored (as a top-level page unless a parent is given).
    pub fn update(
        &mut self,
        id: u64,
        update: &PageUpdate<'_>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let page = self
            .pages
            .get(&id)
            .filter(|page| page.kind == ContentKind::Page)
            .ok_or(StoreError::NoPage(id))?;
        let Some(version) = update.version else {
            return Err(StoreError::VersionMissing);
        };
        if version != page.version + 1 {
            return Err(StoreError::VersionMismatch {
                current: page.version,
                given: version,
            });
        }
        check_title_shape(update.title)?;
        let space_key = page.space_key.clone();
        let restoring = page.status == PageStatus::Trashed;
        // Uniqueness is rechecked only when the title changes; a restore makes the title current again,
        // so it is checked then too.
        if update.title != page.title || restoring {
            self.check_title_free(&space_key, update.title, Some(id))?;
        }
        let reparent = match update.new_parent {
            Some(parent_id) if restoring || self.pages[&id].parent_id != Some(parent_id) => {
                self.check_move_target(id, parent_id)?;
                if self.pages[&parent_id].space_key != space_key {
                    return Err(StoreError::ParentInOtherSpace(parent_id));
                }
                Some(Some(parent_id))
            }
            Some(_) => None,
            None if restoring => Some(None),
            None => None,
        };
        let position = reparent.map(|_| self.take_position());
        let page = self
            .pages
            .get_mut(&id)
            .expect("page existence was checked above");
        page.version = version;
        page.title = update.title.to_owned();
        page.status = PageStatus::Current;
        page.updated = now;
        page.last_write = now;
        page.version_message = update.message.to_owned();
        if let Some(body) = update.body {
            page.body = body.to_owned();
        }
        if let (Some(parent_id), Some(position)) = (reparent, position) {
            page.parent_id = parent_id;
            page.position = position;
        }
        Ok(())
    }

    /// The Cloud move endpoint: places `id` before, after or under `target_id`. May cross spaces.
    pub fn move_page(
        &mut self,
        id: u64,
        position: MovePosition,
        target_id: u64,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.visible_page(id, StatusFilter::Current)?;
        let target = self
            .visible_page(target_id, StatusFilter::Current)
            .map_err(|_| StoreError::NoParent(target_id))?;
        let new_parent = match position {
            MovePosition::Append => Some(target_id),
            MovePosition::Before | MovePosition::After => target.parent_id,
        };
        let target_space = target.space_key.clone();
        if target_id == id {
            return Err(StoreError::IllegalMove {
                page: id,
                target: target_id,
            });
        }
        if let Some(parent_id) = new_parent {
            self.check_move_target(id, parent_id)?;
        }
        if target_space != self.pages[&id].space_key {
            let title = self.pages[&id].title.clone();
            self.check_title_free(&target_space, &title, Some(id))?;
        }
        // The whole subtree follows the page into the target space.
        for member in self.subtree(id) {
            if let Some(page) = self.pages.get_mut(&member) {
                page.space_key = target_space.clone();
            }
        }
        match position {
            MovePosition::Append => {
                let position = self.take_position();
                let page = self
                    .pages
                    .get_mut(&id)
                    .expect("page existence was checked above");
                page.parent_id = new_parent;
                page.position = position;
            }
            MovePosition::Before | MovePosition::After => {
                let mut siblings: Vec<u64> = self
                    .children_of(new_parent, &target_space)
                    .into_iter()
                    .filter(|&sibling| sibling != id)
                    .collect();
                let target_index = siblings
                    .iter()
                    .position(|&sibling| sibling == target_id)
                    .expect("the target is its parent's child");
                let insert_at = if position == MovePosition::Before {
                    target_index
                } else {
                    target_index + 1
                };
                siblings.insert(insert_at, id);
                for sibling in siblings {
                    let position = self.take_position();
                    let page = self
                        .pages
                        .get_mut(&sibling)
                        .expect("siblings come from the page map");
                    page.position = position;
                }
                let page = self
                    .pages
                    .get_mut(&id)
                    .expect("page existence was checked above");
                page.parent_id = new_parent;
            }
        }
        for member in self.subtree(id) {
            if let Some(page) = self.pages.get_mut(&member) {
                page.last_write = now;
            }
        }
        if self.rules.move_bumps_version {
            let page = self
                .pages
                .get_mut(&id)
                .expect("page existence was checked above");
            page.version += 1;
            page.updated = now;
            page.version_message = String::new();
        }
        Ok(())
    }

    /// Deletes a page: a current page goes to the trash; with `purge`, a trashed page is removed for good.
    pub fn delete(&mut self, id: u64, purge: bool) -> Result<(), StoreError> {
        let page = self
            .pages
            .get(&id)
            .filter(|page| page.kind == ContentKind::Page)
            .ok_or(StoreError::NoPage(id))?;
        match (page.status, purge) {
            (PageStatus::Trashed, true) => {
                self.pages.remove(&id);
                for child in self
                    .pages
                    .values_mut()
                    .filter(|child| child.parent_id == Some(id))
                {
                    child.parent_id = None;
                }
                Ok(())
            }
            (PageStatus::Trashed, false) => Err(StoreError::NotCurrent(id)),
            (PageStatus::Current, true) => Err(StoreError::NoPage(id)),
            (PageStatus::Current, false) => {
                let old_parent = page.parent_id;
                if self.rules.delete_reparents_children {
                    let children: Vec<u64> = self.children_all(id);
                    for child in children {
                        let position = self.take_position();
                        let page = self
                            .pages
                            .get_mut(&child)
                            .expect("children come from the page map");
                        page.parent_id = old_parent;
                        page.position = position;
                    }
                }
                let page = self
                    .pages
                    .get_mut(&id)
                    .expect("page existence was checked above");
                page.status = PageStatus::Trashed;
                page.parent_id = None;
                Ok(())
            }
        }
    }

    /// Pages of a space whose title matches `title` under the lookup's case rule, in id order.
    pub fn lookup(
        &self,
        space_key: Option<&str>,
        title: Option<&str>,
        filter: StatusFilter,
    ) -> Vec<u64> {
        self.pages
            .values()
            .filter(|page| page.kind == ContentKind::Page && filter.accepts(page.status))
            .filter(|page| space_key.is_none_or(|key| page.space_key == key))
            .filter(|page| {
                title.is_none_or(|title| {
                    if self.rules.v1_title_lookup_case_sensitive {
                        page.title == title
                    } else {
                        same_title(&page.title, title)
                    }
                })
            })
            .map(|page| page.id)
            .collect()
    }

    /// The current page of a space with this title, ignoring case (uniqueness semantics).
    pub fn page_by_title(&self, space_key: &str, title: &str) -> Option<&Page> {
        self.pages.values().find(|page| {
            page.status == PageStatus::Current
                && page.kind == ContentKind::Page
                && page.space_key == space_key
                && same_title(&page.title, title)
        })
    }

    /// Current direct child pages of `id` in tree order (folders left out, as v1 and v2
    /// `/children` do).
    pub fn children(&self, id: u64) -> Vec<u64> {
        self.children_all(id)
            .into_iter()
            .filter(|&child| self.is_page(child))
            .collect()
    }

    /// Current direct children of `id`, pages and folders, in tree order.
    pub fn children_all(&self, id: u64) -> Vec<u64> {
        let mut children: Vec<&Page> = self
            .pages
            .values()
            .filter(|page| page.parent_id == Some(id) && page.status == PageStatus::Current)
            .collect();
        children.sort_by_key(|page| page.position);
        children.into_iter().map(|page| page.id).collect()
    }

    /// Current descendant pages of `id` (through folders too), depth-first in tree order.
    pub fn descendants(&self, id: u64) -> Vec<u64> {
        self.descendants_all(id)
            .into_iter()
            .filter(|&descendant| self.is_page(descendant))
            .collect()
    }

    /// Current descendants of `id`, pages and folders, depth-first in tree order.
    pub fn descendants_all(&self, id: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut stack: Vec<u64> = self.children_all(id).into_iter().rev().collect();
        while let Some(next) = stack.pop() {
            out.push(next);
            stack.extend(self.children_all(next).into_iter().rev());
        }
        out
    }

    /// Whether `id` is a stored page (not a folder).
    pub fn is_page(&self, id: u64) -> bool {
        self.pages
            .get(&id)
            .is_some_and(|page| page.kind == ContentKind::Page)
    }

    /// The current folder with `id`.
    pub fn folder(&self, id: u64) -> Option<&Page> {
        self.pages
            .get(&id)
            .filter(|page| page.kind == ContentKind::Folder && page.status == PageStatus::Current)
    }

    /// The space with this numeric id.
    pub fn space_by_id(&self, id: u64) -> Option<&Space> {
        self.spaces.iter().find(|space| space.id == id)
    }

    /// All spaces, in creation order.
    pub fn spaces(&self) -> &[Space] {
        &self.spaces
    }

    /// Ancestors of `id`, root first; empty for a top-level or trashed page.
    pub fn ancestors(&self, id: u64) -> Vec<u64> {
        let mut chain = Vec::new();
        let mut cursor = self.pages.get(&id).and_then(|page| page.parent_id);
        while let Some(parent) = cursor {
            if chain.contains(&parent) {
                break;
            }
            chain.push(parent);
            cursor = self.pages.get(&parent).and_then(|page| page.parent_id);
        }
        chain.reverse();
        chain
    }

    /// Every stored page and folder, whatever its status, in id order.
    pub fn all_pages(&self) -> impl Iterator<Item = &Page> {
        self.pages.values()
    }

    /// All current pages (not folders), in id order.
    pub fn current_pages(&self) -> impl Iterator<Item = &Page> {
        self.pages
            .values()
            .filter(|page| page.status == PageStatus::Current && page.kind == ContentKind::Page)
    }

    fn subtree(&self, id: u64) -> Vec<u64> {
        let mut members = vec![id];
        members.extend(self.descendants_all(id));
        members
    }

    fn children_of(&self, parent: Option<u64>, space_key: &str) -> Vec<u64> {
        match parent {
            Some(parent) => self.children(parent),
            None => {
                let mut roots: Vec<&Page> = self
                    .current_pages()
                    .filter(|page| page.parent_id.is_none() && page.space_key == space_key)
                    .collect();
                roots.sort_by_key(|page| page.position);
                roots.into_iter().map(|page| page.id).collect()
            }
        }
    }

    /// A current page or folder that can hold children.
    fn current_parent(&self, parent_id: u64) -> Result<&Page, StoreError> {
        self.pages
            .get(&parent_id)
            .filter(|page| page.status == PageStatus::Current)
            .ok_or(StoreError::NoParent(parent_id))
    }

    /// Refuses a parent that is missing, trashed, the page itself or inside the page's subtree.
    fn check_move_target(&self, id: u64, parent_id: u64) -> Result<(), StoreError> {
        self.current_parent(parent_id)?;
        if parent_id == id || self.ancestors(parent_id).contains(&id) {
            return Err(StoreError::IllegalMove {
                page: id,
                target: parent_id,
            });
        }
        Ok(())
    }

    fn check_title_free(
        &self,
        space_key: &str,
        title: &str,
        except: Option<u64>,
    ) -> Result<(), StoreError> {
        let reserve_trashed = self.rules.trashed_reserves_title;
        let taken = self.pages.values().any(|page| {
            Some(page.id) != except
                && page.kind == ContentKind::Page
                && page.space_key == space_key
                && (page.status == PageStatus::Current || reserve_trashed)
                && same_title(&page.title, title)
        });
        if taken {
            return Err(StoreError::DuplicateTitle {
                title: title.to_owned(),
                space_key: space_key.to_owned(),
            });
        }
        Ok(())
    }

    fn take_position(&mut self) -> u64 {
        let position = self.next_position;
        self.next_position += 1;
        position
    }
}

fn check_title_shape(title: &str) -> Result<(), StoreError> {
    if title.trim().is_empty() {
        return Err(StoreError::EmptyTitle);
    }
    let n_chars = title.chars().count();
    if n_chars > MAX_TITLE_CHARS {
        return Err(StoreError::TitleTooLong(n_chars));
    }
    Ok(())
}

/// Title equality under Confluence's uniqueness rule (case-insensitive).
pub fn same_title(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DC: StoreRules = StoreRules {
        v1_title_lookup_case_sensitive: true,
        trashed_reserves_title: false,
        delete_reparents_children: true,
        move_bumps_version: false,
    };

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn world(rules: StoreRules) -> Store {
        let mut store = Store::new(rules);
        store.add_space("DOCS", "Docs");
        store.add_space("OPS", "Ops");
        store
    }

    fn create(store: &mut Store, title: &str, parent: Option<u64>) -> Result<u64, StoreError> {
        store.create(
            &NewPage {
                space_key: "DOCS",
                title,
                parent_id: parent,
                body: "<p>x</p>",
            },
            now(),
        )
    }

    fn update(
        store: &mut Store,
        id: u64,
        version: Option<u32>,
        title: &str,
        parent: Option<u64>,
    ) -> Result<(), StoreError> {
        store.update(
            id,
            &PageUpdate {
                version,
                title,
                new_parent: parent,
                body: None,
                message: "",
            },
            now(),
        )
    }

    #[test]
    fn titles_are_unique_per_space_ignoring_case() {
        let mut store = world(DC);
        create(&mut store, "Guide", None).expect("first");
        assert_eq!(
            create(&mut store, "GUIDE", None),
            Err(StoreError::DuplicateTitle {
                title: "GUIDE".into(),
                space_key: "DOCS".into()
            })
        );
        let other = store.create(
            &NewPage {
                space_key: "OPS",
                title: "Guide",
                parent_id: None,
                body: "",
            },
            now(),
        );
        assert!(other.is_ok(), "another space may reuse the title");
    }

    #[test]
    fn titles_compare_ignoring_unicode_case() {
        for (a, b, expected) in [
            ("Guide", "gUIDE", true),
            ("Über", "über", true),
            ("ΣΟΦΙΑ", "σοφια", true),
            ("Guide", "Guides", false),
        ] {
            assert_eq!(same_title(a, b), expected, "{a} vs {b}");
        }
    }

    #[test]
    fn title_shape_is_checked() {
        let mut store = world(DC);
        assert_eq!(create(&mut store, "  ", None), Err(StoreError::EmptyTitle));
        let long = "é".repeat(256);
        assert_eq!(
            create(&mut store, &long, None),
            Err(StoreError::TitleTooLong(256))
        );
        assert!(create(&mut store, &"é".repeat(255), None).is_ok());
    }

    #[test]
    fn update_requires_exactly_the_next_version() {
        let mut store = world(DC);
        let id = create(&mut store, "Guide", None).expect("create");
        assert_eq!(
            update(&mut store, id, None, "Guide", None),
            Err(StoreError::VersionMissing)
        );
        assert_eq!(
            update(&mut store, id, Some(3), "Guide", None),
            Err(StoreError::VersionMismatch {
                current: 1,
                given: 3
            })
        );
        update(&mut store, id, Some(2), "guide", None).expect("case-only rename of the same page");
        assert_eq!(
            store
                .page(id)
                .map(|page| (page.version, page.title.as_str())),
            Some((2, "guide"))
        );
    }

    #[test]
    fn moving_under_own_descendant_is_refused() {
        let mut store = world(DC);
        let a = create(&mut store, "A", None).expect("a");
        let b = create(&mut store, "B", Some(a)).expect("b");
        let c = create(&mut store, "C", Some(b)).expect("c");
        assert_eq!(
            update(&mut store, a, Some(2), "A", Some(c)),
            Err(StoreError::IllegalMove { page: a, target: c })
        );
        assert_eq!(
            update(&mut store, a, Some(2), "A", Some(a)),
            Err(StoreError::IllegalMove { page: a, target: a })
        );
        let d = create(&mut store, "D", None).expect("d");
        update(&mut store, b, Some(2), "B", Some(d)).expect("move subtree");
        assert_eq!(store.ancestors(c), vec![d, b]);
        assert_eq!(store.children(a), Vec::<u64>::new());
    }

    #[test]
    fn delete_trashes_and_reparents_children() {
        let mut store = world(DC);
        let a = create(&mut store, "A", None).expect("a");
        let b = create(&mut store, "B", Some(a)).expect("b");
        let c = create(&mut store, "C", Some(b)).expect("c");
        let d = create(&mut store, "D", Some(a)).expect("d");
        store.delete(b, false).expect("trash");
        assert_eq!(
            store.children(a),
            vec![d, c],
            "children move up and go last"
        );
        let trashed = store.page(b).expect("still stored");
        assert_eq!(
            (trashed.status, trashed.parent_id),
            (PageStatus::Trashed, None)
        );
        assert_eq!(store.delete(b, false), Err(StoreError::NotCurrent(b)));
        create(&mut store, "b", None).expect("trash does not reserve titles on DC");
        store.delete(b, true).expect("purge");
        assert!(store.page(b).is_none());
    }

    #[test]
    fn trashed_title_reserved_by_knob_and_update_restores() {
        let mut store = world(StoreRules {
            trashed_reserves_title: true,
            ..DC
        });
        let a = create(&mut store, "A", None).expect("a");
        store.delete(a, false).expect("trash");
        assert!(matches!(
            create(&mut store, "a", None),
            Err(StoreError::DuplicateTitle { .. })
        ));
        update(&mut store, a, Some(2), "A", None).expect("restore");
        assert_eq!(
            store.page(a).map(|page| page.status),
            Some(PageStatus::Current)
        );
    }

    #[test]
    fn lookup_case_rule_follows_knob() {
        let mut store = world(DC);
        let id = create(&mut store, "Guide", None).expect("create");
        assert_eq!(
            store.lookup(Some("DOCS"), Some("guide"), StatusFilter::Current),
            Vec::<u64>::new()
        );
        let lenient = Store {
            rules: StoreRules {
                v1_title_lookup_case_sensitive: false,
                ..DC
            },
            ..store
        };
        assert_eq!(
            lenient.lookup(Some("DOCS"), Some("guide"), StatusFilter::Current),
            vec![id]
        );
    }

    #[test]
    fn move_endpoint_orders_siblings() {
        let mut store = world(DC);
        let root = create(&mut store, "Root", None).expect("root");
        let a = create(&mut store, "A", Some(root)).expect("a");
        let b = create(&mut store, "B", Some(root)).expect("b");
        let c = create(&mut store, "C", Some(root)).expect("c");
        store
            .move_page(c, MovePosition::Before, a, now())
            .expect("before");
        assert_eq!(store.children(root), vec![c, a, b]);
        store
            .move_page(c, MovePosition::After, b, now())
            .expect("after");
        assert_eq!(store.children(root), vec![a, b, c]);
        store
            .move_page(a, MovePosition::Append, b, now())
            .expect("append");
        assert_eq!(store.children(b), vec![a]);
        assert_eq!(
            store.page(a).map(|page| page.version),
            Some(1),
            "moves keep the version by default"
        );
        assert_eq!(
            store.move_page(b, MovePosition::Append, a, now()),
            Err(StoreError::IllegalMove { page: b, target: a })
        );
    }
}
