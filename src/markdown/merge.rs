//! Block-by-block merge of a Markdown update into the stored body (pure: no IO).
//!
//! The stored body is split into its top-level blocks, each rendered to Markdown as a read renders
//! it. The incoming Markdown is split into its top-level blocks and aligned with those (longest
//! common subsequence, so inserted, deleted and moved blocks work). A block whose Markdown is
//! unchanged keeps its stored storage byte for byte; only the other blocks are written from their
//! Markdown.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use super::from_storage::Blocks;
use super::to_storage::{Style, convert_blocks};
use super::xml::{self, parse_fragment};
use super::{BodyError, WritePolicy, check_markdown_characters, safety};

/// Above this many cells, the alignment uses in-order matching of equal blocks instead of the
/// quadratic table.
const MAX_TABLE_CELLS: usize = 4_000_000;

/// Where a block of the result comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Stored(usize),
    New(usize),
}

/// Merges `incoming` Markdown into `stored` storage: unchanged blocks keep their storage, changed
/// and new blocks are converted (and checked against `policy`). `stored_blocks` renders the stored
/// body's blocks (or finds them rendered), and gives nothing when the body does not parse.
pub(crate) fn merge(
    stored: &str,
    stored_blocks: impl FnOnce() -> Option<Arc<Blocks>>,
    incoming: &str,
    policy: &WritePolicy,
) -> Result<String, BodyError> {
    check_markdown_characters(incoming)?;
    // Line endings do not make a block differ.
    let normalised;
    let incoming = if incoming.contains('\r') {
        normalised = incoming.replace("\r\n", "\n");
        normalised.as_str()
    } else {
        incoming
    };
    // A body that does not parse has no blocks to keep.
    let Some(old) = stored_blocks() else {
        return convert_checked(incoming, policy, Style::default());
    };
    if old.is_empty() {
        return convert_checked(incoming, policy, Style::default());
    }
    if renders_as(&old, incoming) {
        return Ok(stored.to_owned());
    }

    let style = Style {
        strike: strike_element(stored),
        separator: "\n\n",
    };
    let converted = convert_blocks(incoming, policy, style);
    let new_texts: Vec<&str> = converted
        .blocks
        .iter()
        .map(|block| incoming[block.markdown.clone()].trim_end())
        .collect();
    let old_texts: Vec<&str> = old.iter().map(|(text, _)| text.as_str()).collect();
    let order = align(&old_texts, &new_texts);

    let spans: Vec<&Range<usize>> = old.iter().map(|(_, span)| span).collect();
    let gap_before = |index: usize| &stored[spans[index - 1].end..spans[index].start];
    let default_gap = if spans.len() > 1 {
        gap_before(1)
    } else {
        "\n\n"
    };
    let mut out = String::with_capacity(stored.len() + incoming.len() / 2);
    out.push_str(&stored[..spans[0].start]);
    let mut previous: Option<Source> = None;
    for source in order {
        if let Some(previous) = previous {
            let gap = match (previous, source) {
                (_, Source::Stored(index)) if index > 0 => gap_before(index),
                (Source::Stored(index), Source::New(_)) if index + 1 < spans.len() => {
                    gap_before(index + 1)
                }
                _ => default_gap,
            };
            out.push_str(gap);
        }
        match source {
            Source::Stored(index) => out.push_str(&stored[spans[index].clone()]),
            Source::New(index) => {
                let storage = &converted.storage[converted.blocks[index].storage.clone()];
                let nodes = parse_fragment(storage).map_err(BodyError::Malformed)?;
                safety::check(&nodes, policy)?;
                out.push_str(storage);
            }
        }
        previous = Some(source);
    }
    out.push_str(&stored[spans[spans.len() - 1].end..]);
    Ok(out)
}

/// Converts a whole document and checks it.
fn convert_checked(
    incoming: &str,
    policy: &WritePolicy,
    style: Style,
) -> Result<String, BodyError> {
    let storage = convert_blocks(incoming, policy, style).storage;
    let nodes = xml::parse_fragment(&storage).map_err(BodyError::Malformed)?;
    safety::check(&nodes, policy)?;
    Ok(storage)
}

