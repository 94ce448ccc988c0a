//! Avatars (docs/protocol.md §4.3): one image per user, type sniffed from the bytes, sealed at rest,
//! visible to the owner and the users the owner talks to.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Authenticated, Core, Error, Result};
use crate::model::{Timestamp, UserId};
use crate::store::StoredAvatar;

/// PII table and column the image is sealed under (the row is the owner's uid).
pub(crate) const SEAL_TABLE: &str = "avatars";
pub(crate) const SEAL_COLUMN: &str = "image";

/// An accepted avatar type, sniffed from the leading bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImageType {
    /// PNG (`89 50 4E 47 0D 0A 1A 0A`).
    Png,
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// WebP (`RIFF????WEBP`).
    Webp,
}

impl ImageType {
    /// The type of `bytes` by their signature; the declared type is never consulted.
    pub(crate) fn sniff(bytes: &[u8]) -> Option<Self> {
        const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        if bytes.starts_with(PNG) {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    /// The MIME type (`image/png`, `image/jpeg`, `image/webp`).
    pub(crate) fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// The type of a MIME string as [`ImageType::mime`] writes it.
    pub(crate) fn from_mime(mime: &str) -> Option<Self> {
        match mime {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }
}

/// What `POST /avatar/upload` stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AvatarUploaded {
    /// The sniffed type.
    pub image_type: ImageType,
    /// Size of the image in bytes.
    pub size: usize,
}

/// An avatar the viewer may see, still sealed: check [`VisibleAvatar::etag`] against the
/// client's cache before paying for [`VisibleAvatar::open`].
pub(crate) struct VisibleAvatar {
    core: Arc<Core>,
    owner: UserId,
    image_type: ImageType,
    stored: StoredAvatar,
}

impl fmt::Debug for VisibleAvatar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VisibleAvatar")
            .field("owner", &self.owner)
            .field("image_type", &self.image_type)
            .field("etag", &self.stored.etag)
            .field("sealed_len", &self.stored.sealed.len())
            .finish()
    }
}

impl VisibleAvatar {
    /// The image type.
    pub(crate) fn image_type(&self) -> ImageType {
        self.image_type
    }

    /// The entity tag, unquoted.
    pub(crate) fn etag(&self) -> &str {
        &self.stored.etag
    }

    /// The image bytes.
    pub(crate) fn open(&self) -> Result<Vec<u8>> {
        Ok(self.core.pii.open(
            SEAL_TABLE,
            SEAL_COLUMN,
            &self.owner.to_string(),
            &self.stored.sealed,
        )?)
    }
}

/// Avatar upload, visibility and deletion.
#[derive(Clone, Debug)]
pub(crate) struct AvatarsService {
    core: Arc<Core>,
}

impl AvatarsService {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// The largest accepted image in bytes (`AVATAR_MAX_BYTES`).
    pub(crate) fn max_bytes(&self) -> usize {
        self.core.config.push.avatar_max_bytes
    }

    /// Replaces the caller's avatar with `image`: `PayloadTooLarge` over the cap,
    /// `UnsupportedMediaType` unless it is PNG, JPEG or WebP.
    pub(crate) async fn upload(
        &self,
        auth: &Authenticated,
        image: &[u8],
    ) -> Result<AvatarUploaded> {
        let limit = self.max_bytes();
        if image.len() > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        let image_type = ImageType::sniff(image).ok_or(Error::UnsupportedMediaType)?;
        let sealed = self
            .core
            .pii
            .seal(SEAL_TABLE, SEAL_COLUMN, &auth.user.to_string(), image)?;
        let etag = etag_of(&sealed);
        match self
            .core
            .store
            .put_avatar(
                auth.user,
                image_type.mime(),
                &sealed,
                &etag,
                Timestamp::now(),
            )
            .await
        {
            Ok(()) => {}
            Err(crate::store::StoreError::NotFound) => return Err(Error::InvalidToken),
            Err(e) => return Err(e.into()),
        }
        Ok(AvatarUploaded {
            image_type,
            size: image.len(),
        })
    }

    /// `owner`'s avatar if the caller may see it; `NotFound` when it may not or there is none
    /// (one answer, so the route is no oracle for who has an avatar).
    pub(crate) async fn get(&self, auth: &Authenticated, owner: UserId) -> Result<VisibleAvatar> {
        if !self.can_see(auth.user, owner).await? {
            return Err(Error::NotFound);
        }
        let Some(stored) = self.core.store.avatar(owner).await? else {
            return Err(Error::NotFound);
        };
        let image_type = ImageType::from_mime(&stored.mime)
            .ok_or_else(|| Error::Internal(format!("stored avatar type {:?}", stored.mime)))?;
        Ok(VisibleAvatar {
            core: self.core.clone(),
            owner,
            image_type,
            stored,
        })
    }

    /// Deletes the caller's avatar (a success also when there was none).
    pub(crate) async fn delete(&self, auth: &Authenticated) -> Result<()> {
        self.core.store.delete_avatar(auth.user).await?;
        Ok(())
    }

    /// The one visibility rule: the owner, and users with an accepted contact relationship.
    pub(crate) async fn can_see(&self, viewer: UserId, owner: UserId) -> Result<bool> {
        if viewer == owner {
            return Ok(true);
        }
        if self.core.are_contacts(viewer, owner).await? {
            return Ok(true);
        }
        // Users sharing a chat.
        Ok(self.core.store.share_chat(viewer, owner).await?)
    }
}

/// Entity tag of a sealed blob: hex of the first 16 bytes of its SHA-256. The blob is
/// ciphertext under a random nonce, so the tag reveals nothing about the image and changes on
/// every upload.
pub(crate) fn etag_of(sealed: &[u8]) -> String {
    let digest = Sha256::digest(sealed);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0];
        assert_eq!(ImageType::sniff(&png), Some(ImageType::Png));
        assert_eq!(ImageType::sniff(&png[..7]), None, "truncated signature");
        assert_eq!(
            ImageType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageType::Jpeg)
        );
        assert_eq!(
            ImageType::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageType::Webp)
        );
        assert_eq!(ImageType::sniff(b"RIFF\x10\0\0\0WAVE"), None);
        assert_eq!(ImageType::sniff(b"GIF89a"), None);
        assert_eq!(ImageType::sniff(b""), None);
        for t in [ImageType::Png, ImageType::Jpeg, ImageType::Webp] {
            assert_eq!(ImageType::from_mime(t.mime()), Some(t));
        }
    }

    #[test]
    fn etag_is_hex_of_hash_prefix() {
        let e = etag_of(b"sealed");
        assert_eq!(e.len(), 32);
        assert!(e.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(e, etag_of(b"sealed2"));
    }
}
