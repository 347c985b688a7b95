//! The route table: every operation of the HTTP surface, its method, path template and access class.
//! The router matches requests against it and the OpenAPI generator describes it, so the two cannot
//! drift apart.

use http::Method;

/// An operation of an endpoint's HTTP surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `GET /pages`: every page under the root, as title paths.
    ListPages,
    /// `GET /pages/tree`: a nested, depth-limited tree.
    PageTree,
    /// `GET /pages/{title}`: one page.
    ReadPage,
    /// `GET /pages/{title}/children`: direct children.
    ListChildren,
    /// `GET /pages/{title}/parent`: parent and breadcrumb.
    GetParent,
    /// `POST /pages`: create a page.
    CreatePage,
    /// `PUT /pages/{title}`: replace a page's body.
    UpdatePage,
    /// `POST /pages/rename`: rename a page.
    RenamePage,
    /// `POST /pages/{title}/move`: move a page under another parent.
    MovePage,
    /// `DELETE /pages/{title}`: move a page to Confluence's trash.
    DeletePage,
    /// `GET /pages/search`: full-text search inside the sandbox.
    SearchPages,
    /// `GET /pages/{title}/outline`: a page's headings with the size of each section.
    PageOutline,
    /// `GET /openapi.json`: this endpoint's OpenAPI document.
    OpenApi,
    /// `GET /health`: liveness of this endpoint's route.
    Health,
    /// `POST /mcp`: the page operations as MCP tools (Streamable HTTP). A front door, not an
    /// operation of its own: never a tool, never in the OpenAPI document.
    Mcp,
}

/// What an operation may do, which decides whether a flavor allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Needs no secret and touches no page: health and the OpenAPI document.
    Public,
    /// Reads pages.
    Read,
    /// Creates a page.
    Create,
    /// Changes or removes existing pages.
    Modify,
    /// Needs the secret, but touches pages only through the operations it carries (the MCP route):
    /// every flavor allows it, and each carried operation is checked against the flavor on its own.
    Protocol,
}

impl Operation {
    /// Every operation, in the order the OpenAPI document lists them.
    pub const ALL: [Operation; 15] = [
        Operation::ListPages,
        Operation::PageTree,
        Operation::SearchPages,
        Operation::ReadPage,
        Operation::PageOutline,
        Operation::ListChildren,
        Operation::GetParent,
        Operation::CreatePage,
        Operation::UpdatePage,
        Operation::RenamePage,
        Operation::MovePage,
        Operation::DeletePage,
        Operation::OpenApi,
        Operation::Health,
        Operation::Mcp,
    ];

    /// The OpenAPI `operationId`, kept from the original Conflagent where it had one.
    pub fn operation_id(self) -> &'static str {
        match self {
            Operation::ListPages => "listSubpages",
            Operation::PageTree => "getPageTree",
            Operation::ReadPage => "readPageByTitle",
            Operation::ListChildren => "listChildPages",
            Operation::GetParent => "getParentPage",
            Operation::CreatePage => "createPage",
            Operation::UpdatePage => "updatePageByTitle",
            Operation::RenamePage => "renamePage",
            Operation::MovePage => "movePage",
            Operation::DeletePage => "deletePageByTitle",
            Operation::SearchPages => "searchPages",
            Operation::PageOutline => "getPageOutline",
            Operation::OpenApi => "getOpenApiDocument",
            Operation::Health => "getHealth",
            Operation::Mcp => "mcp",
        }
    }

    /// Looks an operation up by its `operationId`.
    pub fn from_operation_id(id: &str) -> Option<Operation> {
        Operation::ALL
            .into_iter()
            .find(|operation| operation.operation_id() == id)
    }

    /// The operation's access class.
    pub fn access(self) -> Access {
        match self {
            Operation::OpenApi | Operation::Health => Access::Public,
            Operation::Mcp => Access::Protocol,
            Operation::ListPages
            | Operation::PageTree
            | Operation::ReadPage
            | Operation::ListChildren
            | Operation::GetParent
            | Operation::SearchPages
            | Operation::PageOutline => Access::Read,
            Operation::CreatePage => Access::Create,
            Operation::UpdatePage
            | Operation::RenamePage
            | Operation::MovePage
            | Operation::DeletePage => Access::Modify,
        }
    }

    /// Whether a request must carry the endpoint's Bearer secret.
    pub fn requires_auth(self) -> bool {
        self.access() != Access::Public
    }

    /// Whether the OpenAPI document describes this operation (as a GPT action): every operation
    /// but the MCP route.
    pub fn in_openapi(self) -> bool {
        self.access() != Access::Protocol
    }

    /// Whether the operation is a page operation, offered as an MCP tool where the flavor allows it.
    pub fn is_page_operation(self) -> bool {
        matches!(
            self.access(),
            Access::Read | Access::Create | Access::Modify
        )
    }

    /// The route of this operation in [`ROUTES`].
    pub fn route(self) -> &'static Route {
        ROUTES
            .iter()
            .find(|route| route.operation == self)
            .expect("every operation has exactly one route in ROUTES")
    }
}

