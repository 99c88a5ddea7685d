//! What the end-to-end tests share: enrolling a person through the
//! command line the way people are enrolled (issue 9, item 2).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `args` (already carrying the vault's `--data` and key) and returns
/// its standard output, failing the test if it failed.
fn ok(command: &dyn Fn(&[&str]) -> Command, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command(&args).output().unwrap();
    assert!(
        out.status.success(),
        "rxvault {args:?} failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A person enrolled through the command line the way people are: the
/// local operator adds them (a one-time enrolment code to a file) and, in
/// single-operator mode switched on for the moment, approves their role;
/// the person redeems the code with `password` and enrols TOTP, confirming
/// with a code typed on standard input (the previous time step's, so a
/// login right after is no replay). `command` makes an `rxvault` command,
/// `vault` adds the vault's `--data` and key to arguments, `dir` is where
/// the code, password and secret files go. Returns the file with the TOTP
/// secret.
pub fn enrol(
    command: &dyn Fn(&[&str]) -> Command,
    vault: &dyn Fn(&[&str]) -> Vec<String>,
    dir: &Path,
    name: &str,
    role: &str,
    password: &str,
) -> PathBuf {
    let code = dir.join(format!("{name}.code"));
    let pw = dir.join(format!("{name}.pw"));
    let totp = dir.join(format!("{name}.totp"));
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    ok(command, &vault(&["user", "single-operator", "on"]));
    let added = ok(
        command,
        &vault(&[
            "user",
            "add",
            name,
            "--role",
            role,
            "--code-out",
            code.to_str().unwrap(),
        ]),
    );
    assert!(!added.contains(std::fs::read_to_string(&code).unwrap().trim()));
    for line in ok(command, &vault(&["user", "requests", "--json"])).lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if r["target"] == name {
            ok(
                command,
                &vault(&["user", "approve", r["id"].as_str().unwrap()]),
            );
        }
    }
    ok(command, &vault(&["user", "single-operator", "off"]));
    let args = vault(&[
        "user",
        "redeem",
        name,
        "--code-file",
        code.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--totp-secret-out",
        totp.to_str().unwrap(),
        "--recovery-codes-out",
        dir.join(format!("{name}.recovery")).to_str().unwrap(),
    ]);
    let mut child = command(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let secret = loop {
        if let Ok(text) = std::fs::read_to_string(&totp)
            && text.ends_with('\n')
        {
            break rxvault_crypto::TotpSecret::from_base32(text.trim()).unwrap();
        }
        assert!(child.try_wait().unwrap().is_none(), "redeem ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let now = rxvault_model::Clock::now(&rxvault_model::SystemClock).unix_timestamp();
    use std::io::Write;
    writeln!(
        child.stdin.take().unwrap(),
        "{}",
        secret.code_at(now - 30).as_str()
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "redeem: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    totp
}
