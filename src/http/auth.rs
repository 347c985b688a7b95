//! The `Authorization: Bearer <secret>` header: extracted here, compared in constant time by
//! [`crate::secret::matches_any`].

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::http::error::ApiError;
use crate::secret::{SecretDigest, matches_any};

/// Checks the `Authorization: Bearer <secret>` header against `accepted`. Every accepted digest is
/// compared, whatever the outcome of the others.
pub fn check_bearer(headers: &HeaderMap, accepted: &[SecretDigest]) -> Result<(), ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing Authorization header; send `Authorization: Bearer <secret>`",
        ));
    };
    let candidate = value
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty());
    let Some(candidate) = candidate else {
        return Err(ApiError::unauthorized(
            "malformed Authorization header; send `Authorization: Bearer <secret>`",
        ));
    };
    if matches_any(candidate, accepted) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid secret"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use http::HeaderValue;

    fn check(header: Option<&str>, expected: Result<(), &str>) {
        let accepted = [
            SecretDigest::of(&Secret::new("current-secret-0123456789")),
            SecretDigest::of(&Secret::new("previous-secret-0123456789")),
        ];
        let mut headers = HeaderMap::new();
        if let Some(header) = header {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(header).expect("ascii"));
        }
        let actual = check_bearer(&headers, &accepted).map_err(|error| error.message);
        assert_eq!(actual, expected.map_err(str::to_owned), "header {header:?}");
    }

    #[test]
    fn auth_matrix() {
        check(Some("Bearer current-secret-0123456789"), Ok(()));
        check(Some("bearer previous-secret-0123456789"), Ok(()));
        check(Some("BEARER  current-secret-0123456789 "), Ok(()));
        check(Some("Bearer wrong"), Err("invalid secret"));
        check(
            Some("Bearer current-secret-012345678"),
            Err("invalid secret"),
        );
        check(
            None,
            Err("missing Authorization header; send `Authorization: Bearer <secret>`"),
        );
        check(
            Some("Basic current-secret-0123456789"),
            Err("malformed Authorization header; send `Authorization: Bearer <secret>`"),
        );
        check(
            Some("Bearer"),
            Err("malformed Authorization header; send `Authorization: Bearer <secret>`"),
        );
        check(
            Some("Bearer "),
            Err("malformed Authorization header; send `Authorization: Bearer <secret>`"),
        );
    }
}
