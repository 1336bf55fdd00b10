//! Where handed-in files are kept, through the `object_store` crate: the local file system
//! by default (`data/files`, nothing to set up), an S3-compatible bucket by config
//! (`[files] backend = "s3"`) for several daemons on one PostgreSQL.
//!
//! Files are stored under their content's SHA-256 (`sha256/HEX`). An upload is streamed:
//! its size is counted and its kind told from its first bytes while it is written to a
//! staging key, so a file over its limit is refused as soon as the limit is passed and
//! memory stays flat (one part filling and one being written); only a file that passes is
//! moved to its content key. The part is 64 KiB on the local file system, and S3's minimum
//! of 5 MiB elsewhere: with 5 MiB parts locally, 50 concurrent uploads held ~10 MiB each.

use crate::core::submission::{FileKind, SNIFF_BYTES};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, WriteMultipart};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `[files]` in `config/yanzhen.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// `local` (default) or `s3`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// `local`: the folder (default `data/files`, created when missing).
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// `s3`: the bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// `s3`: the endpoint URL of an S3-compatible service (e.g. MinIO, `http://127.0.0.1:9000`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `s3`: the region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// `s3`: the access key id (or `AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `s3`: the secret key (or `AWS_SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_access_key: Option<String>,
}

fn default_backend() -> String {
    "local".into()
}

fn default_root() -> PathBuf {
    PathBuf::from("data/files")
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            backend: default_backend(),
            root: default_root(),
            bucket: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// What can go wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Bigger than its limit (the upload stopped there).
    #[error("the file is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Its content is none of the allowed kinds.
    #[error("the file's content is not one of the allowed kinds")]
    WrongKind {
        /// What the content is, if one of ours.
        found: Option<FileKind>,
    },
    /// The upload could not be read.
    #[error("the upload could not be read: {0}")]
    Read(String),
    /// `[files]` is wrong.
    #[error("[files]: {0}")]
    Config(String),
    /// The store refused.
    #[error("file store: {0}")]
    Store(#[from] object_store::Error),
}

/// A file received and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// SHA-256 of the content, hex.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Kind, told by content.
    pub kind: FileKind,
}

/// The file store.
#[derive(Debug, Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// Bytes buffered before a part is written.
    part_bytes: usize,
}

/// A part on the local file system: small, since a part there is just a write.
const LOCAL_PART_BYTES: usize = 64 * 1024;
/// S3's smallest part (all but the last), for any other store.
const S3_PART_BYTES: usize = 5 * 1024 * 1024;

static STAGING: AtomicU64 = AtomicU64::new(0);

impl Files {
    /// Open the store `[files]` names; relative local roots are taken from `base` (the
    /// config file's folder).
    pub fn open(cfg: &FilesConfig, base: &std::path::Path) -> Result<Files, FilesError> {
        let part_bytes = if cfg.backend == "local" {
            LOCAL_PART_BYTES
        } else {
            S3_PART_BYTES
        };
        let store: Arc<dyn ObjectStore> = match cfg.backend.as_str() {
            "local" => {
                let root = if cfg.root.is_absolute() {
                    cfg.root.clone()
                } else {
                    base.join(&cfg.root)
                };
                std::fs::create_dir_all(&root).map_err(|e| {
                    FilesError::Config(format!("cannot create {}: {e}", root.display()))
                })?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
                    &root,
                )?)
            }
            "s3" => {
                let bucket = cfg
                    .bucket
                    .as_deref()
                    .ok_or_else(|| FilesError::Config("backend = \"s3\" needs `bucket`".into()))?;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(cfg.region.as_deref().unwrap_or("us-east-1"));
                if let Some(e) = &cfg.endpoint {
                    b = b
                        .with_endpoint(e)
                        .with_allow_http(e.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                if let Some(k) = &cfg.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &cfg.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                Arc::new(b.build()?)
            }
            other => {
                return Err(FilesError::Config(format!(
                    "unknown backend `{other}`: write \"local\" or \"s3\""
                )));
            }
        };
        Ok(Files { store, part_bytes })
    }

    /// A store over any `object_store` backend (tests), with parts of S3's minimum size.
    pub fn new(store: Arc<dyn ObjectStore>) -> Files {
        Files {
            store,
            part_bytes: S3_PART_BYTES,
        }
    }

    fn key(hash: &str) -> StorePath {
        StorePath::from(format!("sha256/{hash}"))
    }

