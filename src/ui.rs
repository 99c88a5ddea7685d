//! What the command line prints: logging setup, progress bars (or plain
//! progress lines when stderr is not a terminal), reports and charts.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rxvault_model::Patient;
use rxvault_vault::import::{ImportObserver, ImportReport, RecordError};
use rxvault_vault::keys::Progress;
use rxvault_vault::query::ChartView;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Set once a write to stdout found the reader gone (`rxvault … | head`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to stdout. A closed pipe ends the output quietly: later output is
/// dropped and the command finishes as usual (its audit entries and closing
/// checkpoint included) instead of panicking as `println!` does. Use the
/// [`outln!`](crate::outln) and [`out!`](crate::out) macros.
pub fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| {
        if newline {
            stdout.write_all(b"\n")?;
        }
        Ok(())
    });
    if let Err(e) = written {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing to stdout: {e}");
        }
    }
}

/// `println!` that ends quietly on a closed pipe ([`write_stdout`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::ui::write_stdout(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::ui::write_stdout(format_args!($($arg)*), true) };
}

/// `print!` that ends quietly on a closed pipe ([`write_stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::ui::write_stdout(format_args!($($arg)*), false) };
}

/// Log output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines (for a SIEM).
    Json,
}

/// Logs go to stderr; `RXVAULT_LOG` (an env-filter) overrides `-v`.
/// Nothing logged carries PHI: the libraries log counts, kinds and locations.
pub fn init_logging(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RXVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only for a person at a terminal, never in a log file or
    // a pipe to a collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A progress bar on a terminal; plain lines at most once a second otherwise.
pub struct Bar {
    bar: Option<ProgressBar>,
    name: String,
    done: u64,
    total: Option<u64>,
    last_line: Option<Instant>,
}

impl Bar {
    /// A bar for the current stderr.
    pub fn new() -> Self {
        Self {
            bar: None,
            name: String::new(),
            done: 0,
            total: None,
            last_line: None,
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn line(&mut self, force: bool) {
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if force || due {
            match self.total {
                Some(t) => eprintln!("{}: {}/{}", self.name, self.done, t),
                None => eprintln!("{}: {}", self.name, self.done),
            }
            self.last_line = Some(Instant::now());
        }
    }
}

impl Progress for Bar {
    fn phase(&mut self, name: &str, total: Option<u64>) {
        self.finish();
        self.name = name.to_string();
        self.done = 0;
        self.total = total;
        self.last_line = None;
        if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{msg:24} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner(),
            };
            bar.set_message(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(b) => b.inc(n),
            None => self.line(false),
        }
    }
}

/// Import progress: a byte bar over all input on a terminal; otherwise a
/// line per file and a `committed` line per second (and for the first
/// batch), which scripts and tests can follow.
pub struct ImportProgress {
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl ImportProgress {
    /// Progress over the given inputs.
    pub fn new(paths: &[PathBuf]) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let total: u64 = rxvault_fhir::read::expand(paths)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "importing [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            last_line: None,
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl ImportObserver for ImportProgress {
    fn file(&mut self, path: &Path, size: u64) {
        if self.bar.is_none() {
            eprintln!("reading {} ({size} bytes)", path.display());
        }
    }

    fn error(&mut self, error: &RecordError) {
        match &self.bar {
            Some(b) => b.println(format!("rejected: {error}")),
            None => eprintln!("rejected: {error}"),
        }
    }

    fn committed(&mut self, report: &ImportReport) {
        match &self.bar {
            Some(b) => {
                b.set_position(report.bytes);
                b.set_message(format!("{} records", report.stored_total()));
            }
            None => {
                let due = self
                    .last_line
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
                if due {
                    eprintln!(
                        "committed {} records in {} batches ({} rejected)",
                        report.stored_total() + report.derived_coverages,
                        report.batches,
                        report.errors
                    );
                    self.last_line = Some(Instant::now());
                }
            }
        }
    }
}

/// Prints an import report.
pub fn print_import(r: &ImportReport) {
    outln!("imported from {} files ({} bytes):", r.files, r.bytes);
    for (ty, n) in &r.stored {
        outln!("{n:>9}  {ty}");
    }
    if r.derived_coverages > 0 {
        outln!(
            "{:>9}  Coverage derived from claims (used only where no Coverage exists)",
            r.derived_coverages
        );
    }
    if r.deleted > 0 {
        outln!("{:>9}  deleted", r.deleted);
    }
    for (ty, n) in &r.skipped {
        outln!("{n:>9}  {ty} (not stored by rxvault; skipped)");
    }
    if r.errors > 0 {
        outln!(
            "{:>9}  rejected records (see messages above); everything else was imported",
            r.errors
        );
    }
}

/// One line per found patient.
pub fn patient_line(p: &Patient) -> String {
    let name = p.primary_name().map(|n| n.display()).unwrap_or_default();
    let place = p
        .addresses
        .first()
        .map(|a| {
            format!(
                "{}, {}",
                a.city.as_deref().unwrap_or(""),
                a.state.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    format!(
        "{}  {}  born {}  {}",
        p.id,
        name,
        p.birth_date.as_deref().unwrap_or("?"),
        place
    )
}

/// Prints a chart for a person to read.
pub fn print_chart(c: &ChartView) {
    let p = &c.patient;
    outln!("Patient {}", p.id);
    for n in &p.names {
        outln!(
            "  name      {} ({})",
            n.display(),
            n.use_.as_deref().unwrap_or("-")
        );
    }
    outln!("  born      {}", p.birth_date.as_deref().unwrap_or("?"));
    outln!("  gender    {}", p.gender.as_deref().unwrap_or("?"));
    if let Some(d) = &p.deceased {
        outln!("  deceased  {d:?}");
    }
    if !p.languages.is_empty() {
        outln!("  language  {}", p.languages.join(", "));
    }
    for a in &p.addresses {
        outln!(
            "  address   {}, {} {} {}",
            a.lines.join(", "),
            a.city.as_deref().unwrap_or(""),
            a.state.as_deref().unwrap_or(""),
            a.postal_code.as_deref().unwrap_or("")
        );
    }
    for t in &p.telecoms {
        outln!(
            "  {:<9} {}",
            t.system.as_deref().unwrap_or("contact"),
            t.value
        );
    }
    for c in &c.coverages {
        outln!(
            "  plan      {} {} member {} group {} ({})",
            c.payer.as_deref().unwrap_or("?"),
            c.plan_name.as_deref().unwrap_or(""),
            c.member_id.as_deref().unwrap_or("-"),
            c.group.as_deref().unwrap_or("-"),
            c.relationship.as_deref().unwrap_or("-")
        );
    }
    if !c.allergies.is_empty() {
        let list: Vec<&str> = c
            .allergies
            .iter()
            .filter_map(|a| a.substance.as_deref())
            .collect();
        outln!("  allergies {}", list.join(", "));
    }
    outln!("Medications ({}):", c.medications.len());
    for m in &c.medications {
        outln!(
            "  Rx {:<12} {:<50} {:<9} written {} last filled {} ({} fills)",
            m.rx_number,
            m.medication.text.as_deref().unwrap_or("?"),
            m.status,
            m.written
                .as_deref()
                .map(|d| &d[..d.len().min(10)])
                .unwrap_or("?"),
            m.last_filled
                .as_deref()
                .map(|d| &d[..d.len().min(10)])
                .unwrap_or("-"),
            m.fills
        );
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .with_context(|| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

/// This process's peak resident memory (Linux), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
