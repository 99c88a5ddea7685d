//! Canary files: decoys the agent places so that they sort first and last
//! in a folder (ransomware walking a folder in name order meets one before
//! any real file, in reverse order too), and keeps: a canary that is gone
//! or changed at start-up is put back.
//!
//! They look like the pharmacy's documents (a ZIP container named like an
//! office file) and hold no patient data.

use std::path::{Path, PathBuf};

/// The canary file names: `!` sorts before letters and digits, `~` after.
pub const NAMES: [&str; 2] = ["!!!_Accounts_2026.docx", "~~~_Archive_2026.xlsx"];

/// The canary's content: a small, valid-looking ZIP (one stored entry).
pub fn content() -> Vec<u8> {
    let body = b"rxvault canary: this file is watched; do not modify.\n";
    let name = b"word/document.txt";
    let mut z = Vec::new();
    z.extend_from_slice(b"PK\x03\x04\x0a\x00\x00\x00\x00\x00\x00\x00\x21\x00");
    z.extend_from_slice(&[0; 4]); // crc (not checked by anyone)
    z.extend_from_slice(&(body.len() as u32).to_le_bytes());
    z.extend_from_slice(&(body.len() as u32).to_le_bytes());
    z.extend_from_slice(&(name.len() as u16).to_le_bytes());
    z.extend_from_slice(&0u16.to_le_bytes());
    z.extend_from_slice(name);
    z.extend_from_slice(body);
    z.extend_from_slice(b"PK\x05\x06");
    z.extend_from_slice(&[0; 18]);
    z
}

/// The folders that get canaries: each watched folder and its subfolders
/// down to `depth` (hidden folders skipped).
pub fn folders(watch: &[PathBuf], depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in watch {
        collect(root, depth, &mut out);
    }
    out
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    subs.sort();
    for s in subs {
        collect(&s, depth - 1, out);
    }
}

/// Places (or restores) the canaries in `folders`; returns their paths.
/// A folder that cannot take one is skipped with the error returned beside.
pub fn place(folders: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, std::io::Error)>) {
    let body = content();
    let mut placed = Vec::new();
    let mut failed = Vec::new();
    for dir in folders {
        for name in NAMES {
            let path = dir.join(name);
            let current = std::fs::read(&path).ok();
            if current.as_deref() == Some(body.as_slice()) {
                placed.push(path);
                continue;
            }
            match std::fs::write(&path, &body) {
                Ok(()) => placed.push(path),
                Err(e) => failed.push((path, e)),
            }
        }
    }
    (placed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_sort_first_and_last_and_are_restored() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["Aspirin.pdf", "zeta.txt", "0001.csv", "~notes.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::create_dir(dir.path().join("sub/deeper")).unwrap();
        let folders = folders(&[dir.path().to_path_buf()], 1);
        assert_eq!(folders.len(), 2);
        let (placed, failed) = place(&folders);
        assert!(failed.is_empty());
        assert_eq!(placed.len(), 4);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.first().unwrap(), NAMES[0]);
        assert_eq!(names.last().unwrap(), NAMES[1]);
        std::fs::write(&placed[0], b"changed").unwrap();
        std::fs::remove_file(&placed[1]).unwrap();
        let (again, _) = place(&folders);
        assert_eq!(again, placed);
        assert_eq!(std::fs::read(&placed[0]).unwrap(), content());
        assert_eq!(
            crate::magic::sniff(&content()),
            Some(crate::magic::Magic::Zip)
        );
    }
}
