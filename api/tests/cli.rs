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

#[test]
fn serve_stops_its_workers_then_its_server_on_sigterm() {
    let db = Db::create();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log_path = std::env::temp_dir().join(format!("carshare-sigterm-{}.log", db.name));
    let log = std::fs::File::create(&log_path).expect("the log file");
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_carshare"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis)
        .env("REDIS_KEY_PREFIX", format!("{}:", db.name))
        .env("JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("RUST_LOG", "info")
        .env(
            "STORAGE_DIR",
            std::env::temp_dir().join("carshare-sigterm-uploads"),
        )
        .stdout(log)
        .spawn()
        .expect("serve starts");
    // Listening, and listening for signals.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("carshare API listening")
    {
        if started.elapsed() > std::time::Duration::from_secs(60)
            || child.try_wait().unwrap().is_some()
        {
            let _ = child.kill();
            panic!(
                "serve did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let signalled = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if signalled.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "serve did not stop within 20 s of SIGTERM: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log_path).expect("the log");
    let _ = std::fs::remove_file(&log_path);
    assert!(status.success(), "exit {status:?}: {log}");
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in the log: {log}"))
    };
    // The workers stop (each after its batch) while the HTTP threads' runtimes, which opened
    // some of the pool's connections, are still up; then the server.
    assert!(at("SIGTERM received") < at("projection worker stopped"));
    assert!(at("projection worker stopped") < at("background workers stopped"));
    assert!(
        !log.contains("being shutdown"),
        "a worker used a connection of a runtime already gone: {log}"
    );
}