/// True when `incoming` is exactly what a read of these blocks gives (trailing whitespace aside).
fn renders_as(blocks: &[(String, Range<usize>)], incoming: &str) -> bool {
    let mut rest = incoming.trim_end();
    for (index, (text, _)) in blocks.iter().enumerate() {
        if index > 0 {
            let Some(after) = rest.strip_prefix("\n\n") else {
                return false;
            };
            rest = after;
        }
        let Some(after) = rest.strip_prefix(text.as_str()) else {
            return false;
        };
        rest = after;
    }
    rest.is_empty()
}

/// The element the page writes strikethrough with: `s` or `strike` when it uses only that one.
fn strike_element(stored: &str) -> &'static str {
    let uses = |tag: &str| stored.contains(tag);
    if uses("<del>") || uses("<del ") {
        "del"
    } else if uses("<s>") {
        "s"
    } else if uses("<strike>") {
        "strike"
    } else {
        "del"
    }
}

/// Aligns old and new blocks: the result lists, in the new order, each new block as the old block
/// it equals (when aligned) or as new.
fn align(old: &[&str], new: &[&str]) -> Vec<Source> {
    let prefix = old
        .iter()
        .zip(new)
        .take_while(|(old, new)| old == new)
        .count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(old, new)| old == new)
        .count();
    let old_middle = &old[prefix..old.len() - suffix];
    let new_middle = &new[prefix..new.len() - suffix];
    let mut order: Vec<Source> = (0..prefix).map(Source::Stored).collect();
    let matches = if old_middle.len().saturating_mul(new_middle.len()) <= MAX_TABLE_CELLS {
        longest_common_subsequence(old_middle, new_middle)
    } else {
        in_order_matches(old_middle, new_middle)
    };
    let mut next_match = matches.iter().peekable();
    for index in 0..new_middle.len() {
        match next_match.peek() {
            Some((old_index, new_index)) if *new_index == index => {
                order.push(Source::Stored(prefix + old_index));
                next_match.next();
            }
            _ => order.push(Source::New(prefix + index)),
        }
    }
    order.extend((old.len() - suffix..old.len()).map(Source::Stored));
    order
}

/// Pairs `(old, new)` of a longest common subsequence, in order.
fn longest_common_subsequence(old: &[&str], new: &[&str]) -> Vec<(usize, usize)> {
    let width = new.len() + 1;
    let mut table = vec![0u32; (old.len() + 1) * width];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            table[i * width + j] = if old[i] == new[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let mut pairs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        if old[i] == new[j] {
            pairs.push((i, j));
            i += 1;
            j += 1;
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    pairs
}

/// Pairs each new block with the first equal old block after the previous pair (for very large
/// differences, where the quadratic table would cost too much).
fn in_order_matches(old: &[&str], new: &[&str]) -> Vec<(usize, usize)> {
    let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, text) in old.iter().enumerate().rev() {
        positions.entry(text).or_default().push(index);
    }
    let mut pairs = Vec::new();
    let mut after = 0;
    for (new_index, text) in new.iter().enumerate() {
        let Some(candidates) = positions.get_mut(text) else {
            continue;
        };
        while candidates.last().is_some_and(|index| *index < after) {
            candidates.pop();
        }
        if let Some(old_index) = candidates.pop() {
            pairs.push((old_index, new_index));
            after = old_index + 1;
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::{Source, align};

    #[test]
    fn alignment_keeps_moved_inserted_and_deleted_blocks_apart() {
        let old = ["a", "b", "c", "d"];
        let new = ["a", "x", "c", "b2", "d"];
        assert_eq!(
            align(&old, &new),
            vec![
                Source::Stored(0),
                Source::New(1),
                Source::Stored(2),
                Source::New(3),
                Source::Stored(3)
            ]
        );
    }
}
