//! The HTTP API of the car-sharing platform, its start-up and the `carshare` command line.

pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
mod error_map;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod realtime;
pub mod redis_client;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod upload;

pub use config::Settings;
pub use startup::Application;
