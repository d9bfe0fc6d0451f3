//! `cargo xtask bench`: our commands against the runbook's own shell
//! commands, on the same trees, in the same run, interleaved (A B A B ...),
//! reported as ratios with the peak memory the kernel accounted to us.
use std::{
    fmt::Write as _,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context, Result};
use serde::Serialize;
use xshell::Shell;

use xtask_adapters::{process, python::Python};
use xtask_base::exit::usage;
use xtask_fs::sys;
use xtask_fs::unconfined;

use crate::{
    cli::{
        flags::{self, Measures, Stage},
        ui,
    },
    dev::{
        sandbox,
        seed::{self, Shape},
    },
};

mod chart;
mod offsite;

use chart::chart;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Pair {
    pub command: String,
    pub size: String,
    pub shape: String,
    pub database_mib: f64,
    pub ours_median_s: f64,
    pub ours_min_s: f64,
    pub ours_max_s: f64,
    pub baseline_median_s: f64,
    pub baseline_min_s: f64,
    pub baseline_max_s: f64,
    pub ratio: f64,
    pub target: Option<f64>,
    /// Peak resident memory of the xtask process itself.
    pub ours_peak_mib: f64,
    /// Including the programs it ran (alembic, pytest, uvicorn).
    pub ours_peak_with_children_mib: f64,
    pub ours_s_per_mib: f64,
    pub ours_ok: bool,
    pub baseline_ok: bool,
    /// Every run in the order it ran (ours and the baseline alternate), so a
    /// noisy disk shows as scattered runs rather than as a bad median.
    pub ours_runs_s: Vec<f64>,
    pub baseline_runs_s: Vec<f64>,
    /// What the row measured beyond time (a push: the data it added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub schema: u32,
    pub runs: u32,
    pub sqlite_cli: String,
    pub pairs: Vec<Pair>,
}

impl flags::Bench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        crate::dev::workspace("bench")?;
        let sizes = parse_sizes(self.sizes.as_deref().unwrap_or("1MiB,64MiB,1GiB"))?;
        let runs = self.runs.map_or(3, |count| count.0);
        FLUSH.store(!self.no_sync, std::sync::atomic::Ordering::Relaxed);
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench"));
        let only = self.only.clone().unwrap_or_else(Measures::all);
        let sqlite_cli = require_tools()?;
        // Without restic the push and pull rows are left out, and it says so.
        let restic = (only.has("push") || only.has("pull")) && offsite::restic_found();
        unconfined::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
        let out = xtask_fs::outside::canonicalize(&out)?;
        let repos = if restic { Some(offsite::Repos::new(&out)?) } else { None };
        let python = Python::find(sh, None, self.python.as_deref())?;
        let mut pairs = Vec::new();
        // The verification section is about the fixture, not a database size:
        // it runs on the sandbox as built, whatever --sizes says.
        if only.has("post-check") {
            ui::note("bench: fixture: preparing the tree");
            let fixture = prepare(sh, &out, "fixture", 0, Shape::Rows, &python)?;
            let context =
                Setup { out: &out, tree: &fixture, label: "fixture", shape: "-", runs, gib: false };
            pairs.push(measure_post_check(&context, &python)?);
        }
        for &(label, bytes) in &sizes {
            for shape in [Shape::Rows, Shape::Blobs] {
                let shape_name = if shape == Shape::Rows { "rows" } else { "blobs" };
                ui::note(&format!("bench: {label} {shape_name}: preparing the tree"));
                let tree = prepare(sh, &out, label, bytes, shape, &python)?;
                let context = Setup {
                    out: &out,
                    tree: &tree,
                    label,
                    shape: shape_name,
                    runs,
                    gib: bytes >= 1 << 30,
                };
                pairs.extend(measure_size(&context, &only)?);
                if only.has("migration") {
                    pairs.push(measure_migration(&context, &python)?);
                }
                if let Some(repos) = &repos {
                    pairs.extend(offsite::measure(&context, &only, repos)?);
                }
            }
        }
        if let Some(repos) = repos {
            repos.remove()?;
        }
        let report = BenchReport { schema: xtask_model::check::SCHEMA, runs, sqlite_cli, pairs };
        let table = render(&report);
        unconfined::write(out.join("report.json"), serde_json::to_string_pretty(&report)?)?;
        unconfined::write(
            out.join("report.md"),
            format!("# cargo xtask bench\n\n{table}\n![time against size](chart.svg)\n"),
        )?;
        unconfined::write(out.join("chart.svg"), chart(&report.pairs))?;
        ui::out(&table);
        ui::line(&format!("\nreport: {} and report.json", out.join("report.md").display()));
        Ok(())
    }
}

