//! The state dir: where artifacts, run records and per-pipeline state live.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Resolves the state dir: the flag, else `$SLUICE_HOME`, else `.sluice` in the cwd.
pub fn resolve_state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("SLUICE_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => PathBuf::from(".sluice"),
    }
}

/// Writes a file via a temp file and rename, so readers never see half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CoreError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| CoreError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
}

/// Held for the whole of a run (shared) or a gc (exclusive), so gc never removes what a
/// running process may read.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

fn lock_file(state_dir: &Path) -> Result<(PathBuf, File), CoreError> {
    fs::create_dir_all(state_dir).map_err(|e| CoreError::io(state_dir, e))?;
    let path = state_dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CoreError::io(&path, e))?;
    Ok((path, file))
}

impl StateLock {
    /// A shared lock (runs). Blocks while a gc holds the exclusive lock.
    pub fn shared(state_dir: &Path) -> Result<Self, CoreError> {
        let (path, file) = lock_file(state_dir)?;
        file.lock_shared().map_err(|e| CoreError::io(&path, e))?;
        Ok(StateLock { _file: file })
    }

    /// The exclusive lock (gc), if no run holds the shared one.
    pub fn try_exclusive(state_dir: &Path) -> Result<Option<Self>, CoreError> {
        let (path, file) = lock_file(state_dir)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StateLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(CoreError::io(&path, e)),
        }
    }

    /// The exclusive lock, waiting for running processes to finish.
    pub fn exclusive(state_dir: &Path) -> Result<Self, CoreError> {
        let (path, file) = lock_file(state_dir)?;
        file.lock().map_err(|e| CoreError::io(&path, e))?;
        Ok(StateLock { _file: file })
    }
}

/// What the last successful execution of a stage looked like; `plan` compares against it
/// to say *why* a stage runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageState {
    /// Cache key last produced.
    pub cache_key: String,
    /// Config hash then.
    pub config_hash: String,
    /// Input cache keys then, by input reference.
    pub inputs: Vec<(String, String)>,
    /// Source fingerprint then.
    pub source: Option<String>,
}

/// Per-pipeline state: `pipelines/<name>/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PipelineState {
    /// By stage name.
    pub stages: HashMap<String, StageState>,
}

impl PipelineState {
    fn path(state_dir: &Path, pipeline: &str) -> PathBuf {
        state_dir.join("pipelines").join(pipeline).join("state.json")
    }

    /// Loads it (empty when absent or unreadable: it only explains, never decides).
    pub fn load(state_dir: &Path, pipeline: &str) -> Self {
        fs::read_to_string(Self::path(state_dir, pipeline))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Saves it atomically.
    pub fn save(&self, state_dir: &Path, pipeline: &str) -> Result<(), CoreError> {
        let path = Self::path(state_dir, pipeline);
        let text = serde_json::to_vec(self)
            .map_err(|e| CoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        write_atomic(&path, &text)
    }
}

/// Memo of file content hashes keyed by (size, mtime), so an unchanged 50 MB source is not
/// re-hashed on every plan.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FingerprintMemo {
    files: HashMap<String, (u64, u128, String)>,
    #[serde(skip)]
    dirty: bool,
}

impl FingerprintMemo {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("fingerprints.json")
    }

