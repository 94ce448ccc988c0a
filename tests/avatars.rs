//! Avatars over real sockets (PROTOCOL §4.3, S5 step 6).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::avatars::{
    assert_uploaded, fetch, jpeg, multipart, png, post_raw, upload, webp, BOUNDARY,
};
use common::realtime::{make_contacts, Target};
use common::{new_user, test_config, TestServer};
use http::Method;
use http_body_util::Full;
use melo::{MemoryStore, SqliteStore};

#[tokio::test]
async fn upload_sniffs_the_type() {
    let s = TestServer::start().await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let p = png(&[7u8; 1024]);
    assert_uploaded(&upload(c, &a, &p).await, "image/png", p.len());
    assert_uploaded(&upload(c, &a, &jpeg()).await, "image/jpeg", jpeg().len());
    assert_uploaded(&upload(c, &a, &webp()).await, "image/webp", webp().len());
    let r = fetch(c, &a, &a, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("image/webp"),
        "the newest wins"
    );
    assert_eq!(&r.raw[..], &webp()[..]);

    upload(c, &a, b"GIF89a\x01\0\x01\0\0\0\0;")
        .await
        .assert_error(415, "unsupported_media_type");
    upload(c, &a, b"just some text, not an image")
        .await
        .assert_error(415, "unsupported_media_type");
    upload(c, &a, b"")
        .await
        .assert_error(415, "unsupported_media_type");
    // A rejected upload leaves the previous avatar.
    let r = fetch(c, &a, &a, None).await;
    assert_eq!(&r.raw[..], &webp()[..]);
    s.stop().await;
}