struct Setup<'a> {
    out: &'a Path,
    tree: &'a Path,
    label: &'a str,
    shape: &'a str,
    runs: u32,
    /// The ratio targets are set for 1 GiB databases.
    gib: bool,
}

/// `1MiB,64MiB,1GiB` as (label, bytes).
pub fn parse_sizes(text: &str) -> Result<Vec<(&str, u64)>> {
    text.split(',')
        .map(str::trim)
        .map(|item| {
            let units = [("KiB", 1u64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)];
            let parsed = units.iter().find_map(|(unit, scale)| {
                item.strip_suffix(unit).and_then(|n| n.parse::<u64>().ok()).map(|n| n * scale)
            });
            match parsed {
                Some(bytes) if bytes > 0 => Ok((item, bytes)),
                _ => Err(usage(format!("invalid size {item:?} in --sizes: use a number with KiB, MiB or GiB, e.g. 64MiB"))),
            }
        })
        .collect()
}

/// The baseline's tools must exist; say which package brings each.
fn require_tools() -> Result<String> {
    for (tool, package) in
        [("sqlite3", "sqlite3"), ("sha256sum", "coreutils"), ("cp", "coreutils"), ("curl", "curl")]
    {
        let found = Command::new("sh")
            .args(["-c", "command -v \"$1\"", "sh", tool])
            .stdout(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            return Err(usage(format!(
                "the baseline needs `{tool}`, which is not installed: apt-get install {package} (or your system's {package} package)"
            )));
        }
    }
    let version = Command::new("sqlite3").arg("--version").output()?;
    Ok(String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string())
}

