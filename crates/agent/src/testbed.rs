//! The test bed: a corpus of realistic files, and a ransomware simulator
//! with real encryption (AES-256-CTR keystream from `openssl enc`), to run
//! the real agent against.
//!
//! **It touches only folders it created itself.** [`Testbed::create`] makes
//! a folder under the system's temporary directory holding a marker file
//! with a random token; every destructive function first calls
//! [`Testbed::open`], which refuses any folder that is not under the
//! temporary directory, is a symbolic link, or lacks the marker.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The marker file's name.
pub const MARKER: &str = ".rxvault-testbed";
const MARKER_TEXT: &str = "rxvault testbed v1: this folder and everything in it is disposable\n";

/// Errors of the test bed.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The folder is not one the test bed created.
    #[error(
        "refusing {0}: not a test bed folder (no marker, not under the temporary directory, or a symlink)"
    )]
    NotATestbed(PathBuf),
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `openssl` failed.
    #[error("openssl enc: {0}")]
    Openssl(String),
    /// Unknown strain name.
    #[error("unknown strain {0:?} (one of: {list})", list = Strain::ALL.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))]
    UnknownStrain(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TestbedError + '_ {
    move |source| TestbedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A test bed folder: `root/MARKER`, `root/corpus/...`.
#[derive(Debug, Clone)]
pub struct Testbed {
    root: PathBuf,
}

impl Testbed {
    /// Creates a new test bed folder under `parent` (which must itself be
    /// under the temporary directory).
    pub fn create(parent: &Path) -> Result<Self, TestbedError> {
        let parent = parent.canonicalize().map_err(io(parent))?;
        if !under_tmp(&parent) {
            return Err(TestbedError::NotATestbed(parent));
        }
        let root = parent.join(format!("testbed-{}-{}", std::process::id(), nonce()));
        std::fs::create_dir(&root).map_err(io(&root))?;
        std::fs::write(root.join(MARKER), MARKER_TEXT).map_err(io(&root))?;
        std::fs::create_dir(root.join("corpus")).map_err(io(&root))?;
        Ok(Testbed { root })
    }

    /// Opens an existing test bed, refusing anything else.
    pub fn open(root: &Path) -> Result<Self, TestbedError> {
        let refuse = || TestbedError::NotATestbed(root.to_path_buf());
        let meta = std::fs::symlink_metadata(root).map_err(|_| refuse())?;
        if !meta.is_dir() {
            return Err(refuse());
        }
        let canon = root.canonicalize().map_err(|_| refuse())?;
        let tmp = std::env::temp_dir()
            .canonicalize()
            .unwrap_or_else(|_| std::env::temp_dir());
        if !under_tmp(&canon) || canon == tmp {
            return Err(refuse());
        }
        match std::fs::read_to_string(canon.join(MARKER)) {
            Ok(t) if t == MARKER_TEXT => Ok(Testbed { root: canon }),
            _ => Err(refuse()),
        }
    }

    /// The test bed's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The corpus folder (what the agent watches).
    pub fn corpus(&self) -> PathBuf {
        self.root.join("corpus")
    }

    /// Writes `files` realistic files in nested folders of the corpus;
    /// returns their paths.
    pub fn generate(&self, files: usize, seed: u64) -> Result<Vec<PathBuf>, TestbedError> {
        let mut rng = Rng(seed | 1);
        let corpus = self.corpus();
        let folders = ["Rx", "Claims", "Scans", "Labels", "Reports"];
        let subs = ["2025", "2026", "archive"];
        let mut out = Vec::with_capacity(files);
        for i in 0..files {
            let dir = corpus
                .join(folders[i % folders.len()])
                .join(subs[(i / folders.len()) % subs.len()]);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let kind = rng.below(7);
            let size = 2048 + (rng.below(60) * rng.below(60) * 40) as usize; // 2 KiB … ~140 KiB, skewed small
            let (ext, bytes) = match kind {
                0 => ("pdf", pdf(&mut rng, size)),
                1 => ("docx", zip(&mut rng, size, "word/document.xml")),
                2 => ("xlsx", zip(&mut rng, size, "xl/worksheets/sheet1.xml")),
                3 => ("jpg", jpeg(&mut rng, size)),
                4 => ("png", png(&mut rng, size)),
                5 => ("csv", csv(&mut rng, size)),
                _ => ("txt", text(&mut rng, size)),
            };
            let path = dir.join(format!("doc-{i:05}.{ext}"));
            std::fs::write(&path, bytes).map_err(io(&path))?;
            out.push(path);
        }
        Ok(out)
    }

    /// The corpus's regular files (canaries included), sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![self.corpus()];
        while let Some(d) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                match e.file_type() {
                    Ok(t) if t.is_dir() => todo.push(e.path()),
                    Ok(t) if t.is_file() => out.push(e.path()),
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }
}

fn under_tmp(p: &Path) -> bool {
    let tmp = std::env::temp_dir()
        .canonicalize()
        .unwrap_or_else(|_| std::env::temp_dir());
    p.starts_with(&tmp)
}

fn nonce() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

/// xorshift64*: the corpus's content generator (not for keys).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const WORDS: &[&str] = &[
    "patient",
    "prescription",
    "refill",
    "metformin",
    "lisinopril",
    "atorvastatin",
    "500mg",
    "tablet",
    "daily",
    "twice",
    "insurance",
    "claim",
    "denied",
    "approved",
    "copay",
    "pharmacy",
    "shipment",
    "tracking",
    "label",
    "the",
    "of",
    "and",
    "to",
    "for",
    "with",
    "dose",
    "allergy",
    "penicillin",
];

