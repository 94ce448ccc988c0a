//! The wire contract's scenarios S1, S2 and the profile/key parts of S5, written once and run both
//! in-process (tests/accounts.rs) and against the example binary (tests/example_binary.rs).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::Method;
use serde_json::{json, Value};

use super::{login_user, new_pem, random_device, random_phone, user_pem, Client, User};

/// S1 Bootstrap and errors. `http_port` is what `/status` must report.
pub async fn s1(c: &Client, http_port: u16) {
    let r = c.get("/healthz", None).await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "ok"}))
    );
    let r = c.get("/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");
    let r = c.get("/status", None).await;
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["http_port"], http_port);

    let pk = c.get("/public_key", None).await;
    let alias = c.get("/encryption_public_key", None).await;
    assert_eq!(pk.status, 200);
    assert_eq!(pk.body, alias.body);
    let pem = pk.body["public_key"].as_str().expect("pem");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let jwks = c.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    let modulus = pem_modulus_b64(pem);
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert!(
        keys.iter()
            .any(|k| k["alg"] == "RS256" && k["kty"] == "RSA" && k["n"] == modulus.as_str()),
        "JWKS has the PEM's key: {}",
        jwks.body
    );

    let r = c.get("/nope", None).await;
    r.assert_error(404, "not_found");
    assert_eq!(r.body["error"]["path"], "/nope");
    let r = c.call(Method::DELETE, "/status", None, None).await;
    r.assert_error(405, "method_not_allowed");
    assert!(r.header("allow").expect("Allow header").contains("GET"));
    let r = c.get("/profile", None).await;
    r.assert_error(401, "unauthenticated");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = c.get("/profile", Some("abc.def.ghi")).await;
    r.assert_error(401, "invalid_token");
    c.get("/debug/users", None)
        .await
        .assert_error(404, "not_found");
    let r = c.get("/openapi.json", None).await;
    assert!(r.body["openapi"]
        .as_str()
        .expect("openapi")
        .starts_with("3.1"));
    assert!(r.body["paths"]["/login"].is_object() && r.body["paths"]["/register"].is_object());
}

fn pem_modulus_b64(pem: &str) -> String {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem).expect("spki");
    URL_SAFE_NO_PAD.encode(key.n().to_bytes_be())
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64url")).expect("json")
}

/// The users S2 leaves behind.
pub struct S2 {
    pub a: User,
    pub b: User,
    pub c: User,
}

async fn register_as(c: &Client, phone: &str, name: &str, password: &str) -> Value {
    let r = c
        .post(
            "/register",
            None,
            &json!({"phone": phone, "name": name, "nickname": name.to_lowercase(), "password": password,
                    "device_id": random_device(), "public_e2e_key": user_pem()}),
        )
        .await;
    assert_eq!(r.status, 200, "register {name}: {}", r.body);
    r.body
}

