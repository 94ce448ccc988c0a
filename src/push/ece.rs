//! Web Push message encryption (RFC 8291) with the `aes128gcm` content coding (RFC 8188).
//!
//! Every message gets a fresh ephemeral P-256 key and a random salt; the body is one record:
//! `salt(16) || rs(4, BE) || idlen(1) = 65 || keyid = ephemeral public key(65) || ciphertext`.

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::{PublicKey, SecretKey};
use rand::RngCore as _;
use sha2::Sha256;

use super::vapid::b64url_decode;
use super::PushError;

/// Record size written in the header (RFC 8291 §4 uses 4096).
pub(crate) const RECORD_SIZE: u32 = 4096;
/// Header length: salt, record size, key id length, key id.
pub(crate) const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// Largest plaintext that keeps the whole body within the 4096 bytes every push service accepts
/// (RFC 8291 §4): header, padding delimiter and the 16-byte tag take the rest.
pub(crate) const MAX_PLAINTEXT: usize = 4096 - HEADER_LEN - 1 - 16;

/// Encrypts `plaintext` for the subscription keys `p256dh` (base64url of the 65-byte
/// uncompressed point) and `auth` (base64url of 16 bytes).
pub(crate) fn encrypt(p256dh: &str, auth: &str, plaintext: &[u8]) -> Result<Vec<u8>, PushError> {
    let ua_public = b64url_decode(p256dh)
        .filter(|b| b.len() == 65 && b[0] == 0x04)
        .and_then(|b| PublicKey::from_sec1_bytes(&b).ok())
        .ok_or_else(|| PushError::Rejected("invalid p256dh key".into()))?;
    let auth: [u8; 16] = b64url_decode(auth)
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| PushError::Rejected("invalid auth secret".into()))?;
    let ephemeral = SecretKey::random(&mut rand::rngs::OsRng);
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    encrypt_with(&ua_public, &auth, &ephemeral, &salt, plaintext)
}

/// [`encrypt`] with a given ephemeral key and salt (fixed in the RFC 8291 §5 example).
pub(crate) fn encrypt_with(
    ua_public: &PublicKey,
    auth: &[u8; 16],
    as_secret: &SecretKey,
    salt: &[u8; 16],
    plaintext: &[u8],
) -> Result<Vec<u8>, PushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushError::Rejected("payload too large".into()));
    }
    let ua_point = ua_public.to_encoded_point(false);
    let as_point = as_secret.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_public.as_affine());

    // IKM = HKDF(auth, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand_multi_info(
            &[b"WebPush: info\0", ua_point.as_bytes(), as_point.as_bytes()],
            &mut ikm,
        )
        .map_err(|_| internal())?;
    // PRK = HKDF-Extract(salt, IKM); CEK and NONCE from it (RFC 8188 §2.2, §2.3).
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| internal())?;
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| internal())?;

    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(0x02); // last (and only) record, no padding
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| internal())?;
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .map_err(|_| internal())?;
    zeroize::Zeroize::zeroize(&mut ikm);
    zeroize::Zeroize::zeroize(&mut cek);

    let mut body = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_point.as_bytes());
    body.extend_from_slice(&ciphertext);
    Ok(body)
}

