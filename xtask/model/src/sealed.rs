//! The records the tool writes for itself and reads back (the journal, the
//! verification stamps, the lock's record), sealed: each file holds the
//! record and a MAC over it, its kind and its tree's root, under a key of
//! this user's kept outside every tree (`xtask_fs::seal`). A record that a
//! program the tool ran, another user or a copy from another tree wrote
//! does not open: the caller refuses it or ignores it, never believes it.
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use xtask_fs::seal;

#[derive(Serialize, Deserialize)]
struct Envelope {
    seal: String,
    record: serde_json::Value,
}

/// What a sealed record's MAC covers: its kind, its tree, and the record
/// in one canonical form (serde_json's maps keep their keys sorted).
fn message(kind: &str, root: &Path, record: &serde_json::Value) -> Result<Vec<u8>> {
    let text = serde_json::to_string(record)?;
    Ok(format!("tmws-xtask {kind}\n{}\n{text}", root.display()).into_bytes())
}

/// The record, sealed, as the text of its file.
pub fn seal<T: Serialize>(kind: &str, root: &Path, record: &T) -> Result<String> {
    let record = serde_json::to_value(record)?;
    let seal = seal::seal(&message(kind, root, &record)?)?;
    Ok(serde_json::to_string_pretty(&Envelope { seal, record })?)
}

/// The record of a file's text, when its seal is this user's for this kind
/// and tree; an error that says why otherwise.
pub fn open<T: DeserializeOwned>(kind: &str, root: &Path, text: &str) -> Result<T> {
    let envelope: Envelope = serde_json::from_str(text)
        .with_context(|| format!("it is not a sealed {kind} (a record and its seal)"))?;
    let genuine = seal::verify(&message(kind, root, &envelope.record)?, &envelope.seal)?;
    anyhow::ensure!(
        genuine,
        "its seal does not match: this tool did not write it, for this user and this tree, as it reads now"
    );
    serde_json::from_value(envelope.record)
        .with_context(|| format!("it is not a {kind} of this version"))
}
