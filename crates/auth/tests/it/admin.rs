//! Administration: users, service accounts, API keys (scopes, allow-lists,
//! expiry, revocation), and the QR code of a TOTP enrolment.

use crate::common::*;
use rxvault_auth::cidr::Cidr;
use rxvault_auth::{Action, AuthConfig, Client, Error, Role, Scope};
use rxvault_crypto::Token;
use std::time::Duration;

#[test]
fn api_keys_honour_allow_lists_expiry_revocation_and_disabled_accounts() {
    each_backend(AuthConfig::default(), |fx| {
        let admin = fx.auth.key_holder();
        admin.create_service_account("pms-bridge").unwrap();
        let lan: Cidr = "10.20.0.0/16".parse().unwrap();
        let issued = admin
            .issue_api_key(
                "pms-bridge",
                &[Scope::PatientsRead, Scope::FillsRead],
                &[lan],
                Some(Duration::from_secs(90 * 24 * 3600)),
            )
            .unwrap();
        assert!(issued.key.expose().starts_with("rxk_"));
        let key = issued.key.clone();
        // Chart-reading scopes: refused until a second person approves.
        assert!(matches!(
            fx.auth.authenticate_api_key(&key, ip("10.20.3.4")),
            Err(Error::InvalidCredentials)
        ));
        assert!(admin.api_keys("pms-bridge").unwrap()[0].pending);
        approve_as_single_operator(&fx.auth, &issued.request.as_ref().unwrap().id);

        let p = fx.auth.authenticate_api_key(&key, ip("10.20.3.4")).unwrap();
        assert_eq!(
            p.scopes(),
            &[Scope::FillsRead, Scope::PatientsRead],
            "sorted by name"
        );
        assert!(fx.auth.authorize(&p, Action::PatientSearch).is_ok());
        assert!(fx.auth.authorize(&p, Action::PrescriptionRead).is_err());
        assert!(
            fx.auth
                .authenticate_api_key(&key, ip("::ffff:10.20.9.9"))
                .is_ok()
        );
        assert!(matches!(
            fx.auth.authenticate_api_key(&key, ip("10.21.0.1")),
            Err(Error::InvalidCredentials)
        ));
        let tampered = Token::from_presented(&format!("{}x", key.expose()));
        assert!(matches!(
            fx.auth.authenticate_api_key(&tampered, ip("10.20.3.4")),
            Err(Error::InvalidCredentials)
        ));

        let listed = admin.api_keys("pms-bridge").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].allowed_sources, vec![lan]);
        assert!(listed[0].last_used_at.is_some());
        assert!(!format!("{listed:?}").contains(key.expose()));

        // Expiry.
        fx.advance(90 * 24 * 3600);
        assert!(fx.auth.authenticate_api_key(&key, ip("10.20.3.4")).is_err());

        // Revocation and disabled accounts.
        let k2 = admin
            .issue_api_key("pms-bridge", &[Scope::SessionsRevoke], &[], None)
            .unwrap();
        assert!(
            fx.auth
                .authenticate_api_key(&k2.key, ip("192.0.2.1"))
                .is_ok()
        );
        admin.disable("pms-bridge").unwrap();
        assert!(
            fx.auth
                .authenticate_api_key(&k2.key, ip("192.0.2.1"))
                .is_err()
        );
        admin.enable("pms-bridge").unwrap();
        assert!(
            fx.auth
                .authenticate_api_key(&k2.key, ip("192.0.2.1"))
                .is_ok()
        );
        admin.revoke_api_key(&k2.id).unwrap();
        assert!(
            fx.auth
                .authenticate_api_key(&k2.key, ip("192.0.2.1"))
                .is_err()
        );
        assert!(matches!(
            admin.revoke_api_key(&k2.id),
            Err(Error::NotFound { .. })
        ));

        // Keys are for service accounts only; people get no keys.
        fx.user("pharm1", Role::Pharmacist);
        assert!(matches!(
            admin.issue_api_key("pharm1", &[Scope::PatientsRead], &[], None),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            admin.issue_api_key("pms-bridge", &[], &[], None),
            Err(Error::Invalid(_))
        ));
        for (file, bytes) in fx.files_bytes() {
            assert!(!contains(&bytes, key.expose().as_bytes()), "{file}");
        }
    });
}