    /// Stream one upload into the store: refused as soon as it passes `max_bytes`, or
    /// when its first bytes show none of `kinds`; then nothing of it is kept.
    pub async fn put_stream<S, E>(
        &self,
        mut body: S,
        max_bytes: u64,
        kinds: &[FileKind],
    ) -> Result<Received, FilesError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let n = STAGING.fetch_add(1, Ordering::Relaxed);
        let staging = StorePath::from(format!(
            "staging/{}-{}-{n}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let upload = self.store.put_multipart(&staging).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut prefix: Vec<u8> = Vec::new();
        let mut kind: Option<FileKind> = None;
        let failed = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Err(e)) => break Some(FilesError::Read(e.to_string())),
                Some(Ok(c)) => c,
            };
            size += chunk.len() as u64;
            if size > max_bytes {
                break Some(FilesError::TooLarge { limit: max_bytes });
            }
            if kind.is_none() && prefix.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - prefix.len()).min(chunk.len());
                prefix.extend_from_slice(&chunk[..take]);
                if prefix.len() == SNIFF_BYTES {
                    match FileKind::sniff(&prefix) {
                        Some(k) if kinds.contains(&k) => kind = Some(k),
                        found => break Some(FilesError::WrongKind { found }),
                    }
                }
            }
            hasher.update(&chunk);
            // At most one part is buffered: wait for earlier parts to be written.
            if let Err(e) = w.wait_for_capacity(1).await {
                break Some(e.into());
            }
            w.write(&chunk);
        };
        let kind = match (failed, kind) {
            (Some(e), _) => {
                let _ = w.abort().await;
                return Err(e);
            }
            (None, Some(k)) => k,
            (None, None) => match FileKind::sniff(&prefix) {
                Some(k) if kinds.contains(&k) => k,
                found => {
                    let _ = w.abort().await;
                    return Err(FilesError::WrongKind { found });
                }
            },
        };
        w.finish().await?;
        let hash = hex::encode(hasher.finalize());
        self.store.rename(&staging, &Self::key(&hash)).await?;
        Ok(Received { hash, size, kind })
    }

    /// The bytes of a stored file, as a stream.
    pub async fn get(
        &self,
        hash: &str,
    ) -> Result<impl Stream<Item = object_store::Result<Bytes>> + Send + 'static, FilesError> {
        Ok(self.store.get(&Self::key(hash)).await?.into_stream())
    }

    /// Remove a stored file; one already gone is not an error.
    pub async fn delete(&self, hash: &str) -> Result<(), FilesError> {
        match self.store.delete(&Self::key(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a file is stored.
    pub async fn exists(&self, hash: &str) -> Result<bool, FilesError> {
        match self.store.head(&Self::key(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// How many objects are stored (content keys and staging), for tests and checks.
    pub async fn count(&self) -> Result<usize, FilesError> {
        let mut n = 0;
        let mut list = self.store.list(None);
        while let Some(x) = list.next().await {
            x?;
            n += 1;
        }
        Ok(n)
    }
}

/// The distinct files of a round's submissions that no other round's submission names
/// (content is stored once for all rounds).
pub async fn round_files(
    store: &dyn crate::store::Store,
    round: i64,
) -> Result<Vec<crate::store::StoredFile>, crate::store::StoreError> {
    let mine = store.round_submissions(round).await?;
    let mut others = std::collections::HashSet::new();
    for r in store.rounds().await?.iter().filter(|r| r.id != round) {
        for s in store.round_submissions(r.id).await? {
            others.extend(s.files.into_iter().map(|f| f.hash));
        }
    }
    let mut seen = std::collections::HashSet::new();
    Ok(mine
        .into_iter()
        .flat_map(|s| s.files)
        .filter(|f| !others.contains(&f.hash) && seen.insert(f.hash.clone()))
        .collect())
}

/// Why deleting a round's files stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// Reading the submissions or writing the audit entry.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The file store.
    #[error(transparent)]
    Files(#[from] FilesError),
}

/// Delete a round's files ([`round_files`]) and record `round.delete_files` with what went;
/// how many were deleted.
pub async fn delete_round_files(
    store: &dyn crate::store::Store,
    files: &Files,
    round: i64,
    actor: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, DeleteError> {
    let list = round_files(store, round).await?;
    for f in &list {
        files.delete(&f.hash).await?;
    }
    store
        .append_audit(crate::store::AuditEntry {
            at: now.timestamp_millis(),
            actor: actor.to_string(),
            action: "round.delete_files".into(),
            subject: format!("round:{round}"),
            detail_json: serde_json::json!({
                "files": list.iter().map(|f| serde_json::json!({"hash": f.hash, "name": f.name, "size": f.size})).collect::<Vec<_>>(),
            })
            .to_string(),
        })
        .await?;
    Ok(list.len())
}
