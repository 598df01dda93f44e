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

/// A fresh database on the test server, dropped at the end.
struct Db {
    name: String,
    server: String,
}

impl Db {
    fn create() -> Db {
        let server = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("carshare_test_{}", uuid::Uuid::new_v4().simple());
        let out = Command::new("psql")
            .arg(format!("{server}/postgres"))
            .args(["-qc", &format!("CREATE DATABASE {name}")])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Db { name, server }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(self.url())
            .args(["-Atqc", sql])
            .output()
            .expect("psql runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(format!("{}/postgres", self.server))
            .args([
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

#[test]
fn admin_create_makes_an_admin_and_prints_a_generated_password_once() {
    let db = Db::create();
    let url = db.url();
    let (code, stderr) = carshare(
        &[
            "admin",
            "create",
            "--email",
            "Ops@Example.com",
            "--name",
            "운영자",
            "--phone",
            "010-5555-0000",
        ],
        &[("DATABASE_URL", url.as_str())],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        db.query("SELECT role || ' ' || email FROM users"),
        "admin ops@example.com"
    );
    assert!(db
        .query("SELECT password_hash FROM users")
        .starts_with("$argon2id$"));
    // The same address again is refused.
    let (code, stderr) = carshare(
        &[
            "admin",
            "create",
            "--email",
            "ops@example.com",
            "--name",
            "x",
            "--phone",
            "010-5555-0001",
            "--password",
            "another-password",
        ],
        &[("DATABASE_URL", url.as_str())],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("already registered"), "{stderr}");
    let (code, stderr) = carshare(
        &[
            "admin",
            "create",
            "--email",
            "new@example.com",
            "--name",
            "x",
            "--phone",
            "010-5555-0002",
            "--password",
            "short",
        ],
        &[("DATABASE_URL", url.as_str())],
    );
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(db.query("SELECT count(*) FROM users"), "1");
}
