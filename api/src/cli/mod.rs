//! The `carshare` command line.

pub mod demo;

use crate::config::{
    runner_settings, BookingSettings, ConfigError, DatabaseSettings, Environment, LogFormat,
    Settings, StreamSettings,
};
use crate::startup::{Application, Workers};
use crate::telemetry;
use anyhow::Context;
use carshare_commands::bookings::{BookingService, ExpirySweeper};
use carshare_commands::SystemClock;
use carshare_event_store::{CommitSignal, MIGRATOR};
use carshare_projections::rebuild::{self, RebuildSettings};
use carshare_projections::{ProgressBoard, RunnerSettings};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Car-sharing platform backend.
#[derive(Debug, Parser)]
#[command(name = "carshare", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve the API with the projection workers.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Run the projection workers only (no HTTP): Kafka consumers when `KAFKA_BROKERS` is
    /// set (scale out by starting more), else readers of the Postgres stream.
    Project,
    /// Publish the event stream to Kafka (needs `KAFKA_BROKERS`). One instance is active at a
    /// time; others stand by and take over when it dies.
    Relay,
    /// Rebuild a projection from the event log beside the live tables, then swap it in.
    Rebuild {
        /// The projection (e.g. `vehicles`).
        projection: String,
        /// Events per committed chunk.
        #[arg(long, default_value_t = 5_000)]
        chunk_size: i64,
    },
    /// Show each projection's position, lag and dead letters.
    Projections,
    /// Finance audits from the event log alone.
    Audit {
        /// What to audit.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a booking's timeline from the event log alone (support): its events and its car's
    /// reservation, in order, as JSON lines.
    Timeline {
        /// The booking's id.
        booking_id: uuid::Uuid,
    },
    /// Administration.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Demo data.
    Demo {
        /// What to do.
        #[command(subcommand)]
        command: DemoCommand,
    },
}

/// Audits.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every settlement in the period from the event log and compare it with the
    /// statements, the payments and the read tables; exits non-zero on any discrepancy.
    Settlements {
        /// Settlements issued at or after (RFC 3339).
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Settlements issued before (RFC 3339).
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Only this host.
        #[arg(long)]
        host: Option<uuid::Uuid>,
    },
}

/// Administration commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account (admins cannot register through the API).
    Create {
        /// E-mail address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Korean mobile number.
        #[arg(long)]
        phone: String,
        /// Password; read from `CARSHARE_ADMIN_PASSWORD` when omitted, generated (and
        /// printed once) when neither is given.
        #[arg(long, env = "CARSHARE_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

/// Demo data commands.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Create demo accounts and a few hundred vehicles around Seoul and Busan (idempotent).
    Seed,
}

