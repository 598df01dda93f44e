//! Reading image uploads (`multipart/form-data`): text fields and up to N image files, each
//! bounded in size and recognised by its content, and storing them.

use crate::error::{ApiError, ErrorCode, FieldIssue};
use actix_multipart::Multipart;
use bytes::{Bytes, BytesMut};
use carshare_commands::storage::{ImageFormat, ImageStore};
use futures::StreamExt;
use std::collections::HashMap;
use uuid::Uuid;

/// Largest file accepted.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Most files in one upload.
pub const MAX_FILES: usize = 10;
/// Largest text field.
const MAX_TEXT_BYTES: usize = 1024;

/// A parsed upload.
#[derive(Debug, Default)]
pub struct Upload {
    /// Text fields by name.
    pub fields: HashMap<String, String>,
    /// The images of the `files` field(s), in order.
    pub files: Vec<(ImageFormat, Bytes)>,
}

fn form_error(field: &str, reason: &'static str, ko: &str, en: &str) -> ApiError {
    ApiError::with_details(
        ErrorCode::UPLOAD003,
        vec![FieldIssue::new(field, reason, ko, en)],
    )
}

/// Reads the form: text fields named in `text_fields`, image parts named `files` (1 to
/// [`MAX_FILES`], each at most [`MAX_FILE_BYTES`], JPEG/PNG/HEIC/WebP by content). Anything else
/// is refused, before anything is stored.
pub async fn read_images(mut form: Multipart, text_fields: &[&str]) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    while let Some(part) = form.next().await {
        let mut part = part.map_err(|e| {
            form_error(
                "body",
                "malformed",
                "multipart 형식이 올바르지 않습니다.",
                "Malformed multipart body.",
            )
            .caused_by(anyhow::anyhow!("{e}"))
        })?;
        let name = part.name().unwrap_or_default().to_string();
        let is_file = name == "files";
        if !is_file && !text_fields.contains(&name.as_str()) {
            return Err(form_error(
                &name,
                "unknown_field",
                "알 수 없는 항목입니다.",
                "Unknown field.",
            ));
        }
        if is_file && upload.files.len() == MAX_FILES {
            return Err(form_error(
                "files",
                "too_many",
                "사진은 한 번에 최대 10장입니다.",
                "At most 10 files per upload.",
            ));
        }
        let limit = if is_file {
            MAX_FILE_BYTES
        } else {
            MAX_TEXT_BYTES
        };
        let mut data = BytesMut::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| {
                form_error(
                    "body",
                    "malformed",
                    "multipart 형식이 올바르지 않습니다.",
                    "Malformed multipart body.",
                )
                .caused_by(anyhow::anyhow!("{e}"))
            })?;
            if data.len() + chunk.len() > limit {
                return Err(if is_file {
                    ApiError::with_details(
                        ErrorCode::UPLOAD001,
                        vec![FieldIssue::new(
                            format!("files[{}]", upload.files.len()),
                            "too_large",
                            "파일은 10MB 이하여야 합니다.",
                            "At most 10 MB.",
                        )],
                    )
                } else {
                    form_error(&name, "too_long", "값이 너무 깁니다.", "Too long.")
                });
            }
            data.extend_from_slice(&chunk);
        }
        if is_file {
            let index = upload.files.len();
            let format = ImageFormat::sniff(&data).ok_or_else(|| {
                ApiError::with_details(
                    ErrorCode::UPLOAD002,
                    vec![FieldIssue::new(
                        format!("files[{index}]"),
                        "not_an_image",
                        "JPEG, PNG, HEIC, WebP 이미지가 아닙니다.",
                        "Not a JPEG, PNG, HEIC or WebP image.",
                    )],
                )
            })?;
            upload.files.push((format, data.freeze()));
        } else {
            let text = String::from_utf8(data.to_vec())
                .map_err(|_| form_error(&name, "not_text", "텍스트가 아닙니다.", "Not text."))?;
            upload.fields.insert(name, text.trim().to_string());
        }
    }
    if upload.files.is_empty() {
        return Err(form_error(
            "files",
            "required",
            "사진을 1장 이상 올려 주세요.",
            "Send at least one file in `files`.",
        ));
    }
    Ok(upload)
}

/// Stores the files under `prefix/<uuid>.<ext>` and returns their keys; on failure removes
/// what was stored and answers 503.
pub async fn store_all(
    store: &ImageStore,
    prefix: &str,
    files: Vec<(ImageFormat, Bytes)>,
) -> Result<Vec<String>, ApiError> {
    let mut keys = Vec::with_capacity(files.len());
    for (format, bytes) in files {
        let key = format!("{prefix}/{}.{}", Uuid::new_v4(), format.extension());
        if let Err(e) = store.put(&key, bytes).await {
            remove_all(store, &keys).await;
            let mut err = ApiError::new(ErrorCode::UPLOAD004).caused_by(e);
            err.retry_after = Some(5);
            return Err(err);
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Removes stored objects (after a refused command).
pub async fn remove_all(store: &ImageStore, keys: &[String]) {
    for key in keys {
        store.delete(key).await;
    }
}
