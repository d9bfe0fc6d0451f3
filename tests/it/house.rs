//! The house rules that a reader of the code relies on, kept true by tests:
//! shared modules return values and never print (commands and `ui` decide
//! what the user sees), and only `sys` calls the operating system unsafely.
use std::{fs, path::Path};

/// The modules of `xtask/src` that are not commands: they never print.
const SHARED: [&str; 20] = [
    "clock.rs",
    "confine.rs",
    "evidence/mod.rs",
    "evidence/markdown.rs",
    "exit.rs",
    "fsutil.rs",
    "git.rs",
    "journal.rs",
    "lock.rs",
    "manifest.rs",
    "migrations.rs",
    "process.rs",
    "profile.rs",
    "python.rs",
    "report.rs",
    "seed.rs",
    "services.rs",
    "sqlite.rs",
    "sys.rs",
    "rollback/restored.rs",
];

fn source(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn shared_modules_never_print() {
    for module in SHARED {
        let text = source(module);
        for macro_name in ["println!", "eprintln!", "print!(", "eprint!("] {
            let found =
                text.lines().any(|l| !l.trim_start().starts_with("//") && l.contains(macro_name));
            assert!(!found, "{module} uses {macro_name}: return the text, or go through ui");
        }
    }
}

#[test]
fn only_sys_calls_the_operating_system_unsafely() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let main = source("main.rs");
    assert!(main.contains("#![deny(unsafe_code)]"), "main.rs denies unsafe code");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap().display().to_string();
            if relative == "sys.rs" {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            assert!(!text.contains("libc::"), "{relative} calls libc: put the call in sys.rs");
            let unsafe_code =
                ["unsafe {", "unsafe fn", "unsafe impl"].iter().any(|u| text.contains(u));
            assert!(!unsafe_code, "{relative} has unsafe code: put it in sys.rs");
        }
    }
}