#[tokio::test]
async fn missing_file_part_or_not_multipart_is_422() {
    let s = TestServer::start().await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    for (content_type, body) in [
        (ct.as_str(), multipart("avatar", &png(b"x"))),
        (ct.as_str(), b"garbage without boundaries".to_vec()),
        ("application/json", br#"{"file": "x"}"#.to_vec()),
        ("multipart/form-data", multipart("file", &png(b"x"))),
    ] {
        let r = post_raw(c, &a.token, content_type, body).await;
        r.assert_error(422, "validation_failed");
        assert_eq!(r.body["error"]["fields"][0]["field"], "file", "{}", r.body);
    }
    // No token at all.
    let req = c
        .request(Method::POST, "/avatar/upload", None)
        .header("content-type", &ct)
        .body(Full::new(Bytes::from(multipart("file", &png(b"x")))))
        .expect("request");
    c.send(req).await.assert_error(401, "unauthenticated");
    s.stop().await;
}

#[tokio::test]
async fn over_the_cap_is_413() {
    let mut config = test_config();
    config.push.avatar_max_bytes = 1000;
    let s = TestServer::start_with(config, Arc::new(MemoryStore::new())).await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    // Exactly at the cap is accepted; one byte over is not.
    let at_cap = png(&[1u8; 992]);
    assert_uploaded(&upload(c, &a, &at_cap).await, "image/png", 1000);
    let r = upload(c, &a, &png(&[1u8; 993])).await;
    r.assert_error(413, "payload_too_large");
    // A body over cap + 64 KiB is refused by the route's body limit (Content-Length).
    upload(c, &a, &png(&vec![1u8; 70 * 1024]))
        .await
        .assert_error(413, "payload_too_large");
    // The refused uploads left the accepted one.
    let r = fetch(c, &a, &a, None).await;
    assert_eq!(&r.raw[..], &at_cap[..]);
    s.stop().await;

    // The default 1 MiB cap (S5 step 6): a 1.5 MiB PNG is 413, exactly 1 MiB is accepted.
    let s = TestServer::start().await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    upload(c, &a, &png(&vec![1u8; 1536 * 1024]))
        .await
        .assert_error(413, "payload_too_large");
    let p = png(&vec![2u8; 1_048_576 - 8]);
    assert_uploaded(&upload(c, &a, &p).await, "image/png", 1_048_576);
    s.stop().await;
}

#[tokio::test]
async fn visibility_caching_and_delete() {
    let s = TestServer::start().await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let b = new_user(c, "Bob").await;
    let stranger = new_user(c, "Carol").await;
    make_contacts(&Target::new(c.clone(), s.addr, s.ws_addr), &a, &b).await;
    fetch(c, &a, &a, None).await.assert_error(404, "not_found");
    let p = png(&[42u8; 1024]);
    assert_uploaded(&upload(c, &a, &p).await, "image/png", p.len());

    let own = fetch(c, &a, &a, None).await;
    let contact = fetch(c, &b, &a, None).await;
    for r in [&own, &contact] {
        assert_eq!(r.status, 200);
        assert_eq!(&r.raw[..], &p[..], "the exact bytes");
        assert_eq!(r.header("content-type"), Some("image/png"));
        assert_eq!(r.header("cache-control"), Some("private, max-age=300"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let etag = own.header("etag").expect("etag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2);
    assert_eq!(contact.header("etag"), Some(etag.as_str()));

    let r = fetch(c, &b, &a, Some(&etag)).await;
    assert_eq!(r.status, 304);
    assert!(r.raw.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("private, max-age=300"));
    let r = fetch(c, &b, &a, Some("\"stale\"")).await;
    assert_eq!(r.status, 200);

    // A stranger learns nothing, not even from a matching ETag.
    fetch(c, &stranger, &a, None)
        .await
        .assert_error(404, "not_found");
    fetch(c, &stranger, &a, Some(&etag))
        .await
        .assert_error(404, "not_found");
    let r = c.get("/avatar/123", Some(&a.token)).await;
    r.assert_error(404, "not_found");
    c.get(&format!("/avatar/{}", a.uid), None)
        .await
        .assert_error(401, "unauthenticated");

    // A new upload changes the ETag.
    assert_uploaded(&upload(c, &a, &p).await, "image/png", p.len());
    let r = fetch(c, &b, &a, Some(&etag)).await;
    assert_eq!(r.status, 200, "same image, new upload: new tag");
    assert_ne!(r.header("etag"), Some(etag.as_str()));

    for path in ["/avatar/", "/avatar"] {
        let r = c.call(Method::DELETE, path, Some(&a.token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, serde_json::json!({"ok": true}));
    }
    fetch(c, &b, &a, None).await.assert_error(404, "not_found");
    fetch(c, &a, &a, None).await.assert_error(404, "not_found");
    s.stop().await;
}

#[tokio::test]
async fn sqlite_file_never_holds_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("melo.db"))
            .await
            .expect("sqlite"),
    );
    let s = TestServer::start_with(test_config(), store).await;
    let c = &s.client;
    let a = new_user(c, "Alice").await;
    let marker = b"AVATAR-PRIVACY-MARKER-0123456789-abcdefghijklmnopqrstuvwxyz-END!";
    assert_eq!(marker.len(), 64);
    let p = png(marker);
    assert_uploaded(&upload(c, &a, &p).await, "image/png", p.len());
    assert_eq!(&fetch(c, &a, &a, None).await.raw[..], &p[..]);
    let needle = &marker[..];
    let scan = |dir: &std::path::Path| {
        let mut read = 0;
        for entry in std::fs::read_dir(dir).expect("dir") {
            let path = entry.expect("entry").path();
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("reading {}: {e}", path.display()),
            };
            read += bytes.len();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "image bytes found in {}",
                path.display()
            );
        }
        read
    };
    assert!(scan(dir.path()) > 0);
    s.stop().await;
    assert!(scan(dir.path()) > 0);
}

#[tokio::test]
async fn s5_avatar_scenario() {
    let s = TestServer::start().await;
    common::avatars::s5_avatar(&Target::of(&s)).await;
    s.stop().await;
}
