//! A small `multipart/form-data` reader (RFC 7578 over RFC 2046) for bodies already read in
//! full under a limit. Only what `POST /avatar/upload` needs: find one named part and return
//! its content without copying.
//!
//! Hand-written rather than a crate: the body is buffered anyway (the route's limit is enforced
//! while reading it), so a streaming parser would add a dependency tree for no benefit.

use bytes::Bytes;

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;
/// Most header bytes accepted per part.
const MAX_PART_HEADERS: usize = 8 * 1024;

/// Why a body is not usable multipart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MultipartError {
    /// `Content-Type` is not `multipart/form-data` with a valid boundary.
    NotMultipart,
    /// The body does not follow the multipart syntax.
    Malformed,
}

/// The boundary of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case("boundary") {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        if v.is_empty() || v.len() > MAX_BOUNDARY || v.bytes().any(|b| b.is_ascii_control()) {
            return Err(MultipartError::NotMultipart);
        }
        return Ok(v.to_owned());
    }
    Err(MultipartError::NotMultipart)
}

/// The content of the first part whose `Content-Disposition` is `form-data` with `name`, or
/// `None` when the (well-formed) body has no such part.
pub(crate) fn find_part(
    body: &Bytes,
    boundary: &str,
    name: &str,
) -> Result<Option<Bytes>, MultipartError> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may open the body (no preamble) or follow a preamble and CRLF.
    let mut pos = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        find(body, delimiter.as_bytes(), 0).ok_or(MultipartError::Malformed)? + delimiter.len()
    };
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            // Close delimiter; the epilogue is ignored.
            return Ok(None);
        }
        // Transport padding, then CRLF.
        let line_end = find(body, b"\r\n", pos).ok_or(MultipartError::Malformed)?;
        if body[pos..line_end]
            .iter()
            .any(|b| !matches!(b, b' ' | b'\t'))
        {
            return Err(MultipartError::Malformed);
        }
        let headers_start = line_end + 2;
        let (headers, content_start) = if body[headers_start..].starts_with(b"\r\n") {
            (&body[headers_start..headers_start], headers_start + 2)
        } else {
            let end = find(body, b"\r\n\r\n", headers_start).ok_or(MultipartError::Malformed)?;
            (&body[headers_start..end], end + 4)
        };
        if headers.len() > MAX_PART_HEADERS {
            return Err(MultipartError::Malformed);
        }
        let content_end =
            find(body, delimiter.as_bytes(), content_start).ok_or(MultipartError::Malformed)?;
        if part_name(headers)?.as_deref() == Some(name) {
            return Ok(Some(body.slice(content_start..content_end)));
        }
        pos = content_end + delimiter.len();
    }
}

/// The `name` parameter of a part's `Content-Disposition: form-data` header.
fn part_name(headers: &[u8]) -> Result<Option<String>, MultipartError> {
    let text = std::str::from_utf8(headers).map_err(|_| MultipartError::Malformed)?;
    for line in text.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else {
            return Err(MultipartError::Malformed);
        };
        if !k.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut params = v.split(';');
        if !params
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("form-data")
        {
            return Ok(None);
        }
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("name") {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                return Ok(Some(v.to_owned()));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// First index of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|b| *b == first)?;
        i += off;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, &[u8])]) -> Bytes {
        let mut b = b"preamble\r\n".to_vec();
        for (headers, content) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            b.extend_from_slice(headers.as_bytes());
            b.extend_from_slice(b"\r\n\r\n");
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\nepilogue");
        Bytes::from(b)
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Ok("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; BOUNDARY=\"a b\"").as_deref(),
            Ok("a b")
        );
        assert_eq!(
            boundary("application/json"),
            Err(MultipartError::NotMultipart)
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NotMultipart)
        );
        let long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert_eq!(boundary(&long), Err(MultipartError::NotMultipart));
    }

    #[test]
    fn finds_the_named_part() {
        let b = body(&[
            ("Content-Disposition: form-data; name=\"other\"", b"x"),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: text/plain",
                b"\x89PNG\r\n-XyZ\r\n",
            ),
        ]);
        assert_eq!(
            find_part(&b, "XyZ", "file").expect("parse").as_deref(),
            Some(&b"\x89PNG\r\n-XyZ\r\n"[..])
        );
        assert_eq!(find_part(&b, "XyZ", "missing").expect("parse"), None);
    }

    #[test]
    fn no_preamble_and_empty_part() {
        let b = Bytes::from_static(
            b"--B\r\nContent-Disposition: form-data; name=file\r\n\r\n\r\n--B--",
        );
        assert_eq!(
            find_part(&b, "B", "file").expect("parse").as_deref(),
            Some(&b""[..])
        );
    }

    #[test]
    fn malformed() {
        let unterminated =
            Bytes::from_static(b"--B\r\nContent-Disposition: form-data; name=file\r\n\r\nabc");
        assert_eq!(
            find_part(&unterminated, "B", "file"),
            Err(MultipartError::Malformed)
        );
        let no_delimiter = Bytes::from_static(b"just text");
        assert_eq!(
            find_part(&no_delimiter, "B", "file"),
            Err(MultipartError::Malformed)
        );
        let junk_after_boundary = Bytes::from_static(b"--Bjunk\r\n\r\nx\r\n--B--");
        assert_eq!(
            find_part(&junk_after_boundary, "B", "file"),
            Err(MultipartError::Malformed)
        );
    }

    #[test]
    fn search() {
        assert_eq!(find(b"abcabd", b"abd", 0), Some(3));
        assert_eq!(find(b"abcabd", b"abd", 4), None);
        assert_eq!(find(b"ab", b"abc", 0), None);
        assert_eq!(find(b"", b"a", 0), None);
    }
}
