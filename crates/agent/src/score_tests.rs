use super::*;
use crate::content::Fingerprint;
use rand::RngCore;

const A: (ActorKey, i32) = (ActorKey::Process(100), 100);
const B: (ActorKey, i32) = (ActorKey::Process(200), 200);

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

fn prose(n: usize, seed: usize) -> Vec<u8> {
    let words = [
        "patient",
        "refill",
        "the",
        "pharmacy",
        "dose",
        "tablet",
        "of",
        "daily",
        "and",
        "insurance",
        "claim",
        "10mg",
        "shipment",
        "label",
        "\n",
        "Rx",
        "metformin",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut i = seed.wrapping_add(7);
    while out.len() < n {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345) % 1_000_003;
        out.extend_from_slice(words[i % words.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

fn pdf(n: usize, seed: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.7\n".to_vec();
    v.extend(prose(n - 9, seed));
    v
}

/// Compressed-looking office file: ZIP header then uniform bytes.
fn docx(n: usize) -> Vec<u8> {
    let mut v = b"PK\x03\x04\x14\x00\x06\x00".to_vec();
    v.extend(random(n - 8));
    v
}

fn encrypt(plain: &[u8]) -> Vec<u8> {
    let key = random(plain.len());
    plain.iter().zip(key).map(|(p, k)| p ^ k).collect()
}

fn intermittent(plain: &[u8]) -> Vec<u8> {
    let key = random(plain.len());
    plain
        .iter()
        .zip(key)
        .enumerate()
        .map(|(i, (p, k))| if (i / 16) % 2 == 0 { p ^ k } else { *p })
        .collect()
}

fn header_only(plain: &[u8]) -> Vec<u8> {
    let mut out = plain.to_vec();
    let n = out.len().min(4096);
    let key = random(n);
    for (b, k) in out[..n].iter_mut().zip(key) {
        *b ^= k;
    }
    out
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn engine() -> Engine {
    Engine::new(Thresholds::default())
}

/// Files in /d/: (path, content) for a mix of types.
fn corpus(n: usize) -> Vec<(PathBuf, Vec<u8>)> {
    (0..n)
        .map(|i| match i % 3 {
            0 => (p(&format!("/d/f{i}.pdf")), pdf(30_000, i)),
            1 => (p(&format!("/d/f{i}.docx")), docx(20_000)),
            _ => (p(&format!("/d/f{i}.txt")), prose(12_000, i)),
        })
        .collect()
}

fn seed(e: &mut Engine, files: &[(PathBuf, Vec<u8>)]) {
    for (path, c) in files {
        e.remember(path.clone(), Fingerprint::of_bytes(c));
    }
}

/// Runs `damage` over the corpus in order as actor A and returns how many
/// files were damaged when the engine fired.
fn files_until_detection(
    files: &[(PathBuf, Vec<u8>)],
    mut damage: impl FnMut(&mut Engine, Millis, &PathBuf, &[u8]) -> Option<Detection>,
) -> Option<(usize, Detection)> {
    let mut e = engine();
    seed(&mut e, files);
    for (i, (path, c)) in files.iter().enumerate() {
        if let Some(d) = damage(&mut e, 1000 + i as u64 * 10, path, c) {
            return Some((i + 1, d));
        }
    }
    None
}

#[test]
fn in_place_encryption_is_stopped_within_three_files() {
    let files = corpus(30);
    let (n, d) = files_until_detection(&files, |e, t, path, c| {
        e.observe(
            t,
            Some(A),
            FileEvent::Written {
                path: path.clone(),
                after: Fingerprint::of_bytes(&encrypt(c)),
            },
        )
    })
    .expect("detected");
    assert!(n <= 3, "{n} files");
    assert_eq!(d.actor, Some(A.0));
    assert!(d.signals.contains_key(&Signal::EntropyRise));
}

#[test]
fn intermittent_encryption_is_stopped_within_three_files() {
    let files = corpus(30);
    let (n, d) = files_until_detection(&files, |e, t, path, c| {
        e.observe(
            t,
            Some(A),
            FileEvent::Written {
                path: path.clone(),
                after: Fingerprint::of_bytes(&intermittent(c)),
            },
        )
    })
    .expect("detected");
    assert!(n <= 3, "{n} files");
    assert!(d.signals.contains_key(&Signal::Intermittent), "{d:?}");
}

#[test]
fn header_only_encryption_is_stopped_within_three_files() {
    let files = corpus(30);
    let (n, d) = files_until_detection(&files, |e, t, path, c| {
        e.observe(
            t,
            Some(A),
            FileEvent::Written {
                path: path.clone(),
                after: Fingerprint::of_bytes(&header_only(c)),
            },
        )
    })
    .expect("detected");
    assert!(n <= 3, "{n} files");
    assert!(
        d.signals.contains_key(&Signal::HeadEncrypted)
            || d.signals.contains_key(&Signal::MagicLost),
        "{d:?}"
    );
}

#[test]
fn encrypted_copy_then_delete_is_stopped_within_three_files() {
    let files = corpus(30);
    let (n, d) = files_until_detection(&files, |e, t, path, c| {
        let copy = PathBuf::from(format!("{}.enc", path.display()));
        e.observe(
            t,
            Some(A),
            FileEvent::Read {
                path: path.clone(),
                fingerprint: Some(Fingerprint::of_bytes(c)),
            },
        )
        .or_else(|| {
            e.observe(
                t + 1,
                Some(A),
                FileEvent::Written {
                    path: copy,
                    after: Fingerprint::of_bytes(&encrypt(c)),
                },
            )
        })
        // The delete comes from inotify, without a pid.
        .or_else(|| e.observe(t + 2, None, FileEvent::Deleted { path: path.clone() }))
    })
    .expect("detected");
    assert!(n <= 3, "{n} files");
    assert_eq!(d.actor, Some(A.0));
    assert!(d.signals.contains_key(&Signal::ReadWriteDelete), "{d:?}");
}

#[test]
fn rename_only_is_stopped_at_the_third_rename() {
    let files = corpus(30);
    let (n, d) = files_until_detection(&files, |e, t, path, _| {
        e.observe(t, Some(A), FileEvent::Listed { dir: p("/d") });
        let to = PathBuf::from(format!("{}.lockbit", path.display()));
        e.observe(
            t + 1,
            None,
            FileEvent::Renamed {
                from: path.clone(),
                to,
            },
        )
    })
    .expect("detected");
    assert_eq!(n, 3);
    assert_eq!(d.actor, Some(A.0), "attributed through the folder listing");
    assert_eq!(d.signals.get(&Signal::RenameSuffix), Some(&3));
}

#[test]
fn ransom_notes_in_three_folders_fire() {
    let mut e = engine();
    let note = prose(900, 1);
    let fp = Fingerprint::of_bytes(&note);
    let mut fired = None;
    for (i, dir) in ["/d/a", "/d/b", "/d/c", "/d/e"].iter().enumerate() {
        fired = fired.or(e.observe(
            i as u64,
            Some(A),
            FileEvent::Written {
                path: p(&format!("{dir}/HOW_TO_DECRYPT.txt")),
                after: fp.clone(),
            },
        ));
    }
    let d = fired.expect("notes fire");
    assert_eq!(d.signals.get(&Signal::RansomNote), Some(&3));
}

#[test]
fn a_canary_is_decisive_even_without_a_process() {
    let mut e = engine();
    e.set_canaries([p("/d/!canary.docx")]);
    let d = e
        .observe(
            5,
            Some(B),
            FileEvent::Modified {
                path: p("/d/!canary.docx"),
            },
        )
        .expect("decisive");
    assert_eq!(d.actor, Some(B.0));
    let d = e
        .observe(
            9,
            None,
            FileEvent::Deleted {
                path: p("/d/!canary.docx"),
            },
        )
        .expect("decisive");
    assert!(d.signals.contains_key(&Signal::Canary));
    // Reading a canary is not touching it.
    assert!(
        e.observe(
            12,
            Some(A),
            FileEvent::Read {
                path: p("/d/!canary.docx"),
                fingerprint: None
            }
        )
        .is_none()
    );
}

#[test]
fn no_single_weak_signal_fires_however_often() {
    let mut e = engine();
    // Hundreds of new uniform files without a container header (git objects,
    // caches), dissimilar rewrites, deletes of read files, a deep traversal.
    for i in 0..500u64 {
        let path = p(&format!("/d/obj/{i:03}"));
        assert!(
            e.observe(
                i,
                Some(A),
                FileEvent::Written {
                    path: path.clone(),
                    after: Fingerprint::of_bytes(&random(8000))
                }
            )
            .is_none()
        );
        assert!(
            e.observe(
                i,
                Some(A),
                FileEvent::Listed {
                    dir: p(&format!("/d/{i}"))
                }
            )
            .is_none()
        );
        e.observe(
            i,
            Some(A),
            FileEvent::Read {
                path: path.clone(),
                fingerprint: None,
            },
        );
        assert!(e.observe(i, None, FileEvent::Deleted { path }).is_none());
    }
    assert!(e.score_of(A.0) <= Thresholds::default().threshold / 3);
}

#[test]
fn one_encrypted_file_alone_does_not_fire() {
    let mut e = engine();
    let c = pdf(40_000, 3);
    e.remember(p("/d/x.pdf"), Fingerprint::of_bytes(&c));
    assert!(
        e.observe(
            1,
            Some(A),
            FileEvent::Written {
                path: p("/d/x.pdf"),
                after: Fingerprint::of_bytes(&encrypt(&c))
            }
        )
        .is_none()
    );
    assert!(e.score_of(A.0) > 0);
}

#[test]
fn benign_work_does_not_fire() {
    let files = corpus(60);
    let mut e = engine();
    seed(&mut e, &files);
    let mut t = 0;
    for (path, c) in &files {
        t += 1;
        // Edit in place (keeps format), compress next to it (gzip magic),
        // copy, rsync-style temp file + rename.
        let mut edited = c.clone();
        edited[100..110].copy_from_slice(b"0123456789");
        let mut gz = b"\x1f\x8b\x08\x00".to_vec();
        gz.extend(random(c.len() / 2));
        let events = [
            FileEvent::Read {
                path: path.clone(),
                fingerprint: Some(Fingerprint::of_bytes(c)),
            },
            FileEvent::Written {
                path: path.clone(),
                after: Fingerprint::of_bytes(&edited),
            },
            FileEvent::Written {
                path: PathBuf::from(format!("{}.gz", path.display())),
                after: Fingerprint::of_bytes(&gz),
            },
            FileEvent::Written {
                path: p(&format!(
                    "/copy/{}",
                    path.file_name().unwrap().to_str().unwrap()
                )),
                after: Fingerprint::of_bytes(c),
            },
            FileEvent::Written {
                path: p("/d2/.tmp.Xy12"),
                after: Fingerprint::of_bytes(c),
            },
            FileEvent::Renamed {
                from: p("/d2/.tmp.Xy12"),
                to: p(&format!("/d2/{t}.txt")),
            },
            FileEvent::Renamed {
                from: path.clone(),
                to: PathBuf::from(format!("{}.bak", path.display())),
            },
        ];
        for ev in events {
            assert!(e.observe(t, Some(A), ev.clone()).is_none(), "{ev:?}");
        }
    }
}

#[test]
fn the_window_forgets_old_evidence() {
    let files = corpus(10);
    let mut e = engine();
    seed(&mut e, &files);
    let window = Thresholds::default().window_secs * 1000;
    for (i, (path, c)) in files.iter().enumerate() {
        let t = i as u64 * (window + 1);
        let d = e.observe(
            t,
            Some(A),
            FileEvent::Written {
                path: path.clone(),
                after: Fingerprint::of_bytes(&encrypt(c)),
            },
        );
        assert!(d.is_none(), "one file per window never adds up");
    }
}

#[test]
fn actors_are_scored_apart() {
    let files = corpus(4);
    let mut e = engine();
    seed(&mut e, &files);
    for (i, (path, c)) in files.iter().enumerate() {
        let who = if i % 2 == 0 { A } else { B };
        let after = Fingerprint::of_bytes(&encrypt(c));
        let d = e.observe(
            i as u64,
            Some(who),
            FileEvent::Written {
                path: path.clone(),
                after,
            },
        );
        assert!(d.is_none(), "two files each: {d:?}");
    }
    // Together they would have crossed it.
    assert!(e.score_of(A.0) + e.score_of(B.0) >= Thresholds::default().threshold);
}

#[test]
fn new_suffix_patterns() {
    assert_eq!(
        new_suffix(&p("/a/x.pdf"), &p("/a/x.pdf.locked")).as_deref(),
        Some("locked")
    );
    assert_eq!(
        new_suffix(&p("/a/x.pdf"), &p("/a/x.crypt")).as_deref(),
        Some("crypt")
    );
    assert_eq!(new_suffix(&p("/a/x.pdf"), &p("/a/x.pdf.bak")), None);
    assert_eq!(new_suffix(&p("/a/x.JPG"), &p("/a/x.jpg")), None);
    assert_eq!(new_suffix(&p("/a/.x.txt.Ab12"), &p("/a/x.txt")), None);
    assert_eq!(new_suffix(&p("/a/x.txt"), &p("/a/y.txt")), None);
}

proptest::proptest! {
    /// Whatever benign-looking or random sequence of events one actor sends
    /// without any strong signal, it never fires.
    #[test]
    fn weak_only_sequences_never_fire(ops in proptest::collection::vec((0u8..4, 0u16..300), 1..300)) {
        let mut e = engine();
        for (t, (op, n)) in ops.into_iter().enumerate() {
            let path = p(&format!("/d/{}/f{n}", n % 17));
            let ev = match op {
                0 => FileEvent::Read { path, fingerprint: None },
                1 => FileEvent::Listed { dir: p(&format!("/d/{n}")) },
                2 => FileEvent::Deleted { path },
                _ => FileEvent::Created { path },
            };
            proptest::prop_assert!(e.observe(t as u64, Some(A), ev).is_none());
        }
    }

    /// One file, whatever is written to it once, never fires alone.
    #[test]
    fn one_file_never_fires(kind in 0usize..4, len in 600usize..40_000) {
        let mut e = engine();
        let before = match kind { 0 => pdf(len.max(20), 1), 1 => docx(len.max(20)), _ => prose(len, 2) };
        e.remember(p("/d/x.pdf"), Fingerprint::of_bytes(&before));
        let after = match kind { 0 | 1 => encrypt(&before), 2 => intermittent(&before), _ => header_only(&before) };
        let d = e.observe(1, Some(A), FileEvent::Written { path: p("/d/x.pdf"), after: Fingerprint::of_bytes(&after) });
        proptest::prop_assert!(d.is_none());
    }
}

#[test]
fn an_empty_previous_version_is_a_new_file() {
    // git creates `tmp_obj_*` empty, then writes zlib into it: uniform
    // content after an empty file is not an entropy rise.
    let empty = Fingerprint::of_bytes(b"");
    let after = Fingerprint::of_bytes(&random(9000));
    let s = judge_write(&p("/d/.git/objects/03/tmp_obj_x"), Some(&empty), &after);
    assert_eq!(s, vec![Signal::HighEntropyWrite]);
}