    /// Loads the memo (empty when absent).
    pub fn load(state_dir: &Path) -> Self {
        fs::read_to_string(Self::path(state_dir))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Saves it if anything changed.
    pub fn save(&self, state_dir: &Path) -> Result<(), CoreError> {
        if !self.dirty {
            return Ok(());
        }
        let path = Self::path(state_dir);
        let text = serde_json::to_vec(self)
            .map_err(|e| CoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        write_atomic(&path, &text)
    }

    /// Fingerprint of a set of files: paths, sizes, mtimes and content hashes.
    pub fn fingerprint(&mut self, files: &[PathBuf]) -> Result<String, CoreError> {
        let mut h = blake3::Hasher::new();
        for path in files {
            let meta = fs::metadata(path).map_err(|e| CoreError::io(path, e))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let key = path.canonicalize().unwrap_or_else(|_| path.clone()).display().to_string();
            let content = match self.files.get(&key) {
                Some((size, m, hash)) if *size == meta.len() && *m == mtime => hash.clone(),
                _ => {
                    let hash = content_digest(path, meta.len()).map_err(|e| CoreError::io(path, e))?;
                    self.files.insert(key.clone(), (meta.len(), mtime, hash.clone()));
                    self.dirty = true;
                    hash
                }
            };
            h.update(key.as_bytes()).update(&meta.len().to_le_bytes()).update(&mtime.to_le_bytes());
            h.update(content.as_bytes());
        }
        Ok(h.finalize().to_hex().to_string())
    }
}

/// Bytes per segment of [`content_digest`]: segments are hashed in parallel.
const SEGMENT: u64 = 8 << 20;

/// A digest of a file's bytes: XXH3-128 of each 8 MiB segment (in parallel), then of those
/// digests and the length. It detects changed sources; it is not a defence against crafted
/// files. A first run of a file collect waits for it, and it takes a fraction of blake3's
/// time (see docs/decisions.md).
fn content_digest(path: &Path, len: u64) -> std::io::Result<String> {
    use rayon::prelude::*;
    use std::io::{ErrorKind, Read, Seek, SeekFrom};
    let segments = len.div_ceil(SEGMENT);
    let digests = (0..segments)
        .into_par_iter()
        .map_init(
            || vec![0u8; 256 << 10],
            |buf, i| {
                let mut h = xxhash_rust::xxh3::Xxh3::new();
                let (mut at, end) = (i * SEGMENT, ((i + 1) * SEGMENT).min(len));
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(at))?;
                while at < end {
                    let n = buf.len().min((end - at) as usize);
                    file.read_exact(&mut buf[..n]).map_err(|e| match e.kind() {
                        ErrorKind::UnexpectedEof => {
                            std::io::Error::new(e.kind(), "the file became shorter while it was being read")
                        }
                        _ => e,
                    })?;
                    h.update(&buf[..n]);
                    at += n as u64;
                }
                Ok(h.digest128())
            },
        )
        .collect::<std::io::Result<Vec<u128>>>()?;
    let mut all = xxhash_rust::xxh3::Xxh3::new();
    for d in digests {
        all.update(&d.to_le_bytes());
    }
    all.update(&len.to_le_bytes());
    Ok(format!("{:032x}", all.digest128()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_content_and_is_memoised() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.csv");
        fs::write(&f, "a\n1\n").unwrap();
        let mut memo = FingerprintMemo::default();
        let one = memo.fingerprint(std::slice::from_ref(&f)).unwrap();
        assert_eq!(one, memo.fingerprint(std::slice::from_ref(&f)).unwrap());
        memo.save(dir.path()).unwrap();
        let mut memo = FingerprintMemo::load(dir.path());
        assert_eq!(one, memo.fingerprint(std::slice::from_ref(&f)).unwrap());
        fs::write(&f, "a\n2\n").unwrap();
        assert_ne!(one, memo.fingerprint(std::slice::from_ref(&f)).unwrap());
    }

    #[test]
    fn content_digest_covers_every_segment_and_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.csv");
        // Two segments and a bit: a change in the last one must show.
        let mut bytes: Vec<u8> = (0..(2 * SEGMENT + 1000)).map(|i| (i % 251) as u8).collect();
        fs::write(&f, &bytes).unwrap();
        let len = bytes.len() as u64;
        let one = content_digest(&f, len).unwrap();
        assert_eq!(one, content_digest(&f, len).unwrap(), "deterministic");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&f, &bytes).unwrap();
        assert_ne!(one, content_digest(&f, len).unwrap());
        // Same bytes split differently into segments (a prefix) must differ too.
        bytes.truncate(SEGMENT as usize);
        fs::write(&f, &bytes).unwrap();
        let prefix = content_digest(&f, SEGMENT).unwrap();
        assert_ne!(prefix, one);
        // A file that shrank while being read is an error, not a short digest.
        let err = content_digest(&f, SEGMENT + 10).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        // An empty file has a digest too.
        fs::write(&f, b"").unwrap();
        assert_ne!(content_digest(&f, 0).unwrap(), prefix);
    }

    #[test]
    fn gc_lock_excludes_runs() {
        let dir = tempfile::tempdir().unwrap();
        let run = StateLock::shared(dir.path()).unwrap();
        assert!(StateLock::try_exclusive(dir.path()).unwrap().is_none());
        drop(run);
        assert!(StateLock::try_exclusive(dir.path()).unwrap().is_some());
    }
}
