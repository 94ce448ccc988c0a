//! Avatar helpers and the avatar part of S5 (PROTOCOL §4.3, S5 step 6).

use bytes::Bytes;
use http::Method;
use http_body_util::Full;

use super::realtime::{make_contacts, Target};
use super::{new_user, Client, Resp, User};

pub const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// A "PNG": the signature and then `body`.
pub fn png(body: &[u8]) -> Vec<u8> {
    let mut v = PNG_MAGIC.to_vec();
    v.extend_from_slice(body);
    v
}

pub fn jpeg() -> Vec<u8> {
    vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1,
    ]
}

pub fn webp() -> Vec<u8> {
    b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\x10\x07\x10\x11\x11\x88\x88\xfe\x07\0".to_vec()
}

pub const BOUNDARY: &str = "----melo-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart body with one part named `name`; the declared type is deliberately wrong.
pub fn multipart(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"me.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(bytes);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

pub async fn post_raw(c: &Client, token: &str, content_type: &str, body: Vec<u8>) -> Resp {
    let req = c
        .request(Method::POST, "/avatar/upload", Some(token))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    c.send(req).await
}

pub async fn upload(c: &Client, u: &User, bytes: &[u8]) -> Resp {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    post_raw(c, &u.token, &ct, multipart("file", bytes)).await
}

pub async fn fetch(c: &Client, viewer: &User, owner: &User, if_none_match: Option<&str>) -> Resp {
    let mut req = c.request(
        Method::GET,
        &format!("/avatar/{}", owner.uid),
        Some(&viewer.token),
    );
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    c.send(req.body(Full::new(Bytes::new())).expect("request"))
        .await
}

pub fn assert_uploaded(r: &Resp, mime: &str, size: usize) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["mime"], mime);
    assert_eq!(r.body["size"], size);
}

/// S5 step 6 with fresh users: A (a contact of B) uploads a 1 KiB PNG; B gets the same bytes as
/// `image/png`; C (a stranger) gets 404; a text file is 415; a 1.5 MiB PNG is 413 (the default
/// cap); `DELETE /avatar/` and then B gets 404.
pub async fn s5_avatar(t: &Target) {
    let c = &t.client;
    let a = new_user(c, "s5a").await;
    let b = new_user(c, "s5b").await;
    let stranger = new_user(c, "s5c").await;
    make_contacts(t, &a, &b).await;
    let p = png(&[9u8; 1016]);
    assert_eq!(p.len(), 1024);
    assert_uploaded(&upload(c, &a, &p).await, "image/png", 1024);
    let r = fetch(c, &b, &a, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(&r.raw[..], &p[..], "the same bytes");
    assert_eq!(r.header("content-type"), Some("image/png"));
    fetch(c, &stranger, &a, None)
        .await
        .assert_error(404, "not_found");
    upload(c, &a, b"a text file, not an image\n")
        .await
        .assert_error(415, "unsupported_media_type");
    let r = upload(c, &a, &png(&vec![1u8; 1536 * 1024])).await;
    r.assert_error(413, "payload_too_large");
    // Refused by Content-Length with the body still on the wire: the connection's last answer.
    assert_eq!(r.header("connection"), Some("close"));
    let r = c
        .call(Method::DELETE, "/avatar/", Some(&a.token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    fetch(c, &b, &a, None).await.assert_error(404, "not_found");
}