/// One row of the route table.
#[derive(Debug)]
pub struct Route {
    /// The operation served.
    pub operation: Operation,
    /// The HTTP method.
    pub method: Method,
    /// The template below `/endpoint/<name>`, e.g. `/pages/{title}/children`. `{title}` stands for a
    /// title path of one or more segments.
    pub template: &'static str,
}

/// The route table. Literal segments are listed before templates that could also match them, so
/// `GET /pages/tree` is the tree and not a page titled "tree" (which is reachable as `/pages/%74ree`:
/// literal segments match only the raw, undecoded path).
pub static ROUTES: [Route; 15] = [
    Route {
        operation: Operation::Health,
        method: Method::GET,
        template: "/health",
    },
    Route {
        operation: Operation::OpenApi,
        method: Method::GET,
        template: "/openapi.json",
    },
    Route {
        operation: Operation::Mcp,
        method: Method::POST,
        template: "/mcp",
    },
    Route {
        operation: Operation::ListPages,
        method: Method::GET,
        template: "/pages",
    },
    Route {
        operation: Operation::CreatePage,
        method: Method::POST,
        template: "/pages",
    },
    Route {
        operation: Operation::PageTree,
        method: Method::GET,
        template: "/pages/tree",
    },
    Route {
        operation: Operation::RenamePage,
        method: Method::POST,
        template: "/pages/rename",
    },
    Route {
        operation: Operation::SearchPages,
        method: Method::GET,
        template: "/pages/search",
    },
    Route {
        operation: Operation::ListChildren,
        method: Method::GET,
        template: "/pages/{title}/children",
    },
    Route {
        operation: Operation::GetParent,
        method: Method::GET,
        template: "/pages/{title}/parent",
    },
    Route {
        operation: Operation::MovePage,
        method: Method::POST,
        template: "/pages/{title}/move",
    },
    Route {
        operation: Operation::PageOutline,
        method: Method::GET,
        template: "/pages/{title}/outline",
    },
    Route {
        operation: Operation::ReadPage,
        method: Method::GET,
        template: "/pages/{title}",
    },
    Route {
        operation: Operation::UpdatePage,
        method: Method::PUT,
        template: "/pages/{title}",
    },
    Route {
        operation: Operation::DeletePage,
        method: Method::DELETE,
        template: "/pages/{title}",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_exactly_one_route_and_a_unique_id() {
        for operation in Operation::ALL {
            let count = ROUTES
                .iter()
                .filter(|route| route.operation == operation)
                .count();
            assert_eq!(count, 1, "{operation:?}");
            assert_eq!(
                Operation::from_operation_id(operation.operation_id()),
                Some(operation)
            );
        }
    }
}
