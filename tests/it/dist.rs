//! `cargo xtask dist`: the tarball unpacked in an empty folder runs the
//! product's commands on a sandbox without cargo or the workspace, names
//! itself in what it suggests, and says that the developer tools need the
//! workspace. The binary packed is the one these tests run (`--binary`),
//! without its debug information: a release build would only add minutes
//! of compiling to the suite, and the packing is the same.
use std::{path::PathBuf, process::Command, sync::OnceLock};

use predicates::{prelude::*, str::contains};

use crate::{assert_code, root, run, sandbox, xtask, xtask_path};

/// The tests' binary with its debug information stripped, made once a
/// build: it runs the same, and gzip packs a third of the bytes (packing
/// the whole debug build was most of these tests' time).
fn binary_to_pack() -> &'static PathBuf {
    static STRIPPED: OnceLock<PathBuf> = OnceLock::new();
    STRIPPED.get_or_init(|| {
        let stripped = crate::templates_dir().join("xtask-stripped");
        let lock = std::fs::File::create(stripped.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        if !stripped.is_file() {
            let making = stripped.with_extension(format!("making-{}", std::process::id()));
            let status = Command::new("strip")
                .args(["--strip-debug", "-o"])
                .arg(&making)
                .arg(xtask_path())
                .status()
                .expect("strip, from binutils beside the C compiler cargo uses");
            assert!(status.success(), "strip --strip-debug {}", xtask_path().display());
            std::fs::rename(&making, &stripped).unwrap();
        }
        stripped
    })
}

#[test]
fn the_tarball_runs_the_product_commands_outside_the_workspace() {
    let out = tempfile::TempDir::new().unwrap();
    let packed = run(xtask()
        .args(["dist", "--format", "json", "--binary"])
        .arg(binary_to_pack())
        .arg("--out")
        .arg(out.path()));
    assert_code(&packed, 0);
    let json: serde_json::Value = serde_json::from_str(&packed.stdout).unwrap();
    crate::schema::assert_valid("dist", &json);
    let tarball = json["tarball"].as_str().unwrap();
    let empty = tempfile::TempDir::new().unwrap();
    let unpacked = Command::new("tar").args(["-xzf", tarball]).current_dir(empty.path()).status();
    assert!(unpacked.unwrap().success());
    let binary = empty.path().join(json["binary"].as_str().unwrap());
    let top = binary.parent().unwrap();
    for file in
        ["README.md", "python-requirements.txt", "docs/runbook.md", "docs/schema/error.schema.json"]
    {
        assert!(top.join(file).is_file(), "{file} is in the tarball");
    }
    // A sandbox made by the workspace; the binary run from the empty folder,
    // with nothing of the workspace on its way (no cargo, its own folder).
    let dir = sandbox("phase4");
    let tree = root(&dir);
    let released = |args: &[&str]| {
        let mut command = xtask();
        let mut moved = Command::new(&binary);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => moved.env(key, value),
                None => moved.env_remove(key),
            };
        }
        command = moved;
        run(command.args(args).env("TMWS_ROOT", &tree).current_dir(empty.path()))
    };
    for args in [
        &["backup", "--label", "release-check", "--no-tag"][..],
        &["verify-backup"],
        &["rollback", "--scenario", "database", "--yes"],
        &["post-check"],
    ] {
        assert_code(&released(args), 0);
    }
    // It names itself in what it suggests, and sends the developer tools
    // to the workspace.
    let mistyped = released(&["bakup"]);
    assert_code(&mistyped, 2);
    mistyped.stderr_has(contains("tmws-xtask --help").and(contains("cargo").not()));
    let flagged = released(&["list", "--nope", "--format", "json"]);
    assert_code(&flagged, 2);
    let error: serde_json::Value = serde_json::from_str(&flagged.stdout).unwrap();
    assert_eq!(error["next"], "tmws-xtask list --help");
    released(&["--version"]).stdout_has(contains("tmws-xtask 0."));
    let sandboxed = released(&["sandbox", "--out", "elsewhere"]);
    assert_code(&sandboxed, 2);
    sandboxed.stderr_has(contains("needs this tool's workspace"));
    assert!(!empty.path().join("elsewhere").exists());
}

/// Packed by an account that is not root, with a umask that leaves folders
/// group-writable (0775): every entry still belongs to uid 0 and gid 0,
/// folders and the binary are 0755 and every other file 0644, so root
/// unpacks nothing that the builder's account may rewrite.
#[test]
fn the_tarball_belongs_to_root_with_fixed_modes_whoever_packs_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (out, scratch) = (dir.path().join("out"), dir.path().join("tmp"));
    for folder in [&out, &scratch] {
        std::fs::create_dir(folder).unwrap();
        let owned = Command::new("chown").arg("nobody").arg(folder).status().unwrap();
        assert!(owned.success(), "chown nobody {}", folder.display());
    }
    let mut command = Command::new("setpriv");
    crate::with_test_env(&mut command)
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .args(["sh", "-c", "umask 002 && exec \"$@\"", "sh"])
        .arg(xtask_path())
        .args(["dist", "--format", "json", "--binary"])
        .arg(binary_to_pack())
        .arg("--out")
        .arg(&out)
        .env("TMPDIR", &scratch);
    let packed = run(&mut command);
    assert_code(&packed, 0);
    let json: serde_json::Value = serde_json::from_str(&packed.stdout).unwrap();
    let listed = Command::new("tar")
        .args(["--list", "--verbose", "--numeric-owner", "--gzip", "--file"])
        .arg(json["tarball"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listing = String::from_utf8(listed.stdout).unwrap();
    let binary = json["binary"].as_str().unwrap();
    let mut entries = 0;
    for line in listing.lines() {
        // `drwxr-xr-x 0/0 0 2026-12-06 11:15 name/`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[fields.len() - 1]);
        let expected = match path {
            _ if path.ends_with('/') => "drwxr-xr-x",
            _ if path == binary => "-rwxr-xr-x",
            _ => "-rw-r--r--",
        };
        assert_eq!((mode, owner), (expected, "0/0"), "{line}\n{listing}");
        entries += 1;
    }
    assert!(listing.contains(&format!(" {binary}\n")), "{listing}");
    assert!(entries > 5, "{listing}");
}
