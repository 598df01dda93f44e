//! `carshare`: serve, migrate, project, rebuild.

/// mimalloc: under load the API spent 14% of its CPU in glibc's malloc and free (many small,
/// short-lived allocations spread over the HTTP and runtime threads); see docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    carshare_api::cli::main().await
}