/// Parses the command line and runs it.
pub async fn main() -> ExitCode {
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("carshare: .env could not be read: {e}");
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(config) = e.downcast_ref::<ConfigError>() {
                eprintln!("carshare: configuration error: {config}");
                return ExitCode::from(2);
            }
            tracing::error!(error = format!("{e:#}"), "carshare failed");
            eprintln!("carshare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn log_setup() {
    let format = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("pretty") => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    telemetry::init(format, &filter);
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_format, &settings.log_filter);
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Migrate => {
            let db = DatabaseSettings::from_env()?;
            log_setup();
            let pool = db.pool()?;
            MIGRATOR.run(&pool).await.context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Project => {
            let db = DatabaseSettings::from_env()?;
            log_setup();
            let pool = db.pool()?;
            MIGRATOR.run(&pool).await.context("applying migrations")?;
            let stream = StreamSettings::from_env()?;
            let shutdown = CancellationToken::new();
            let workers = Workers {
                pool: &pool,
                stream: &stream,
                runner: runner_settings(&Environment)?,
                board: &ProgressBoard::new(stream.source),
                signal: &CommitSignal::default(),
                shutdown: &shutdown,
            }
            .spawn_projections();
            // Expiring unanswered requests runs beside the projections it reads.
            let booking = BookingSettings::from_env()?;
            let service = Arc::new(BookingService::new(
                pool.clone(),
                CommitSignal::default(),
                Arc::new(SystemClock),
                booking.policy(),
            ));
            let mut workers = workers;
            workers.push(tokio::spawn(
                ExpirySweeper::new(pool.clone(), service, booking.expiry_interval)
                    .run(shutdown.child_token()),
            ));
            tracing::info!(source = ?stream.source, projections = ?stream.projections, "projection workers running");
            shutdown_signal().await;
            shutdown.cancel();
            for w in workers {
                let _ = w.await;
            }
            Ok(())
        }
        Command::Relay => {
            let db = DatabaseSettings::from_env()?;
            let stream = StreamSettings::from_env()?;
            if stream.kafka.is_none() {
                return Err(ConfigError::Missing("KAFKA_BROKERS").into());
            }
            log_setup();
            let pool = db.pool()?;
            MIGRATOR.run(&pool).await.context("applying migrations")?;
            let shutdown = CancellationToken::new();
            let relay = Workers {
                pool: &pool,
                stream: &stream,
                runner: RunnerSettings::default(),
                board: &ProgressBoard::default(),
                signal: &CommitSignal::default(),
                shutdown: &shutdown,
            }
            .spawn_relay();
            shutdown_signal().await;
            shutdown.cancel();
            if let Some(relay) = relay {
                let _ = relay.await;
            }
            Ok(())
        }
        Command::Rebuild {
            projection,
            chunk_size,
        } => {
            let db = DatabaseSettings::from_env()?;
            log_setup();
            let pool = db.pool()?;
            let target = carshare_projections::by_name(&projection).with_context(|| {
                let names: Vec<&str> = carshare_projections::all()
                    .iter()
                    .map(|p| p.name())
                    .collect();
                format!(
                    "unknown projection `{projection}` (known: {})",
                    names.join(", ")
                )
            })?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} rebuilding {msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(projection.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            let report = rebuild::rebuild(
                &pool,
                target.as_ref(),
                RebuildSettings { chunk_size },
                |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                },
            )
            .await?;
            bar.finish_and_clear();
            let rate = report.events as f64 / report.replay.as_secs_f64().max(1e-9);
            eprintln!(
                "rebuilt `{projection}`: {} events in {:.2}s (replay {:.2}s = {:.0} events/s, indexes {:.2}s), {} dead-lettered, now at {}",
                report.events,
                report.total.as_secs_f64(),
                report.replay.as_secs_f64(),
                rate,
                report.indexing.as_secs_f64(),
                report.dead_letters,
                report.cursor
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Settlements { from, to, host },
        } => {
            let db = DatabaseSettings::from_env()?;
            let pool = db.pool()?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message("replaying payment and settlement events");
            let report = carshare_commands::audit::audit_settlements(
                &pool,
                carshare_commands::audit::AuditScope {
                    from,
                    to,
                    host_id: host,
                },
                |n| bar.set_message(format!("{n} events replayed")),
            )
            .await?;
            bar.finish_and_clear();
            print_out(&serde_json::to_string_pretty(&report)?);
            if report.discrepancies.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} discrepancies in {} settlements",
                    report.discrepancies.len(),
                    report.settlements_checked
                )
            }
        }
        Command::Timeline { booking_id } => {
            let db = DatabaseSettings::from_env()?;
            let pool = db.pool()?;
            let reader = carshare_event_store::StreamReader::new(pool);
            let entries = carshare_commands::bookings::timeline(&reader, booking_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no booking {booking_id} in the event log"))?;
            for entry in entries {
                print_out(&serde_json::to_string(&entry)?);
            }
            Ok(())
        }
        Command::Projections => {
            let db = DatabaseSettings::from_env()?;
            let pool = db.pool()?;
            let names: Vec<&str> = carshare_projections::all()
                .iter()
                .map(|p| p.name())
                .collect();
            let stream = StreamSettings::from_env()?;
            let statuses =
                carshare_projections::status::statuses(&pool, &names, stream.source).await?;
            let relay = match &stream.kafka {
                Some(kafka) => {
                    Some(carshare_event_store::relay::status(&pool, &kafka.topic_prefix).await?)
                }
                None => None,
            };
            print_out(&serde_json::to_string_pretty(&serde_json::json!({
                "projections": statuses,
                "relay": relay,
            }))?);
            Ok(())
        }
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    name,
                    phone,
                    password,
                },
        } => {
            let db = DatabaseSettings::from_env()?;
            log_setup();
            let pool = db.pool()?;
            MIGRATOR.run(&pool).await.context("applying migrations")?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(random_password);
            let accounts = carshare_commands::accounts::AccountService::new(
                pool,
                std::sync::Arc::new(carshare_commands::SystemClock),
                chrono::Duration::days(14),
            );
            let user = accounts
                .create_admin(carshare_commands::accounts::NewAccount {
                    email,
                    password: password.clone(),
                    name,
                    phone,
                    role: carshare_domain::Role::Admin,
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            print_out(&serde_json::to_string_pretty(&serde_json::json!({
                "id": user.id,
                "email": user.email,
                "role": user.role,
                "password": if generated { Some(password) } else { None },
            }))?);
            Ok(())
        }
        Command::Demo {
            command: DemoCommand::Seed,
        } => {
            let db = DatabaseSettings::from_env()?;
            log_setup();
            let pool = db.pool()?;
            MIGRATOR.run(&pool).await.context("applying migrations")?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} seeding demo vehicles [{bar:40}] {pos}/{len}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let accounts = demo::seed(pool, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await?;
            bar.finish_and_clear();
            let mut lines =
                vec!["demo accounts (password for all: ".to_string() + demo::DEMO_PASSWORD + ")"];
            for (email, role) in accounts {
                lines.push(format!("  {role:<6} {email}"));
            }
            print_out(&lines.join("\n"));
            Ok(())
        }
    }
}

fn random_password() -> String {
    use base64::Engine;
    let bytes: [u8; 18] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The command's answer goes to standard output (logs go elsewhere), so it can be piped.
#[allow(clippy::print_stdout)]
fn print_out(text: &str) {
    println!("{text}");
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
