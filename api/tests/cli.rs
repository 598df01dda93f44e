//! The `carshare` binary refuses to start with a missing or malformed setting, naming it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

fn carshare(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carshare"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    // Run where no .env file can supply values.
    cmd.current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_names_a_missing_setting() {
    let (code, stderr) = carshare(
        &["serve"],
        &[
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
}

#[test]
fn serve_names_a_malformed_setting() {
    let (code, stderr) = carshare(
        &["serve"],
        &[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("PORT", "eighty"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("PORT is invalid"), "{stderr}");
}

#[test]
fn migrate_needs_only_the_database() {
    let (code, stderr) = carshare(&["migrate"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
}

#[test]
fn rebuild_refuses_an_unknown_projection() {
    let (code, stderr) = carshare(
        &["rebuild", "nope"],
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x")],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown projection `nope`"), "{stderr}");
}