#[test]
fn the_workstation_agent_revokes_a_host_with_a_scoped_key() {
    let fx = Fx::sqlite(AuthConfig::default());
    let u = fx.user("tech1", Role::Technician);
    let ws = rxvault_auth::HostId::new("ws-7").unwrap();
    fx.advance(30);
    let rxvault_auth::Login::SecondFactor(p) = fx
        .auth
        .login_password(
            "tech1",
            &u.password,
            &Client::at(here()).host(Some(ws.clone())),
        )
        .unwrap()
    else {
        panic!()
    };
    let s = fx.auth.verify_totp(p, &fx.code(&u)).unwrap();
    let admin = fx.auth.key_holder();
    admin.create_service_account("agent").unwrap();
    let key = admin
        .issue_api_key("agent", &[Scope::SessionsRevoke], &[], None)
        .unwrap();
    let agent = fx.auth.authenticate_api_key(&key.key, here()).unwrap();
    assert_eq!(
        fx.auth
            .revoke(&agent, &rxvault_auth::RevokeTarget::Host(ws.clone()))
            .unwrap(),
        1
    );
    assert!(fx.auth.authenticate(s.token(), here(), Some(&ws)).is_err());
}

#[test]
fn users_are_listed_with_their_factors_and_lock_state() {
    let fx = Fx::sqlite(AuthConfig::default());
    fx.user("pharm1", Role::Pharmacist);
    fx.user("ship1", Role::ShippingClerk);
    let admin = fx.auth.key_holder();
    admin.create_service_account("pms").unwrap();
    let users = admin.users().unwrap();
    let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, vec!["pharm1", "pms", "ship1"]);
    assert_eq!(users[0].role, Some(Role::Pharmacist));
    assert!(users[0].totp && !users[0].disabled && !users[0].locked);
    assert_eq!(users[1].role, None, "service account");
    assert!(matches!(admin.user("nobody"), Err(Error::NotFound { .. })));
}

#[test]
fn the_enrolment_qr_code_decodes_to_the_otpauth_uri() {
    if !tool("zbarimg", "zbar-tools") {
        return;
    }
    let fx = Fx::sqlite(AuthConfig::default());
    let enrolling = add_and_redeem(
        &fx.auth,
        "pharm1",
        Role::Pharmacist,
        &rxvault_crypto::Password::new("violet harbor lantern 42".into()),
    );
    let enrolment = fx.auth.start_totp_enrolment(&enrolling).unwrap();
    let qr = enrolment.qr_terminal().unwrap();
    // Draw the terminal rendering as a picture a camera would see on a
    // dark terminal: foreground (light) where there are block characters.
    let rows: Vec<Vec<char>> = qr.lines().map(|l| l.chars().collect()).collect();
    let width = rows.iter().map(Vec::len).max().unwrap();
    let scale = 4;
    let mut pixels = vec![vec![true; width]; rows.len() * 2]; // true = black
    for (y, row) in rows.iter().enumerate() {
        for (x, c) in row.iter().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            pixels[y * 2][x] = !top;
            pixels[y * 2 + 1][x] = !bottom;
        }
    }
    let mut pbm = format!("P1\n{} {}\n", width * scale, pixels.len() * scale);
    for row in &pixels {
        let line: String = row
            .iter()
            .flat_map(|b| std::iter::repeat_n(if *b { "1 " } else { "0 " }, scale))
            .collect();
        for _ in 0..scale {
            pbm.push_str(&line);
            pbm.push('\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.pbm");
    std::fs::write(&path, pbm).unwrap();
    let out = std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        enrolment.uri()
    );
}