fn internal() -> PushError {
    PushError::Rejected("encryption failed".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::vapid::b64url_encode;

    fn d(s: &str) -> Vec<u8> {
        b64url_decode(s).expect("base64url")
    }

    /// The receiving side (a browser), written out from RFC 8291 §3.4 / RFC 8188 §2.
    fn decrypt(ua_secret: &SecretKey, auth: &[u8], body: &[u8]) -> Vec<u8> {
        let salt = &body[..16];
        let rs = u32::from_be_bytes(body[16..20].try_into().expect("rs"));
        assert_eq!(rs, RECORD_SIZE);
        let idlen = body[20] as usize;
        assert_eq!(idlen, 65);
        let as_public = PublicKey::from_sec1_bytes(&body[21..21 + idlen]).expect("keyid");
        let ciphertext = &body[21 + idlen..];
        let shared =
            p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_public.as_affine());
        let ua_point = ua_secret.public_key().to_encoded_point(false);
        let mut ikm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
            .expand_multi_info(
                &[
                    b"WebPush: info\0",
                    ua_point.as_bytes(),
                    &body[21..21 + idlen],
                ],
                &mut ikm,
            )
            .expect("ikm");
        let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let mut cek = [0u8; 16];
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .expect("cek");
        let mut nonce = [0u8; 12];
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .expect("nonce");
        let mut plain = Aes128Gcm::new_from_slice(&cek)
            .expect("key")
            .decrypt(Nonce::from_slice(&nonce), ciphertext)
            .expect("decrypts");
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "last-record delimiter");
        plain
    }

    #[test]
    fn rfc8291_section5_example() {
        let ua_public = PublicKey::from_sec1_bytes(&d(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        ))
        .expect("ua public");
        let as_secret =
            SecretKey::from_slice(&d("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).expect("as");
        assert_eq!(
            b64url_encode(as_secret.public_key().to_encoded_point(false).as_bytes()),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        let auth: [u8; 16] = d("BTBZMqHH6r4Tts7J_aSIgg").try_into().expect("auth");
        let salt: [u8; 16] = d("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("salt");
        let body = encrypt_with(
            &ua_public,
            &auth,
            &as_secret,
            &salt,
            b"When I grow up, I want to be a watermelon",
        )
        .expect("encrypt");
        assert_eq!(
            b64url_encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
        let ua_secret =
            SecretKey::from_slice(&d("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).expect("ua");
        assert_eq!(
            decrypt(&ua_secret, &auth, &body),
            b"When I grow up, I want to be a watermelon"
        );
    }

    #[test]
    fn random_messages_round_trip_and_differ() {
        let ua_secret = SecretKey::random(&mut rand::rngs::OsRng);
        let p256dh = b64url_encode(ua_secret.public_key().to_encoded_point(false).as_bytes());
        let auth = [7u8; 16];
        let msg = br#"{"type":"message","message_id":"1","chat_id":null}"#;
        let a = encrypt(&p256dh, &b64url_encode(&auth), msg).expect("a");
        let b = encrypt(&p256dh, &b64url_encode(&auth), msg).expect("b");
        assert_ne!(a, b, "fresh salt and key per message");
        assert_ne!(a[21..86], b[21..86]);
        assert_eq!(a.len(), HEADER_LEN + msg.len() + 1 + 16);
        assert_eq!(decrypt(&ua_secret, &auth, &a), msg);
        assert_eq!(decrypt(&ua_secret, &auth, &b), msg);
        let max = vec![b'x'; MAX_PLAINTEXT];
        let body = encrypt(&p256dh, &b64url_encode(&auth), &max).expect("max");
        assert_eq!(body.len(), 4096);
        assert!(matches!(
            encrypt(&p256dh, &b64url_encode(&auth), &[0u8; MAX_PLAINTEXT + 1]),
            Err(PushError::Rejected(_))
        ));
    }

    #[test]
    fn bad_subscription_keys_are_rejected() {
        let good_key = b64url_encode(
            SecretKey::random(&mut rand::rngs::OsRng)
                .public_key()
                .to_encoded_point(false)
                .as_bytes(),
        );
        let good_auth = b64url_encode(&[1u8; 16]);
        let mut off_curve = d(&good_key);
        off_curve[64] ^= 1;
        let compressed = b64url_encode(
            SecretKey::random(&mut rand::rngs::OsRng)
                .public_key()
                .to_encoded_point(true)
                .as_bytes(),
        );
        for (key, auth) in [
            ("not base64 !", good_auth.as_str()),
            ("AAAA", good_auth.as_str()),
            (&b64url_encode(&off_curve), good_auth.as_str()),
            (compressed.as_str(), good_auth.as_str()),
            (good_key.as_str(), "AAAA"),
            (good_key.as_str(), &b64url_encode(&[1u8; 17])),
        ] {
            assert!(
                matches!(encrypt(key, auth, b"x"), Err(PushError::Rejected(_))),
                "{key} {auth}"
            );
        }
        encrypt(&good_key, &good_auth, b"x").expect("good keys");
    }
}
