//! The REST response surface of the page operations: each typed reply of the page domain becomes
//! the envelope's message and `data`, in the shapes the README documents.

use serde_json::{Value, json};

use crate::pages::{Placed, Reply, TreeNode};

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
                    "pages {}–{end} of {total}; call again with offset={end} for the rest",
                    offset + 1
                )
            } else {
                format!("{total} pages")
            };
            (message, json!(paths))
        }
        Reply::Tree { nodes, page_count } => (
            format!("{page_count} pages"),
            Value::Array(nodes.into_iter().map(tree_node).collect()),
        ),
        Reply::Read(read) => {
            let end = read.offset.saturating_add(read.body.chars().count());
            let message = if read.truncated {
                format!(
                    "characters {}–{end} of {}; call again with offset={end} for the rest",
                    read.offset, read.body_length
                )
            } else {
                "page read".to_owned()
            };
            (
                message,
                json!({
                    "title": read.page.title,
                    "path": read.page.path,
                    "version": read.version,
                    "format": read.format.to_string(),
                    "body": read.body,
                    "bodyLength": read.body_length,
                    "offset": read.offset,
                    "truncated": read.truncated,
                }),
            )
        }
        Reply::Children(children) => (
            format!("{} children", children.len()),
            Value::Array(children.into_iter().map(placed).collect()),
        ),
        Reply::Parent(parent) => ("parent found".to_owned(), placed(parent)),
        Reply::Created { id, page, version } => (
            "page created".to_owned(),
            json!({
                "id": id,
                "title": page.title,
                "version": version,
                "path": page.path,
            }),
        ),
        Reply::Updated { page, version } => (
            "page updated".to_owned(),
            json!({"title": page.title, "version": version, "path": page.path}),
        ),
        Reply::Renamed {
            old_title,
            new_title,
            version,
        } => (
            "page renamed".to_owned(),
            json!({"oldTitle": old_title, "newTitle": new_title, "version": version}),
        ),
        Reply::Moved {
            title,
            old_parent_title,
            new_parent_title,
            already_there,
        } => (
            if already_there {
                "page already under that parent"
            } else {
                "page moved"
            }
            .to_owned(),
            json!({
                "title": title,
                "oldParentTitle": old_parent_title,
                "newParentTitle": new_parent_title,
            }),
        ),
        Reply::Deleted { title } => (
            "page moved to the trash".to_owned(),
            json!({"deletedTitle": title}),
        ),
    }
}

fn placed(page: Placed) -> Value {
    json!({"title": page.title, "path": page.path})
}

fn tree_node(node: TreeNode) -> Value {
    json!({
        "title": node.page.title,
        "children": Value::Array(node.children.into_iter().map(tree_node).collect()),
        "path": node.page.path,
    })
}
