//! Object storage for uploaded images (booking photos, vehicle images): a local directory by
//! default, S3 (or an S3-compatible store) by configuration, through the `object_store` crate.
//! Uploads are recognised by their content (magic bytes), never by their file name.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;

/// The image formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// HEIC/HEIF (phones).
    Heic,
    /// WebP.
    Webp,
}

impl ImageFormat {
    /// The format of `bytes`, judged by their first bytes; `None` if not an accepted image.
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(ImageFormat::Jpeg);
        }
        if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            return Some(ImageFormat::Png);
        }
        if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            return Some(ImageFormat::Webp);
        }
        // ISO BMFF: a box size, `ftyp`, then the major brand.
        if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
            let brand = &bytes[8..12];
            const HEIF_BRANDS: [&[u8; 4]; 8] = [
                b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
            ];
            if HEIF_BRANDS.iter().any(|b| b.as_slice() == brand) {
                return Some(ImageFormat::Heic);
            }
        }
        None
    }

    /// File extension of stored objects.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::Heic => "heic",
            ImageFormat::Webp => "webp",
        }
    }
}

/// Storage failed (the store is unreachable or refused).
#[derive(Debug, thiserror::Error)]
#[error("object storage failed: {0}")]
pub struct StorageError(#[from] object_store::Error);

/// Where images are kept.
#[derive(Clone)]
pub struct ImageStore {
    store: Arc<dyn ObjectStore>,
}

impl ImageStore {
    /// Images in a local directory (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<ImageStore, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StorageError(object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?;
        Ok(ImageStore {
            store: Arc::new(store),
        })
    }

    /// Images in an S3 bucket; credentials and region come from the standard `AWS_*`
    /// variables, `endpoint` points at an S3-compatible store.
    pub fn s3(bucket: &str, endpoint: Option<&str>) -> Result<ImageStore, StorageError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        Ok(ImageStore {
            store: Arc::new(builder.build()?),
        })
    }

    /// Any store (tests).
    pub fn with_store(store: Arc<dyn ObjectStore>) -> ImageStore {
        ImageStore { store }
    }

    /// Stores `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&Path::from(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Reads `key` back.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        Ok(self.store.get(&Path::from(key)).await?.bytes().await?)
    }

    /// Deletes `key` (best effort: used to clean up after a refused command).
    pub async fn delete(&self, key: &str) {
        if let Err(e) = self.store.delete(&Path::from(key)).await {
            tracing::warn!(%key, error = %e, "could not delete a stored object");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_by_content() {
        assert_eq!(
            ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(
            ImageFormat::sniff(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Some(ImageFormat::Heic)
        );
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x18ftypmp42\0\0\0\0"), None);
        assert_eq!(ImageFormat::sniff(b"GIF89a"), None);
        assert_eq!(ImageFormat::sniff(b"%PDF-1.7"), None);
        assert_eq!(ImageFormat::sniff(b""), None);
    }

    #[test]
    fn each_format_has_its_extension() {
        assert_eq!(ImageFormat::Jpeg.extension(), "jpg");
        assert_eq!(ImageFormat::Png.extension(), "png");
        assert_eq!(ImageFormat::Heic.extension(), "heic");
        assert_eq!(ImageFormat::Webp.extension(), "webp");
    }

    #[tokio::test]
    async fn a_local_store_keeps_reads_back_and_deletes_images() {
        let dir = std::env::temp_dir().join(format!("carshare-images-{}", uuid::Uuid::new_v4()));
        let store = ImageStore::local(&dir.join("nested")).unwrap();
        let jpeg = Bytes::from_static(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]);
        store.put("bookings/1/a.jpg", jpeg.clone()).await.unwrap();
        assert!(dir.join("nested/bookings/1/a.jpg").is_file());
        assert_eq!(store.get("bookings/1/a.jpg").await.unwrap(), jpeg);
        store.delete("bookings/1/a.jpg").await;
        assert!(store.get("bookings/1/a.jpg").await.is_err());
        // Deleting what is not there is not an error.
        store.delete("bookings/1/missing.jpg").await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_directory_that_cannot_be_created_is_an_error() {
        let file = std::env::temp_dir().join(format!("carshare-file-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"not a directory").unwrap();
        let result = ImageStore::local(&file.join("images"));
        std::fs::remove_file(&file).unwrap();
        let err = result.err().expect("a file cannot hold a directory");
        assert!(
            err.to_string().starts_with("object storage failed"),
            "{err}"
        );
    }
}
