//! `carshare`: serve, migrate, project, rebuild.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    carshare_api::cli::main().await
}
