//! SHA-256, streamed: of a file opened already (through the file-access
//! layer, or in a scratch folder), of bytes, and of a copy as it is made.
use std::{
    fs::File,
    io::{Read, Write},
    path::Path,
};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Large enough that SHA-256 with CPU extensions is never waiting on syscalls.
const CHUNK: usize = 1 << 20;

/// Hex SHA-256 and size of a file opened already (through the file-access
/// layer), read in fixed chunks so memory stays flat.
pub fn sha256_open(mut file: File, path: &Path) -> Result<(String, u64)> {
    let total = file.metadata().map_or(0, |m| m.len());
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut progress = xtask_base::events::Progress::bytes(&format!("sha256 {name}"), total);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).with_context(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
        progress.update(size);
    }
    progress.finish();
    Ok((hex(&hasher.finalize()), size))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of an open file from offset 0, with positioned reads that leave
/// the file's position alone.
pub(super) fn sha256_at(file: &File) -> Result<(String, u64)> {
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buffer, offset).context("read for the hash")?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        offset += n as u64;
    }
    Ok((hex(&hasher.finalize()), offset))
}

/// Copies an open file into another while hashing it, and fsyncs the copy.
pub fn copy_hashed(mut input: &File, mut output: &File) -> Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buffer).context("read")?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output.write_all(&buffer[..n]).context("write")?;
        size += n as u64;
    }
    output.sync_all().context("fsync the copy")?;
    Ok((hex(&hasher.finalize()), size))
}
