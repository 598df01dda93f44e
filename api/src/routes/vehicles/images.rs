//! `POST /v1/vehicles/{id}/images`: upload images of a vehicle.

use super::dto::VehicleResponse;
use super::{state_of, READ_MODELS};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorResponse};
use crate::routes::{command_metadata, settle_command};
use crate::state::AppState;
use actix_web::{post, web, HttpRequest, HttpResponse};
use carshare_domain::vehicle::{VehicleAction, VehicleCommand};
use uuid::Uuid;

/// Adds images to the vehicle (its host or an admin; `multipart/form-data` with 1 to 10
/// `files`, each at most 10 MB, JPEG/PNG/HEIC/WebP by content; at most 10 images per vehicle).
/// The images are stored (local directory or S3), then their keys are attached.
#[utoipa::path(
    tag = "vehicles",
    params(("id" = Uuid, Path, description = "Vehicle id")),
    request_body(content_type = "multipart/form-data", description = "`files`"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = VehicleResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 413, description = "A file over 10 MB", body = ErrorResponse),
        (status = 415, description = "Not an image", body = ErrorResponse),
        (status = 422, description = "Invalid form, or too many images", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/vehicles/{id}/images")]
pub async fn upload_images(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    form: actix_multipart::Multipart,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let upload = crate::upload::read_images(form, &[]).await?;
    // Refuse before storing anything: the same decision the command will make.
    let vehicle = state.vehicles.load(id).await?;
    let placeholders: Vec<String> = (0..upload.files.len())
        .map(|i| format!("vehicles/{id}/pending-{i}.jpg"))
        .collect();
    vehicle.decide(VehicleCommand {
        actor: user.actor(),
        at: chrono::Utc::now(),
        action: VehicleAction::AttachImages(placeholders),
    })?;
    let keys =
        crate::upload::store_all(&state.images, &format!("vehicles/{id}"), upload.files).await?;
    let meta = command_metadata(&req, &user, "AttachVehicleImages")?;
    match state
        .vehicles
        .attach_images(user.actor(), id, keys.clone(), &meta)
        .await
    {
        Ok(done) => {
            let body = VehicleResponse::from(state_of(&done.aggregate)?);
            let mut response = HttpResponse::Ok();
            settle_command(&state, READ_MODELS, done.cursor, &mut response).await;
            Ok(response.json(body))
        }
        Err(e) => {
            crate::upload::remove_all(&state.images, &keys).await;
            Err(e.into())
        }
    }
}