/// A pre-Phase-4 sandbox whose database is grown to `bytes`, with its
/// backup `bench`; reused from an earlier bench run when it is complete.
fn prepare(
    sh: &Shell,
    out: &Path,
    label: &str,
    bytes: u64,
    shape: Shape,
    python: &Python,
) -> Result<PathBuf> {
    let dir = out
        .join("trees")
        .join(format!("{label}-{}", if shape == Shape::Rows { "rows" } else { "blobs" }));
    // The marker lives beside the tree: inside, it would make git unclean.
    let ready = dir.with_extension("ready");
    if xtask_fs::outside::is_file(&ready) {
        return Ok(dir);
    }
    if xtask_fs::outside::exists(&dir) {
        unconfined::remove_dir_all(&dir)?;
    }
    let tree = sandbox::build(sh, &dir, Stage::PrePhase4, Some(&python.exe("python")), None)?;
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(tree.database())?;
    seed::grow(&mut conn, bytes, shape)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    ui::note(&format!(
        "bench: grew the database to {label} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    let backup = ours(&["backup", "--label", "bench", "--no-tag"], &tree.root)?;
    anyhow::ensure!(backup.ok, "the bench backup failed");
    unconfined::write(&ready, "")?;
    Ok(tree.root)
}

/// A measured run: wall time, peak resident memory (KiB) of the xtask
/// process itself and of everything it waited for, and success.
struct Run {
    seconds: f64,
    peak_kib: u64,
    peak_with_children_kib: u64,
    ok: bool,
}

impl Run {
    /// Two runs one after the other, as one: their times added.
    fn then(self, next: Run) -> Run {
        Run {
            seconds: self.seconds + next.seconds,
            peak_kib: self.peak_kib.max(next.peak_kib),
            peak_with_children_kib: self.peak_with_children_kib.max(next.peak_with_children_kib),
            ok: self.ok && next.ok,
        }
    }
}

/// Whether each run starts with a flush of every file system (not with
/// `--no-sync`, which the tests use: a flush of the whole machine is slow).
static FLUSH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Set by the bench on the xtask processes it measures: where each one writes
/// its own peak resident memory at exit, from the kernel's accounting of
/// itself (`cli::ui::report_peak_memory`).
const PEAK_FILE_ENV: &str = "XTASK_PEAK_RSS_FILE";

/// Runs a command in its own process group and reads its resource usage
/// from the kernel (`wait4`), so the peak memory is the kernel's figure.
fn measured(command: Command) -> Result<Run> {
    measured_to(command, Stdio::null())
}

/// `measured`, with the command's stdout sent to `stdout`.
fn measured_to(mut command: Command, stdout: Stdio) -> Result<Run> {
    command.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::null()).process_group(0);
    // Every run starts with nothing dirty in the page cache: otherwise the
    // previous run's deferred writes land on the next one's clock.
    if FLUSH.load(std::sync::atomic::Ordering::Relaxed) {
        sys::sync_all_filesystems();
    }
    let started = Instant::now();
    let child = command.spawn().context("start a measured command")?;
    let pid = child.id() as i32;
    let waited = sys::wait_with_usage(pid);
    let seconds = started.elapsed().as_secs_f64();
    // Anything the command left running in its group goes too.
    process::signal_group(pid, sys::Sig::Kill);
    let (ok, peak) = waited.context("wait4")?;
    // The child was reaped by wait4, not by std: forget it.
    drop(child);
    Ok(Run { seconds, peak_kib: 0, peak_with_children_kib: peak, ok })
}

fn ours(args: &[&str], root: &Path) -> Result<Run> {
    ours_with(args, root, &[], Stdio::null())
}

/// `ours`, with more environment and the command's stdout sent to `stdout`.
fn ours_with(args: &[&str], root: &Path, envs: &[(&str, &Path)], stdout: Stdio) -> Result<Run> {
    let peak_file = std::env::temp_dir().join(format!("xtask-bench-peak-{}", std::process::id()));
    unconfined::remove_file(&peak_file)?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(args).arg("--root").arg(root).env(PEAK_FILE_ENV, &peak_file);
    command.envs(envs.iter().copied());
    let mut run = measured_to(command, stdout)?;
    run.peak_kib = xtask_fs::outside::read_to_string(&peak_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    unconfined::remove_file(&peak_file)?;
    Ok(run)
}

fn baseline(args: &[&str], cwd: &Path, envs: &[(&str, String)]) -> Result<Run> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(args[0]);
    let mut command = Command::new("bash");
    command.arg(script).args(&args[1..]).current_dir(cwd);
    for (key, value) in envs {
        command.env(key, value);
    }
    measured(command)
}

/// Runs one pair (ours, then the baseline) unmeasured, then `runs` measured
/// pairs. Without it, in every 1 GiB bench the first run of a group took two
/// to three times as long as the others, whichever the command (the disk,
/// as far as we can tell, still busy with what the previous group wrote and
/// deleted); ours runs first, so that cost always fell on ours. A quick
/// look (`--no-sync`) is not for figures and skips it.
fn interleaved(
    runs: u32,
    mut one_pair: impl FnMut(u32) -> Result<(Run, Run)>,
) -> Result<(Vec<Run>, Vec<Run>)> {
    if FLUSH.load(std::sync::atomic::Ordering::Relaxed) {
        one_pair(runs)?;
    }
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let (a, b) = one_pair(i)?;
        ours.push(a);
        base.push(b);
    }
    Ok((ours, base))
}

/// The size of a bench tree's database, in MiB.
fn database_mib(root: &Path) -> Result<f64> {
    let meta = xtask_fs::outside::followed(root.join("data/tmws.db"))
        .context("the bench tree has no data/tmws.db")?;
    Ok(meta.len() as f64 / (1 << 20) as f64)
}

