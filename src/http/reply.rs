//! The REST response surface of the page operations: each typed reply of the page domain becomes
//! the envelope's message and `data`, in the shapes of the original Conflagent (PRODUCT §3, "Drop-in
//! compatibility"). Messages start with the original's sentence; detail may follow. Every `path` is
//! a breadcrumb array from the root page's title down to the page, and a `titlePath` string beside
//! it can be passed straight back as `{title}`.

use serde_json::{Map, Value, json};

use crate::pages::{Placed, Reply, TreeNode};
use crate::titles::encode_title_path;

/// The envelope's message and `data` for `reply`.
pub fn render(reply: Reply) -> (String, Value) {
    match reply {
        Reply::Listed {
            paths,
            offset,
            total,
        } => {
            let end = offset.saturating_add(paths.len());
            let message = if end < total {
                format!(
                    "Subpages retrieved. Pages {}–{end} of {total}; call again with offset={end} \
                     for the rest.",
                    offset + 1
                )
            } else {
                format!("Subpages retrieved. {total} pages.")
            };
            let paths: Vec<String> = paths
                .iter()
                .map(|titles| encode_title_path(titles))
                .collect();
            (message, json!(paths))
        }
        Reply::Tree { root, page_count } => (
            format!(
                "Page tree retrieved. {page_count} pages below `{}`.",
                root.page.title
            ),
            tree_node(root),
        ),
        Reply::Read(read) => {
            let end = read.offset.saturating_add(read.body.chars().count());
            let message = if read.truncated {
                format!(
                    "Page retrieved. Characters {}–{end} of {}; call again with offset={end} for \
                     the rest.",
                    read.offset, read.body_length
                )
            } else {
                "Page retrieved.".to_owned()
            };
            let mut data = placed(&read.page);
            data.insert("version".into(), read.version.into());
            data.insert("format".into(), read.format.to_string().into());
            data.insert("body".into(), read.body.into());
            data.insert("bodyLength".into(), read.body_length.into());
            data.insert("offset".into(), read.offset.into());
            data.insert("truncated".into(), read.truncated.into());
            (message, Value::Object(data))
        }
        Reply::Children(children) => (
            format!("Child pages retrieved. {} children.", children.len()),
            Value::Array(
                children
                    .iter()
                    .map(|child| Value::Object(placed(child)))
                    .collect(),
            ),
        ),
        Reply::Parent { page, parent } => (
            "Parent metadata retrieved.".to_owned(),
            json!({
                "title": parent.title,
                "path": page.breadcrumb,
                "titlePath": title_path(&page),
                "parentPath": parent.breadcrumb,
                "parentTitlePath": title_path(&parent),
            }),
        ),
        Reply::Created { id, page, version } => {
            let mut data = Map::new();
            data.insert("id".into(), id.into());
            data.extend(placed(&page));
            data.insert("version".into(), version.into());
            ("Page created.".to_owned(), Value::Object(data))
        }
        Reply::Updated { page, version } => {
            let mut data = placed(&page);
            data.insert("version".into(), version.into());
            ("Page updated.".to_owned(), Value::Object(data))
        }
        Reply::Renamed {
            old_title,
            new_title,
            version,
        } => (
            "Page renamed.".to_owned(),
            json!({"oldTitle": old_title, "newTitle": new_title, "version": version}),
        ),
        Reply::Moved {
            title,
            old_parent_title,
            new_parent_title,
            already_there,
        } => (
            if already_there {
                "Page moved. It already was under that parent; nothing changed."
            } else {
                "Page moved."
            }
            .to_owned(),
            json!({
                "title": title,
                "oldParentTitle": old_parent_title,
                "newParentTitle": new_parent_title,
            }),
        ),
        Reply::Deleted { title } => (
            "Page deleted. It is in Confluence's trash; its children moved up to its parent."
                .to_owned(),
            json!({"deletedTitle": title}),
        ),
    }
}

/// The title path to pass back as `{title}`: the titles below the root, or the root's own title
/// for the root (a path may start with the root's title).
pub fn title_path(page: &Placed) -> String {
    match page.breadcrumb.as_slice() {
        [root] => encode_title_path(&[root]),
        [_root, below @ ..] => encode_title_path(below),
        [] => String::new(),
    }
}

/// `{title, path, titlePath}` of a page.
fn placed(page: &Placed) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("title".into(), page.title.clone().into());
    object.insert("path".into(), json!(page.breadcrumb));
    object.insert("titlePath".into(), title_path(page).into());
    object
}

fn tree_node(node: TreeNode) -> Value {
    let mut object = placed(&node.page);
    object.insert(
        "children".into(),
        Value::Array(node.children.into_iter().map(tree_node).collect()),
    );
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(breadcrumb: &[&str]) -> Placed {
        Placed {
            title: breadcrumb
                .last()
                .map(|t| (*t).to_owned())
                .unwrap_or_default(),
            breadcrumb: breadcrumb.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn title_paths_start_below_the_root_and_encode_slashes() {
        assert_eq!(title_path(&page(&["Home"])), "Home");
        assert_eq!(title_path(&page(&["Home", "Guides"])), "Guides");
        assert_eq!(
            title_path(&page(&["Home", "CI/CD", "100%"])),
            "CI%2FCD/100%25"
        );
        assert_eq!(title_path(&page(&["A/B"])), "A%2FB");
    }
}
