//! Building and running the service: `Application::build` connects, migrates, starts the
//! projection workers and binds the port (0 picks a free one, as the tests do);
//! `run_until_stopped` serves until a signal arrives, then stops the workers.

use crate::auth::{Authenticator, RedisRevocations, TokenKeys};
use crate::config::{Settings, StreamSettings};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{path_config, JsonLimit};
use crate::middleware::rate_limit::RateLimiter;
use crate::middleware::{idempotency, observe, rate_limit, security};
use crate::openapi::{ApiDoc, OpenApiJson};
use crate::realtime::{Hub, RedisUpdates};
use crate::redis_client::RedisHandle;
use crate::routes;
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{middleware::from_fn, web, App, HttpServer};
use anyhow::Context;
use carshare_commands::accounts::AccountService;
use carshare_commands::bookings::{BookingService, ExpirySweeper};
use carshare_commands::external::fcm::{FcmClient, PushSender};
use carshare_commands::external::kakao::{KakaoGeocoder, KakaoSettings};
use carshare_commands::external::toss::{PaymentGateway, TossClient, TossSettings};
use carshare_commands::geocoding::Geocoder;
use carshare_commands::notifications::{
    AnnouncementService, DispatchSettings, Dispatcher, InboxPublisher,
};
use carshare_commands::payments::{PaymentService, RefundSweeper};
use carshare_commands::vehicles::VehicleService;
use carshare_commands::SystemClock;
use carshare_event_store::relay::Relay;
use carshare_event_store::{CommitSignal, SharedReads, MIGRATOR};
use carshare_projections::{
    KafkaProjectionWorker, ProgressBoard, ProjectionRunner, RunnerSettings,
    Source as ProjectionSource,
};
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
    signals: StopSignals,
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
                .configure(routes::auth::configure)
                .configure(routes::users::configure)
                .configure(routes::vehicles::configure)
                .configure(routes::bookings::configure)
                .configure(routes::payments::configure)
                .configure(routes::reviews::configure)
                .configure(routes::notifications::configure)
                .configure(routes::admin::configure),
        )
        .split_for_parts()
}

