//! Building and running the service: `Application::build` connects, migrates, starts the
//! projection workers and binds the port (0 picks a free one, as the tests do);
//! `run_until_stopped` serves until a signal arrives, then stops the workers.

use crate::auth::{Authenticator, RedisRevocations, TokenKeys};
use crate::config::Settings;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{path_config, JsonLimit};
use crate::middleware::{observe, security};
use crate::openapi::{ApiDoc, OpenApiJson};
use crate::redis_client::RedisHandle;
use crate::routes;
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware::from_fn, web, App, HttpServer};
use anyhow::Context;
use carshare_commands::external::kakao::{KakaoGeocoder, KakaoSettings};
use carshare_commands::geocoding::Geocoder;
use carshare_commands::vehicles::VehicleService;
use carshare_commands::SystemClock;
use carshare_event_store::{CommitSignal, MIGRATOR};
use carshare_projections::{ProgressBoard, ProjectionRunner, RunnerSettings};
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_actix_web::{scope, AppExt};

/// A built, bound, not yet running service.
pub struct Application {
    port: u16,
    server: Server,
    pool: PgPool,
    workers: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

/// The routes and the OpenAPI document they describe.
pub fn routes() -> (
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<BoxBody>,
            Error = actix_web::Error,
            InitError = (),
        >,
    >,
    utoipa::openapi::OpenApi,
) {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::health::configure)
        .service(
            scope("/v1")
                .configure(crate::openapi::configure)
                .configure(routes::vehicles::configure)
                .configure(routes::admin::configure),
        )
        .split_for_parts()
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::REQ007))
}

/// Starts one worker per projection, woken by this process's commits.
pub fn spawn_projection_workers(
    pool: &PgPool,
    settings: RunnerSettings,
    board: &ProgressBoard,
    signal: &CommitSignal,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    carshare_projections::all()
        .into_iter()
        .map(|projection| {
            let runner = ProjectionRunner::new(pool.clone(), projection, settings, board.clone())
                .woken_by(signal.subscribe());
            tokio::spawn(runner.run(shutdown.child_token()))
        })
        .collect()
}

impl Application {
    /// Connects to Postgres, applies migrations, and builds the service.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let pool = settings
            .database()
            .pool()
            .context("DATABASE_URL could not be used")?;
        MIGRATOR.run(&pool).await.context(
            "applying database migrations (is Postgres running and DATABASE_URL right?)",
        )?;
        Application::build_with_pool(settings, pool).await
    }

    /// Builds the service over an existing, migrated pool.
    pub async fn build_with_pool(settings: Settings, pool: PgPool) -> anyhow::Result<Application> {
        let redis = Arc::new(
            RedisHandle::new(
                settings.redis_url(),
                settings.redis_key_prefix.clone(),
                settings.redis_timeout,
            )
            .context("REDIS_URL could not be used")?,
        );
        let geocoder: Option<Arc<dyn Geocoder>> = match &settings.kakao {
            None => None,
            Some(kakao) => Some(Arc::new(
                KakaoGeocoder::new(KakaoSettings::new(
                    kakao.base_url.clone(),
                    kakao.rest_api_key.clone(),
                ))
                .context("building the Kakao client")?,
            )),
        };
        let signal = CommitSignal::default();
        let board = ProgressBoard::default();
        let shutdown = CancellationToken::new();
        let workers = if settings.run_projections {
            spawn_projection_workers(
                &pool,
                RunnerSettings {
                    batch_size: settings.projection_batch_size,
                    poll_interval: settings.projection_poll_interval,
                },
                &board,
                &signal,
                &shutdown,
            )
        } else {
            Vec::new()
        };
        let state = AppState {
            pool: pool.clone(),
            redis: redis.clone(),
            vehicles: Arc::new(VehicleService::new(
                pool.clone(),
                signal,
                geocoder,
                Arc::new(SystemClock),
            )),
            progress: board,
            read_your_writes_timeout: settings.read_your_writes_timeout,
            settings: Arc::new(settings.clone()),
        };
        let authenticator = Authenticator {
            keys: TokenKeys::new(&settings.jwt_secret, settings.access_token_ttl),
            revocations: Arc::new(RedisRevocations::new(redis)),
        };
        let doc = serde_json::to_string(&routes().1).context("serialising the OpenAPI document")?;
        let doc = OpenApiJson(Arc::new(doc));

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(state);
        let authenticator = web::Data::new(authenticator);
        let doc = web::Data::new(doc);
        let limit = web::Data::new(JsonLimit(settings.max_json_body_bytes));
        let server = HttpServer::new(move || {
            let (app, _) = routes();
            app.app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(doc.clone())
                .app_data(limit.clone())
                .app_data(path_config())
                .default_service(web::to(not_found))
                .wrap(from_fn(observe::observe))
                .wrap(security::headers())
        })
        .workers(settings.http_workers)
        // Responses leave at once: with Nagle's algorithm a response written in two segments
        // waits for the client's delayed ACK (~40 ms).
        .tcp_nodelay(true)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        tracing::info!(
            port,
            projections = settings.run_projections,
            "carshare API listening"
        );
        Ok(Application {
            port,
            server,
            pool,
            workers,
            shutdown,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A handle that stops the HTTP server gracefully.
    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGINT/SIGTERM, or the server handle), then stops the workers.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        result
    }
}