/// S2 Registration and login.
pub async fn s2(c: &Client) -> S2 {
    let uid_re =
        |s: &str| s.len() == 8 && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    let (pa, pb, pc) = (random_phone(), random_phone(), random_phone());
    let ra = register_as(c, &pa, "Alice", "Passw0rd-A1").await;
    let rb = register_as(c, &pb, "Bob", "Passw0rd-B1").await;
    let rc = register_as(c, &pc, "Carol", "Passw0rd-C1").await;
    for r in [&ra, &rb, &rc] {
        assert!(uid_re(r["unique_id"].as_str().expect("uid")), "{r}");
        assert_eq!(r["public_e2e_key"].as_str(), Some(user_pem().trim()));
    }
    assert_eq!(ra["phone"], pa.as_str());
    assert_eq!(ra["name"], "Alice");
    // 2) duplicate phone
    let dup = c
        .post(
            "/register",
            None,
            &json!({"phone": pa, "name": "Alice", "nickname": "alice", "password": "Passw0rd-A1",
                    "device_id": random_device(), "public_e2e_key": user_pem()}),
        )
        .await;
    dup.assert_error(409, "phone_taken");
    // 3) "8 (999) 000-00-04" form
    let digits = &random_phone()[2..]; // "999xxxxxxx"
    let d_raw = format!(
        "8 ({}) {}-{}-{}",
        &digits[..3],
        &digits[3..6],
        &digits[6..8],
        &digits[8..]
    );
    let rd = register_as(c, &d_raw, "Dave", "Passw0rd-D1").await;
    assert_eq!(rd["phone"], format!("+7{digits}"));
    // 4) each mutation → 422 naming the field
    let valid = json!({"phone": random_phone(), "name": "Eve", "nickname": "eve", "password": "Passw0rd-E1",
                       "device_id": random_device(), "public_e2e_key": user_pem()});
    let ec_pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n";
    for (field, value) in [
        ("phone", json!("abc")),
        ("device_id", json!("xyz")),
        ("password", json!("short")),
        ("name", json!("<b></b>")),
        ("nickname", json!("bad!char")),
        ("public_e2e_key", json!(ec_pem)),
        ("public_e2e_key", Value::Null),
    ] {
        let mut body = valid.clone();
        if value.is_null() {
            body.as_object_mut().expect("object").remove(field);
        } else {
            body[field] = value;
        }
        let r = c.post("/register", None, &body).await;
        r.assert_error(422, "validation_failed");
        assert_eq!(r.body["error"]["fields"][0]["field"], field, "{}", r.body);
    }
    // 5) login A by phone
    let a_uid = ra["unique_id"].as_str().expect("uid");
    let r = super::login(c, &pa, "Passw0rd-A1", "a1b2c3d4e5f60718").await;
    assert_eq!(r.status, 200, "{}", r.body);
    for f in [
        "access_token",
        "token_type",
        "expires_in",
        "session_id",
        "csrf_token",
        "device_token",
        "public_e2e_key",
        "unique_id",
        "phone",
        "name",
        "nickname",
        "device_id",
    ] {
        assert!(!r.body[f].is_null(), "login body has {f}: {}", r.body);
    }
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["csrf_token"].as_str().map(str::len), Some(43));
    assert_eq!(r.body["device_token"].as_str().map(str::len), Some(43));
    let token = r.body["access_token"].as_str().expect("token");
    let parts: Vec<&str> = token.split('.').collect();
    let header = b64_json(parts[0]);
    let claims = b64_json(parts[1]);
    assert_eq!(header["alg"], "RS256");
    let jwks = c.get("/.well-known/jwks.json", None).await;
    assert!(jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["kid"] == header["kid"]));
    assert_eq!(claims["iss"], "pixeltoo.ru");
    assert_eq!(claims["aud"], "mvp_clients");
    assert_eq!(claims["sub"], a_uid);
    assert_eq!(claims["sid"], r.body["session_id"].to_string());
    assert_eq!(claims["jti"].as_str().map(str::len), Some(43));
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        7200
    );
    let session_a = r.body["session_id"].clone();
    // 6) login by uid → same session
    let r = super::login(c, a_uid, "Passw0rd-A1", "a1b2c3d4e5f60718").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["session_id"], session_a);
    // 7) wrong password, unknown phone
    super::login(c, &pa, "Passw0rd-XX", "a1b2c3d4e5f60718")
        .await
        .assert_error(401, "invalid_credentials");
    super::login(c, &random_phone(), "Passw0rd-A1", "a1b2c3d4e5f60718")
        .await
        .assert_error(401, "invalid_credentials");
    // 8) log in B, C and B on a second device
    let a = login_user(c, a_uid, &pa, "Passw0rd-A1", "a1b2c3d4e5f60718").await;
    let b = login_user(
        c,
        rb["unique_id"].as_str().expect("uid"),
        &pb,
        "Passw0rd-B1",
        "b1b2c3d4e5f60718",
    )
    .await;
    let b2 = login_user(c, &b.uid, &pb, "Passw0rd-B1", "b2b2c3d4e5f60718").await;
    assert_ne!(b.session_id, b2.session_id);
    let cu = login_user(
        c,
        rc["unique_id"].as_str().expect("uid"),
        &pc,
        "Passw0rd-C1",
        "c1b2c3d4e5f60718",
    )
    .await;
    S2 { a, b, c: cu }
}

/// S5 steps 1–5 (profile and keys; the avatar part lands with avatars). `a` and `c` are not
/// contacts.
pub async fn s5_profile(c: &Client, a: &User, stranger: &User) {
    let r = c.get("/profile", Some(&a.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["phone"], a.phone.as_str());
    assert_eq!(r.body["username"], Value::Null);
    assert_eq!(r.body["csrf_token"].as_str().map(str::len), Some(43));
    let r = c
        .put(
            "/profile",
            Some(&a.token),
            &json!({"nickname": "alice2", "username": "al", "bio": "hello"}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "updated"}))
    );
    let r = c.get("/profile", Some(&a.token)).await;
    assert_eq!(
        (&r.body["nickname"], &r.body["username"], &r.body["bio"]),
        (&json!("alice2"), &json!("al"), &json!("hello"))
    );
    let r = c
        .put(
            "/profile",
            Some(&a.token),
            &json!({"password": "NewPassw0rd"}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.body["error"]["fields"][0]["field"], "current_password");
    // 3) a non-contact, and an unknown uid
    c.get(
        &format!("/profile?user_id={}", a.uid),
        Some(&stranger.token),
    )
    .await
    .assert_error(403, "not_a_contact");
    c.get("/profile?user_id=10000000", Some(&stranger.token))
        .await
        .assert_error(403, "not_a_contact");
    // 4) new key
    let pem3 = new_pem(2048);
    let r = c
        .post(
            "/e2e/public_key",
            Some(&a.token),
            &json!({"public_e2e_key": pem3}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "ok"}))
    );
    let r = c.get("/profile", Some(&a.token)).await;
    assert_eq!(r.body["public_e2e_key"].as_str(), Some(pem3.trim()));
    let r = c
        .post(
            "/e2e/public_key",
            Some(&a.token),
            &json!({"public_e2e_key": "garbage"}),
        )
        .await;
    r.assert_error(422, "validation_failed");
    // 5) secret-key backup
    let r = c.get("/e2e/secret_key", Some(&a.token)).await;
    assert_eq!(r.body, json!({"ciphertext": null}));
    c.post(
        "/e2e/secret_key",
        Some(&a.token),
        &json!({"ciphertext": "short"}),
    )
    .await
    .assert_error(422, "validation_failed");
    let blob = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY";
    let r = c
        .post(
            "/e2e/secret_key",
            Some(&a.token),
            &json!({"ciphertext": blob}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), &r.body),
        (200, &json!({"status": "ok"}))
    );
    let r = c.get("/e2e/secret_key", Some(&a.token)).await;
    assert_eq!(r.body["ciphertext"], blob);
    let at = r.body["updated_at"].as_str().expect("updated_at");
    assert!(at.ends_with('Z') && at.len() == 24, "{at}");
}