fn measure_size(c: &Setup<'_>, only: &Measures) -> Result<Vec<Pair>> {
    let root = c.tree;
    let db_mib = database_mib(root)?;
    let root_s = root.display().to_string();
    let backup_dir = root.join("backups/bench").display().to_string();
    let scratch = c.out.join("scratch");
    let mut pairs = Vec::new();

    let progress = |what: &str| {
        ui::note(&format!("bench: {} {}: {what}, {} runs each", c.label, c.shape, c.runs))
    };

    // backup vs sqlite3 .backup + cp
    if only.has("backup") {
        progress("backup");
        let (a, b) = interleaved(c.runs, |i| {
            let label = format!("bench-run-{i}");
            let ours = ours(&["backup", "--label", &label, "--no-tag"], root)?;
            unconfined::remove_dir_all(root.join("backups").join(&label))?;
            let target = scratch.join(format!("backup-{i}"));
            unconfined::remove_dir_all(&target)?;
            let base = baseline(
                &["runbook-baseline.sh", "backup", &root_s, &target.display().to_string()],
                root,
                &[],
            )?;
            unconfined::remove_dir_all(&target)?;
            Ok((ours, base))
        })?;
        pairs.push(pair("backup", c, db_mib, &a, &b, c.gib.then_some(1.3)));
    }

    // verify-backup vs sha256sum then PRAGMA integrity_check
    if only.has("verify-backup") {
        progress("verify-backup");
        let (a, b) = interleaved(c.runs, |_| {
            Ok((
                ours(&["verify-backup", "--label", "bench"], root)?,
                baseline(&["runbook-baseline.sh", "verify", &backup_dir], root, &[])?,
            ))
        })?;
        pairs.push(pair("verify-backup", c, db_mib, &a, &b, c.gib.then_some(0.6)));
    }

    // rollback --scenario database vs the runbook's two copies
    if only.has("rollback") {
        progress("rollback --scenario database");
        let (a, b) = interleaved(c.runs, |_| {
            let ours =
                ours(&["rollback", "--scenario", "database", "--label", "bench", "--yes"], root)?;
            unconfined::remove_dir_all(root.join("forensics"))?;
            let base = baseline(
                &["runbook-baseline.sh", "rollback-database", &root_s, &backup_dir],
                root,
                &[],
            )?;
            unconfined::remove_file(root.join("data/tmws.db.failed-phase4"))?;
            Ok((ours, base))
        })?;
        pairs.push(pair("rollback --scenario database", c, db_mib, &a, &b, c.gib.then_some(1.5)));
    }
    unconfined::remove_dir_all(&scratch)?;
    Ok(pairs)
}

/// rollback --scenario migration (one step down, on a copy, with every
/// check) against the runbook's `cp` of the database, `alembic downgrade
/// REV` and `alembic current`, from the same database each time.
fn measure_migration(c: &Setup<'_>, python: &Python) -> Result<Pair> {
    ui::note(&format!(
        "bench: {} {}: rollback --scenario migration, {} runs each",
        c.label, c.shape, c.runs
    ));
    let root = c.tree;
    let db_mib = database_mib(root)?;
    let db = root.join("data/tmws.db");
    let graph = xtask_model::profile::Tree::locate(Some(root))?.graph()?;
    let head = graph.heads().first().cloned().context("the bench tree has no head revision")?;
    let parent = graph.revisions[&head].down.first().cloned().context("the head has no parent")?;
    // Every run starts from the same database, with its WAL folded in.
    rusqlite::Connection::open(&db)?.query_row(
        "PRAGMA wal_checkpoint(TRUNCATE)",
        [],
        |_| Ok(()),
    )?;
    let pristine = c.out.join("pristine.db");
    unconfined::copy(&db, &pristine)?;
    let restore = || -> Result<()> {
        unconfined::copy(&pristine, &db)?;
        for leftover in ["tmws.db-wal", "tmws.db-shm", "tmws.db.failed-phase4"] {
            unconfined::remove_file(root.join("data").join(leftover))?;
        }
        unconfined::remove_dir_all(root.join("forensics"))
    };
    let path = format!("{}:{}", python.bin.display(), std::env::var("PATH").unwrap_or_default());
    let (a, b) = interleaved(c.runs, |_| {
        let args = ["rollback", "--scenario", "migration", "--label", "bench", "--steps", "1"];
        let ours = ours(&[&args[..], &["--allow-data-loss", "--yes"]].concat(), root)?;
        restore()?;
        let root_s = root.display().to_string();
        let script = ["runbook-baseline.sh", "rollback-migration", &root_s, &parent];
        let base = baseline(&script, root, &[("PATH", path.clone())])?;
        restore()?;
        Ok((ours, base))
    })?;
    unconfined::remove_file(&pristine)?;
    Ok(pair("rollback --scenario migration", c, db_mib, &a, &b, Some(1.5)))
}

