//! The REST response surface of the page operations: each typed reply of the page domain becomes
//! the envelope's message and `data`, in the shapes the README documents.

use serde_json::{Value, json};

use crate::pages::{Placed, Reply, SectionRef, TreeNode};

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
        Reply::Searched {
            hits,
            offset,
            next_offset,
        } => {
            let message = match next_offset {
                Some(next) => format!(
                    "{} hits; more may match: call again with offset={next}",
                    hits.len()
                ),
                None => format!("{} hits", hits.len()),
            };
            let hits: Vec<Value> = hits
                .into_iter()
                .map(|hit| {
                    let mut value = placed(hit.page);
                    value["excerpt"] = json!(hit.excerpt);
                    value["version"] = json!(hit.version);
                    if let Some(when) = hit.last_modified {
                        value["lastModified"] = json!(when);
                    }
                    value
                })
                .collect();
            let mut data = json!({"hits": hits, "offset": offset});
            if let Some(next) = next_offset {
                data["nextOffset"] = json!(next);
            }
            (message, data)
        }
        Reply::Outline {
            page,
            version,
            body_length,
            headings,
            offset,
            total,
        } => {
            let end = offset.saturating_add(headings.len());
            let truncated = end < total;
            let message = if truncated {
                format!(
                    "headings {}–{end} of {total}; call again with offset={end} for the rest",
                    offset + 1
                )
            } else {
                format!("{} headings", headings.len())
            };
            let mut data = placed(page);
            data["version"] = json!(version);
            data["bodyLength"] = json!(body_length);
            data["headings"] = Value::Array(
                headings
                    .into_iter()
                    .map(|entry| {
                        let mut value = section_ref(entry.section);
                        value["chars"] = json!(entry.chars);
                        value
                    })
                    .collect(),
            );
            data["offset"] = json!(offset);
            data["headingCount"] = json!(total);
            data["truncated"] = json!(truncated);
            (message, data)
        }
        Reply::Section(read) => {
            // A section reads like a page, plus where the section sits.
            let truncated = read.body.truncated;
            let (message, mut data) = render(Reply::Read(read.body));
            data["section"] = section_ref(read.section);
            let message = if truncated {
                message
            } else {
                "section read".to_owned()
            };
            (message, data)
        }
        Reply::SectionUpdated {
            page,
            version,
            section,
            changed,
        } => {
            // An update's answer, plus the section written.
            let (_, mut data) = render(Reply::Updated { page, version });
            data["section"] = section_ref(section);
            let message = if changed {
                "section updated"
            } else {
                "section already as sent; nothing written"
            };
            (message.to_owned(), data)
        }
    }
}

fn section_ref(section: SectionRef) -> Value {
    json!({
        "level": section.level,
        "text": section.text,
        "anchor": section.anchor,
        "headingPath": section.path,
        "section": section.selector,
    })
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