fn words(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    let mut col = 0;
    while out.len() < n {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        col += w.len() + 1;
        if col > 72 {
            out.push(b'\n');
            col = 0;
        } else {
            out.push(b' ');
        }
    }
    out.truncate(n);
    out
}

fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    words(rng, n)
}

fn csv(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = b"rx_number,drug,quantity,days_supply,filled_on\n".to_vec();
    while out.len() < n {
        let line = format!(
            "RX{:07},{},{},{},2026-{:02}-{:02}\n",
            rng.below(10_000_000),
            WORDS[rng.below(8) as usize + 3],
            rng.below(180) + 1,
            [30, 60, 90][rng.below(3) as usize],
            rng.below(12) + 1,
            rng.below(28) + 1
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(n);
    out
}

fn pdf(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out =
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            .to_vec();
    out.extend(b"4 0 obj\n<< /Length 0 >>\nstream\nBT /F1 12 Tf 72 720 Td (");
    let body = n.saturating_sub(out.len() + 40);
    // Half text, half a compressed-looking image stream, as real PDFs are.
    out.extend(words(rng, body / 2));
    out.extend(b") Tj ET\nendstream\nendobj\n5 0 obj\nstream\n");
    out.extend(rng.bytes(body - body / 2));
    out.extend(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    out
}

/// A real ZIP container (one stored entry of XML), as office files are.
fn zip(rng: &mut Rng, n: usize, name: &str) -> Vec<u8> {
    let mut xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><document><body><p>".to_vec();
    xml.extend(words(rng, n.saturating_sub(120)));
    xml.extend(b"</p></body></document>");
    let mut z = Vec::with_capacity(n + 200);
    z.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00");
    z.extend_from_slice(&[0; 4]);
    z.extend_from_slice(&(xml.len() as u32).to_le_bytes());
    z.extend_from_slice(&(xml.len() as u32).to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name.as_bytes());
    z.extend_from_slice(&xml);
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0; 18]);
    z
}

fn jpeg(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00".to_vec();
    out.extend(b"\xff\xdb\x00\x43\x00");
    out.extend((0..64u8).map(|i| i / 4 + 2));
    out.extend(b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00");
    out.extend(rng.bytes(n.saturating_sub(out.len() + 2)));
    out.extend(b"\xff\xd9");
    out
}

fn png(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00\x5c\x72\xa8\x66".to_vec();
    let body = n.saturating_sub(out.len() + 24);
    out.extend(&(body as u32).to_be_bytes());
    out.extend(b"IDAT");
    out.extend(rng.bytes(body));
    out.extend(&[0; 4]);
    out.extend(b"\x00\x00\x00\x00IEND\xae\x42\x60\x82");
    out
}

/// A ransomware behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strain {
    /// Overwrite each file in place with its ciphertext.
    InPlace,
    /// Write `NAME.enc` with the ciphertext, then delete the original.
    CopyDelete,
    /// Rename each file to `NAME.locked` without changing it.
    RenameOnly,
    /// Encrypt every other 16 bytes, in place (LockFile).
    Intermittent,
    /// Encrypt only the first 4 KiB, in place (LockBit 2.0 and others).
    HeaderOnly,
    /// In place, one file every two seconds.
    Slow,
    /// One short-lived child process per file (in place).
    ManyProcesses,
    /// Drop the same ransom note in every folder.
    Notes,
    /// In place, written through a shared memory map (by a `python3`
    /// child: the `mmap` module), not `write(2)`.
    Mmap,
}

impl Strain {
    /// Every strain.
    pub const ALL: [Strain; 9] = [
        Strain::InPlace,
        Strain::CopyDelete,
        Strain::RenameOnly,
        Strain::Intermittent,
        Strain::HeaderOnly,
        Strain::Slow,
        Strain::ManyProcesses,
        Strain::Notes,
        Strain::Mmap,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strain::InPlace => "in-place",
            Strain::CopyDelete => "copy-delete",
            Strain::RenameOnly => "rename-only",
            Strain::Intermittent => "intermittent",
            Strain::HeaderOnly => "header-only",
            Strain::Slow => "slow",
            Strain::ManyProcesses => "many-processes",
            Strain::Notes => "notes",
            Strain::Mmap => "mmap",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, TestbedError> {
        Strain::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| TestbedError::UnknownStrain(s.to_string()))
    }
}

/// The ransom note every folder gets.
pub const NOTE: &str = "YOUR FILES ARE ENCRYPTED.\nAll your documents, photos and databases were encrypted with AES-256.\nTo recover them, send 0.5 BTC to the address below and email your ID.\nDo not rename or modify the files. Do not use recovery tools.\nID: 7f3a-99c1-testbed\n";

/// A real AES-256-CTR keystream of `len` bytes from `openssl enc` (random
/// key and IV, never kept): XOR with it is AES-CTR encryption.
pub fn keystream(len: usize) -> Result<Vec<u8>, TestbedError> {
    let hex = |n: usize| {
        let mut b = vec![0u8; n];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            let _ = f.read_exact(&mut b);
        }
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-aes-256-ctr",
            "-nosalt",
            "-K",
            &hex(32),
            "-iv",
            &hex(16),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TestbedError::Openssl(e.to_string()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len());
            if stdin.write_all(&zeros[..n]).is_err() {
                break;
            }
            left -= n;
        }
    });
    let out = child
        .wait_with_output()
        .map_err(|e| TestbedError::Openssl(e.to_string()))?;
    let _ = writer.join();
    if !out.status.success() || out.stdout.len() != len {
        return Err(TestbedError::Openssl(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(out.stdout)
}

/// Options of a simulation run.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The strain.
    pub strain: Strain,
    /// Only this file (a worker of [`Strain::ManyProcesses`]).
    pub only: Option<PathBuf>,
    /// The program to run one worker (`rxvault agent simulate`) for
    /// [`Strain::ManyProcesses`]: argv before `--file PATH`.
    pub worker: Vec<String>,
}

/// Runs a strain over the test bed's corpus (files in directory order, as
/// ransomware walks them). Returns the number of files it finished.
pub fn simulate(bed: &Testbed, sim: &Simulation) -> Result<usize, TestbedError> {
    let corpus = bed.corpus();
    let files = match &sim.only {
        Some(f) => {
            let canon = f.canonicalize().map_err(io(f))?;
            if !canon.starts_with(&corpus) {
                return Err(TestbedError::NotATestbed(canon));
            }
            vec![canon]
        }
        None => walk_unsorted(&corpus),
    };
    let mut done = 0;
    match sim.strain {
        Strain::Notes => {
            let mut dirs: Vec<PathBuf> = files
                .iter()
                .filter_map(|f| f.parent().map(Path::to_path_buf))
                .collect();
            dirs.dedup();
            dirs.sort();
            dirs.dedup();
            for d in dirs {
                let p = d.join("HOW_TO_RECOVER_FILES.txt");
                std::fs::write(&p, NOTE).map_err(io(&p))?;
                done += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Strain::ManyProcesses if sim.only.is_none() => {
            for f in files {
                let status = Command::new(&sim.worker[0])
                    .args(&sim.worker[1..])
                    .arg("--file")
                    .arg(&f)
                    .status()
                    .map_err(io(&f))?;
                if status.success() {
                    done += 1;
                }
            }
        }
        strain => {
            for f in files {
                let Ok(plain) = std::fs::read(&f) else {
                    continue;
                };
                let ks = keystream(plain.len().max(1))?;
                let xor = |range: std::ops::Range<usize>, data: &mut [u8]| {
                    for i in range {
                        data[i] ^= ks[i];
                    }
                };
                let mut data = plain;
                let n = data.len();
                match strain {
                    Strain::InPlace | Strain::Slow | Strain::ManyProcesses => {
                        xor(0..n, &mut data);
                        overwrite(&f, &data)?;
                    }
                    Strain::Mmap => {
                        xor(0..n, &mut data);
                        write_through_mmap(&f, &data)?;
                    }
                    Strain::Intermittent => {
                        for start in (0..n).step_by(32) {
                            xor(start..(start + 16).min(n), &mut data);
                        }
                        overwrite(&f, &data)?;
                    }
                    Strain::HeaderOnly => {
                        xor(0..n.min(4096), &mut data);
                        overwrite(&f, &data)?;
                    }
                    Strain::CopyDelete => {
                        xor(0..n, &mut data);
                        let mut name = f.clone().into_os_string();
                        name.push(".enc");
                        std::fs::write(&name, &data).map_err(io(&f))?;
                        std::fs::remove_file(&f).map_err(io(&f))?;
                    }
                    Strain::RenameOnly => {
                        let mut name = f.clone().into_os_string();
                        name.push(".locked");
                        std::fs::rename(&f, &name).map_err(io(&f))?;
                    }
                    Strain::Notes => unreachable!("handled above"),
                }
                done += 1;
                if strain == Strain::Slow {
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
    }
    Ok(done)
}

/// Overwrites a file through a shared mapping (`python3`'s `mmap`: the
/// workspace forbids `unsafe`, which mapping memory in Rust needs).
fn write_through_mmap(path: &Path, data: &[u8]) -> Result<(), TestbedError> {
    if data.is_empty() {
        return Ok(());
    }
    let script = "import mmap,sys\nf=open(sys.argv[1],'r+b')\nm=mmap.mmap(f.fileno(),0)\nm[:]=sys.stdin.buffer.read()\nm.flush()\nm.close()\nf.close()\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(io(path))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(data).map_err(io(path))?;
    drop(stdin);
    let status = child.wait().map_err(io(path))?;
    if !status.success() {
        return Err(TestbedError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("python3 mmap writer: {status}")),
        });
    }
    Ok(())
}

/// Overwrites a file's content in place (same inode, as most strains do).
fn overwrite(path: &Path, data: &[u8]) -> Result<(), TestbedError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(data).map_err(io(path))?;
    Ok(())
}

/// Files under `dir` in directory (readdir) order, depth first.
fn walk_unsorted(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut subdirs = Vec::new();
    for e in entries.filter_map(Result::ok) {
        match e.file_type() {
            Ok(t) if t.is_dir() => subdirs.push(e.path()),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
    for d in subdirs {
        out.extend(walk_unsorted(&d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Fingerprint;
    use crate::magic;

    #[test]
    fn refuses_folders_it_did_not_create() {
        assert!(Testbed::open(Path::new("/")).is_err());
        assert!(Testbed::open(Path::new("/home")).is_err());
        assert!(Testbed::open(&std::env::temp_dir()).is_err());
        let plain = tempfile::tempdir().unwrap();
        assert!(matches!(
            Testbed::open(plain.path()),
            Err(TestbedError::NotATestbed(_))
        ));
        // A symlink to a real test bed is refused too.
        let bed = Testbed::create(plain.path()).unwrap();
        let link = plain.path().join("link");
        std::os::unix::fs::symlink(bed.root(), &link).unwrap();
        assert!(Testbed::open(&link).is_err());
        assert!(Testbed::open(bed.root()).is_ok());
        // And a test bed outside the temporary directory cannot be made.
        assert!(Testbed::create(Path::new("/")).is_err());
    }

    #[test]
    fn the_corpus_has_correct_magic_and_low_entropy_documents() {
        let dir = tempfile::tempdir().unwrap();
        let bed = Testbed::create(dir.path()).unwrap();
        let files = bed.generate(140, 7).unwrap();
        assert_eq!(files.len(), 140);
        let mut kinds = std::collections::BTreeSet::new();
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            let ext = magic::extension(f).unwrap();
            kinds.insert(ext.clone());
            assert!(bytes.len() >= 2048);
            if let Some(m) = magic::expected(&ext) {
                assert_eq!(magic::sniff(&bytes), Some(m), "{}", f.display());
            }
        }
        assert_eq!(kinds.len(), 7, "{kinds:?}");
        assert!(
            files
                .iter()
                .any(|f| f.parent().unwrap() != files[0].parent().unwrap())
        );
    }

    #[test]
    fn the_keystream_is_real_aes_ctr_output() {
        let ks = keystream(64 * 1024).unwrap();
        assert_eq!(ks.len(), 65536);
        let fp = Fingerprint::of_bytes(&ks);
        assert!(fp.mostly_uniform() && fp.head_uniform);
        assert_ne!(keystream(4096).unwrap(), keystream(4096).unwrap());
    }

    #[test]
    fn strains_damage_the_corpus_as_described() {
        let dir = tempfile::tempdir().unwrap();
        let bed = Testbed::create(dir.path()).unwrap();
        let files = bed.generate(12, 3).unwrap();
        let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let sim = |strain| Simulation {
            strain,
            only: Some(files[0].clone()),
            worker: vec![],
        };
        assert_eq!(simulate(&bed, &sim(Strain::Intermittent)).unwrap(), 1);
        let after = std::fs::read(&files[0]).unwrap();
        assert_eq!(after.len(), before[0].len());
        assert_ne!(after[..16], before[0][..16]);
        assert_eq!(after[16..32], before[0][16..32]);
        assert!(
            simulate(
                &bed,
                &Simulation {
                    strain: Strain::InPlace,
                    only: Some("/etc/passwd".into()),
                    worker: vec![]
                }
            )
            .is_err()
        );
        assert_eq!(
            simulate(
                &bed,
                &Simulation {
                    strain: Strain::RenameOnly,
                    only: None,
                    worker: vec![]
                }
            )
            .unwrap(),
            12
        );
        assert!(
            bed.files()
                .iter()
                .all(|f| f.to_string_lossy().ends_with(".locked"))
        );
    }
}
