//! The key that seals the tool's own records (the journal, the verification
//! stamps, the lock's record), kept outside every tree, in the user's state
//! folder (`$XDG_STATE_HOME/tmws-xtask/`, else `~/.local/state/tmws-xtask/`):
//! a program the tool runs may write beneath a tree, but never there, so it
//! cannot write a record the tool will believe. Made on first use (the
//! folder 0700, the key 0600); a folder or key another user owns, or one
//! others may read or write, is refused.
use std::{
    io::{Read, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use xtask_base::exit::refused;

const KEY_FILE: &str = "seal.key";

/// The user's state folder for the tool; none without `XDG_STATE_HOME` or
/// `HOME` (never a shared temporary folder).
pub fn state_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .context("neither XDG_STATE_HOME nor HOME is set: the tool keeps its key in the user's state folder, never in a shared one")?;
    Ok(base.join("tmws-xtask"))
}

/// This user's key, read once per process (made on first use).
pub fn key() -> Result<&'static [u8; 32]> {
    static KEY: OnceLock<Result<[u8; 32], String>> = OnceLock::new();
    let key = KEY.get_or_init(|| load_or_make().map_err(|e| format!("{e:#}")));
    key.as_ref().map_err(|why| refused(why.clone()))
}

fn load_or_make() -> Result<[u8; 32]> {
    let dir = state_dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    owned_and_private(&dir, 0o077)?;
    let path = dir.join(KEY_FILE);
    let mut fresh = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut fresh)?;
    // Exclusive: two first runs at once make one key, and the loser reads it.
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path);
    if let Ok(mut file) = made {
        file.write_all(&fresh)?;
        file.sync_all()?;
        return Ok(fresh);
    }
    let file =
        crate::sys::open_regular(&path).with_context(|| format!("open {}", path.display()))?;
    owned_and_private(&path, 0o077)?;
    let mut key = [0u8; 32];
    (&file).read_exact(&mut key).with_context(|| format!("read {}", path.display()))?;
    Ok(key)
}

/// Refuses a file or folder another user owns, or one `forbidden` bits
/// open to others.
fn owned_and_private(path: &Path, forbidden: u32) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, not to this user (uid {me}): the tool keeps its key only in a folder of its own user",
            path.display(),
            meta.uid()
        );
    }
    if meta.permissions().mode() & forbidden != 0 {
        bail!(
            "{} is open to other users (mode {:o}): make it private (chmod go-rwx) or remove it",
            path.display(),
            meta.permissions().mode() & 0o7777
        );
    }
    Ok(())
}

/// HMAC-SHA256 of `message` under this user's key, in hex.
pub fn seal(message: &[u8]) -> Result<String> {
    Ok(hmac(key()?, message))
}

/// Whether `mac` seals `message` under this user's key (compared in time
/// that does not depend on where they differ).
pub fn verify(message: &[u8], mac: &str) -> Result<bool> {
    let expected = seal(message)?;
    let same = expected.len() == mac.len()
        && expected.bytes().zip(mac.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    Ok(same)
}

fn hmac(key: &[u8; 32], message: &[u8]) -> String {
    let mut padded = [0u8; 64];
    padded[..32].copy_from_slice(key);
    let pad = |byte: u8| padded.map(|k| k ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    format!("{outer:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2 ("Jefe"), with the key zero-padded to 32
    /// bytes as this key always is (HMAC pads it to 64 the same way).
    #[test]
    fn the_mac_is_hmac_sha256() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hmac(&key, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