/// CORS: only the configured origins may call from a browser, with credentials.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::ACCEPT_LANGUAGE,
            actix_web::http::header::HeaderName::from_static("idempotency-key"),
            actix_web::http::header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            "x-request-id",
            "x-stream-position",
            "x-next-cursor",
            "x-read-model-lag",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "retry-after",
            "location",
        ])
        .supports_credentials()
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The documented paths and their methods: an unmatched request whose path is known but whose
/// method is not gets 405 with `Allow`, anything else 404.
#[derive(Clone, Default)]
pub struct KnownPaths(Vec<(Vec<String>, Vec<&'static str>)>);

impl KnownPaths {
    fn of(doc: &utoipa::openapi::OpenApi) -> KnownPaths {
        KnownPaths(
            doc.paths
                .paths
                .iter()
                .map(|(path, item)| {
                    let segments = path.split('/').map(str::to_string).collect();
                    let methods = [
                        ("GET", item.get.is_some()),
                        ("POST", item.post.is_some()),
                        ("PUT", item.put.is_some()),
                        ("DELETE", item.delete.is_some()),
                        ("PATCH", item.patch.is_some()),
                    ]
                    .into_iter()
                    .filter_map(|(m, present)| present.then_some(m))
                    .collect();
                    (segments, methods)
                })
                .collect(),
        )
    }

    /// The methods documented for `path`, if it is a documented path.
    fn allowed(&self, path: &str) -> Option<String> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut methods: Vec<&str> = self
            .0
            .iter()
            .filter(|(template, _)| {
                template.len() == parts.len()
                    && template.iter().zip(&parts).all(|(t, p)| {
                        (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p
                    })
            })
            .flat_map(|(_, m)| m.iter().copied())
            .collect();
        methods.sort_unstable();
        methods.dedup();
        (!methods.is_empty()).then(|| methods.join(", "))
    }
}

async fn not_found(
    req: actix_web::HttpRequest,
    known: web::Data<KnownPaths>,
) -> Result<actix_web::HttpResponse, ApiError> {
    match known.allowed(req.path()) {
        Some(allow) => Err(ApiError {
            allow: Some(allow),
            ..ApiError::new(ErrorCode::REQ008)
        }),
        None => Err(ApiError::new(ErrorCode::REQ007)),
    }
}

/// What background work a process runs beside (or instead of) the HTTP server.
pub struct Workers<'a> {
    /// Postgres.
    pub pool: &'a PgPool,
    /// Kafka and the projection source.
    pub stream: &'a StreamSettings,
    /// Postgres-stream runner tuning.
    pub runner: RunnerSettings,
    /// Where in-process projection progress is published.
    pub board: &'a ProgressBoard,
    /// Commits of this process (wakes the stream readers at once).
    pub signal: &'a CommitSignal,
    /// Stops them all.
    pub shutdown: &'a CancellationToken,
}

impl Workers<'_> {
    /// Starts one worker per projection this process runs (`PROJECTIONS`), reading the
    /// Postgres stream or consuming Kafka as configured.
    pub fn spawn_projections(&self) -> Vec<JoinHandle<()>> {
        let reads = Arc::new(SharedReads::default());
        carshare_projections::all()
            .into_iter()
            .filter(|projection| self.stream.runs(projection.name()))
            .map(
                |projection| match (&self.stream.source, &self.stream.kafka) {
                    (ProjectionSource::Kafka, Some(kafka)) => {
                        let worker = KafkaProjectionWorker::new(
                            self.pool.clone(),
                            projection,
                            kafka.clone(),
                            self.stream.consumer,
                            self.board.clone(),
                        );
                        tokio::spawn(worker.run(self.shutdown.child_token()))
                    }
                    _ => {
                        let runner = ProjectionRunner::new(
                            self.pool.clone(),
                            projection,
                            self.runner,
                            self.board.clone(),
                        )
                        .woken_by(self.signal.subscribe())
                        .sharing_reads(reads.clone());
                        tokio::spawn(runner.run(self.shutdown.child_token()))
                    }
                },
            )
            .collect()
    }

    /// Starts the relay, if Kafka is configured.
    pub fn spawn_relay(&self) -> Option<JoinHandle<()>> {
        let kafka = self.stream.kafka.clone()?;
        let relay = Relay::new(self.pool.clone(), kafka, self.stream.relay)
            .woken_by(self.signal.subscribe());
        Some(tokio::spawn(relay.run(self.shutdown.child_token())))
    }
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
                KakaoGeocoder::new(KakaoSettings {
                    timeout: kakao.timeout,
                    ..KakaoSettings::new(kakao.base_url.clone(), kakao.rest_api_key.clone())
                })
                .context("building the Kakao client")?,
            )),
        };
        let signal = CommitSignal::default();
        let board = ProgressBoard::new(settings.stream.source);
        let shutdown = CancellationToken::new();
        let background = Workers {
            pool: &pool,
            stream: &settings.stream,
            runner: RunnerSettings {
                batch_size: settings.projection_batch_size,
                poll_interval: settings.projection_poll_interval,
                linger: settings.projection_linger,
                max_linger: settings.projection_linger_max,
            },
            board: &board,
            signal: &signal,
            shutdown: &shutdown,
        };
        let mut workers = if settings.run_projections {
            background.spawn_projections()
        } else {
            Vec::new()
        };
        if settings.stream.run_relay {
            workers.extend(background.spawn_relay());
        }
        let tokens = TokenKeys::new(&settings.jwt_secret, settings.access_token_ttl);
        let revocations = Arc::new(RedisRevocations::new(
            redis.clone(),
            settings.access_token_ttl,
        ));
        let clock: Arc<dyn carshare_commands::Clock> = Arc::new(SystemClock);
        let accounts = Arc::new(AccountService::new(
            pool.clone(),
            clock.clone(),
            chrono::Duration::from_std(settings.refresh_token_ttl)
                .unwrap_or(chrono::Duration::days(14)),
        ));
        {
            let pool = pool.clone();
            let stop = shutdown.child_token();
            workers.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = every.tick() => {
                            match idempotency::purge_expired(&pool).await {
                                Ok(n) if n > 0 => tracing::info!(purged = n, "expired idempotency keys purged"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
                            }
                            match carshare_commands::notifications::purge_finished_deliveries(
                                &pool,
                                chrono::Duration::days(carshare_commands::notifications::DELIVERY_RETENTION_DAYS),
                            ).await {
                                Ok(n) if n > 0 => tracing::info!(purged = n, "finished notification deliveries purged"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "purging notification deliveries failed"),
                            }
                        }
                    }
                }
            }));
        }
        // One real-time publisher (one queue, one publishing task) for booking updates and
        // the dispatcher's inbox messages.
        let updates = Arc::new(RedisUpdates::new(redis.clone()));
        let bookings = Arc::new(
            BookingService::new(
                pool.clone(),
                signal.clone(),
                clock.clone(),
                settings.booking.policy(),
            )
            .with_commit_writers(settings.booking.commit_writers)
            .with_updates(updates.clone()),
        );
        let images = settings
            .storage
            .open()
            .context("opening image storage (STORAGE_BACKEND, STORAGE_DIR, S3_BUCKET)")?;
        let gateway: Option<Arc<dyn PaymentGateway>> = match &settings.toss {
            None => None,
            Some(toss) => Some(Arc::new(
                TossClient::new(TossSettings {
                    timeout: toss.timeout,
                    ..TossSettings::new(toss.base_url.clone(), toss.rest_api_key.clone())
                })
                .context("building the Toss Payments client")?,
            )),
        };
        let payments = Arc::new(PaymentService::new(
            pool.clone(),
            signal.clone(),
            gateway,
            clock.clone(),
        ));
        if settings.run_projections {
            let sweeper = RefundSweeper::new(
                pool.clone(),
                payments.clone(),
                settings.booking.expiry_interval,
            );
            workers.push(tokio::spawn(sweeper.run(shutdown.child_token())));
        }
        if settings.run_notifications {
            let push: Option<Arc<dyn PushSender>> = match &settings.fcm {
                None => None,
                Some(fcm) => Some(Arc::new(
                    FcmClient::new(fcm.clone()).context("building the FCM client")?,
                )),
            };
            let dispatcher = Dispatcher::new(
                pool.clone(),
                Some(updates.clone() as Arc<dyn InboxPublisher>),
                push,
                DispatchSettings {
                    interval: settings.notification_poll_interval,
                    ..DispatchSettings::default()
                },
            );
            workers.push(tokio::spawn(dispatcher.run(shutdown.child_token())));
        }
        let hub = Hub::default();
        workers.push(tokio::spawn(
            hub.clone().run(redis.clone(), shutdown.child_token()),
        ));
        if settings.run_projections {
            let sweeper = ExpirySweeper::new(
                pool.clone(),
                bookings.clone(),
                settings.booking.expiry_interval,
            );
            workers.push(tokio::spawn(sweeper.run(shutdown.child_token())));
        }
        let state = AppState {
            pool: pool.clone(),
            redis: redis.clone(),
            accounts,
            bookings,
            payments,
            announcements: Arc::new(AnnouncementService::new(
                pool.clone(),
                signal.clone(),
                clock.clone(),
            )),
            images,
            tokens: tokens.clone(),
            revocations: revocations.clone(),
            vehicles: Arc::new(VehicleService::new(pool.clone(), signal, geocoder, clock)),
            progress: board,
            read_your_writes_timeout: settings.read_your_writes_timeout,
            settings: Arc::new(settings.clone()),
        };
        let authenticator = Authenticator {
            keys: tokens,
            revocations: revocations.clone(),
        };
        // Modifiers of the derived document run before the routes add their paths: the common
        // error answers are added to the complete document, once, here.
        let mut described = routes().1;
        utoipa::Modify::modify(&crate::openapi::CommonErrors, &mut described);
        let known = web::Data::new(KnownPaths::of(&described));
        let doc = serde_json::to_string(&described).context("serialising the OpenAPI document")?;
        let doc = OpenApiJson(Arc::new(doc));

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(state);
        let authenticator = web::Data::new(authenticator);
        let doc = web::Data::new(doc);
        let limit = web::Data::new(JsonLimit(settings.max_json_body_bytes));
        let hub = web::Data::new(hub);
        let limiter = web::Data::new(RateLimiter {
            redis: redis.clone(),
            ip_per_minute: settings.rate_limit_ip_per_minute,
            user_per_hour: settings.rate_limit_user_per_hour,
            auth_per_minute: settings.rate_limit_auth_per_minute,
            window_seconds: settings.rate_limit_window_seconds,
            trusted_proxies: settings.trusted_proxies.clone(),
        });
        let cors_origins = settings.cors_allowed_origins.clone();
        let server = HttpServer::new(move || {
            let (app, _) = routes();
            app.app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(doc.clone())
                .app_data(limit.clone())
                .app_data(hub.clone())
                .app_data(known.clone())
                .app_data(limiter.clone())
                .app_data(path_config())
                .configure(crate::console::configure)
                .default_service(web::to(not_found))
                .wrap(from_fn(crate::auth::authenticate))
                .wrap(from_fn(idempotency::guard))
                .wrap(from_fn(rate_limit::limit))
                .wrap(cors(&cors_origins))
                .wrap(from_fn(observe::observe))
                .wrap(security::headers())
        })
        .workers(settings.http_workers)
        // Responses leave at once: with Nagle's algorithm a response written in two segments
        // waits for the client's delayed ACK (~40 ms).
        .tcp_nodelay(true)
        .shutdown_timeout(10)
        // Stop signals are handled by `run_until_stopped`, which stops the workers first.
        .disable_signals()
        .listen(listener)?
        .run();
        // Listened to from here on: a stop signal once the port is bound is a graceful stop.
        let signals = StopSignals::listen();
        tracing::info!(
            port,
            projections = settings.run_projections,
            running = ?settings.stream.projections,
            source = ?settings.stream.source,
            relay = settings.stream.run_relay && settings.stream.kafka.is_some(),
            "carshare API listening"
        );
        Ok(Application {
            port,
            server,
            pool,
            workers,
            shutdown,
            signals,
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
    ///
    /// On a signal the background workers stop first (each finishes its batch), then the HTTP
    /// server (in-flight requests finish, up to 10 s). The other order would leave the workers
    /// a pool whose connections were opened on the HTTP threads' runtimes, gone by then: a
    /// notification batch claimed just before would stay `sending` (and be marked failed five
    /// minutes later) instead of going out.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        let stopped = tokio::select! {
            result = &mut server => Some(result),
            () = self.signals.received() => None,
        };
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        match stopped {
            Some(result) => result,
            None => {
                tracing::info!("background workers stopped; stopping the HTTP server");
                // The server's own future carries the stop out: poll both.
                let ((), result) = tokio::join!(handle.stop(true), server);
                result
            }
        }
    }
}

/// SIGINT and SIGTERM, listened to from [`StopSignals::listen`] on (a signal that cannot be
/// listened to is never received).
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves when either arrives.
    async fn received(mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = next(&mut self.interrupt) => tracing::info!("SIGINT received; stopping"),
                () = next(&mut self.terminate) => tracing::info!("SIGTERM received; stopping"),
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received; stopping");
            } else {
                std::future::pending::<()>().await;
            }
        }
    }
}