fn measure_post_check(c: &Setup<'_>, python: &Python) -> Result<Pair> {
    let root = c.tree;
    let db_mib = database_mib(root)?;
    let path = format!("{}:{}", python.bin.display(), std::env::var("PATH").unwrap_or_default());
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..c.runs {
        a.push(ours(&["post-check", "--label", "bench", "--skip", "forensics"], root)?);
        let port = xtask_ops::post_check::free_port()?.to_string();
        b.push(baseline(
            &["runbook-verification.sh"],
            root,
            &[("PATH", path.clone()), ("PORT", port)],
        )?);
    }
    Ok(pair("post-check", c, db_mib, &a, &b, Some(0.5)))
}

fn pair(
    command: &str,
    c: &Setup<'_>,
    db_mib: f64,
    ours: &[Run],
    base: &[Run],
    target: Option<f64>,
) -> Pair {
    let stats = |runs: &[Run]| {
        let mut times: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
        times.sort_by(|x, y| x.total_cmp(y));
        let median = if times.len() % 2 == 1 {
            times[times.len() / 2]
        } else {
            (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
        };
        (median, times[0], times[times.len() - 1])
    };
    let (om, omin, omax) = stats(ours);
    let (bm, bmin, bmax) = stats(base);
    let peak = ours.iter().map(|r| r.peak_kib).max().unwrap_or(0) as f64 / 1024.0;
    let peak_all = ours.iter().map(|r| r.peak_with_children_kib).max().unwrap_or(0) as f64 / 1024.0;
    Pair {
        command: command.into(),
        size: c.label.into(),
        shape: c.shape.into(),
        database_mib: round(db_mib),
        ours_median_s: round(om),
        ours_min_s: round(omin),
        ours_max_s: round(omax),
        baseline_median_s: round(bm),
        baseline_min_s: round(bmin),
        baseline_max_s: round(bmax),
        ratio: round(om / bm.max(1e-9)),
        target,
        ours_peak_mib: round(peak),
        ours_peak_with_children_mib: round(peak_all),
        ours_s_per_mib: round(om / db_mib.max(1e-9)),
        ours_ok: ours.iter().all(|r| r.ok),
        baseline_ok: base.iter().all(|r| r.ok),
        ours_runs_s: ours.iter().map(|r| round(r.seconds)).collect(),
        baseline_runs_s: base.iter().map(|r| round(r.seconds)).collect(),
        note: None,
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} runs each, interleaved after one unmeasured pair; median (min-max) seconds; baseline: the runbook's commands (sqlite3 {})\n",
        report.runs, report.sqlite_cli
    );
    let _ = writeln!(
        out,
        "| command | size | shape | db MiB | ours s | baseline s | ratio | target | peak MiB | with children | ours s/MiB |"
    );
    let _ = writeln!(
        out,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for p in &report.pairs {
        let failed = if p.ours_ok { "" } else { " (ours failed)" };
        let target = match p.target {
            Some(t) if p.ratio <= t => format!("≤ {t} met"),
            Some(t) => format!("≤ {t} MISSED"),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {}{failed} | {} | {} | {:.1} | {:.3} ({:.3}-{:.3}) | {:.3} ({:.3}-{:.3}) | {:.2} | {target} | {:.1} | {:.1} | {:.4} |",
            p.command,
            p.size,
            p.shape,
            p.database_mib,
            p.ours_median_s,
            p.ours_min_s,
            p.ours_max_s,
            p.baseline_median_s,
            p.baseline_min_s,
            p.baseline_max_s,
            p.ratio,
            p.ours_peak_mib,
            p.ours_peak_with_children_mib,
            p.ours_s_per_mib
        );
    }
    for p in report.pairs.iter().filter(|p| p.note.is_some()) {
        let _ = write!(
            out,
            "\n{} ({} {}): {}\n",
            p.command,
            p.size,
            p.shape,
            p.note.as_deref().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_with_units() {
        let sizes = super::parse_sizes("1MiB, 64MiB,1GiB").unwrap();
        assert_eq!(sizes, [("1MiB", 1 << 20), ("64MiB", 64 << 20), ("1GiB", 1 << 30)]);
        assert!(super::parse_sizes("12MB").is_err());
    }
}
