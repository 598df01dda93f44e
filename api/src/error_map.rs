//! The one place where application and domain errors become HTTP errors: exhaustive matches
//! from each variant to its code.

use crate::error::{ApiError, ErrorCode, FieldIssue};
use carshare_commands::vehicles::VehicleServiceError;
use carshare_commands::InfraError;
use carshare_domain::vehicle::{Problem, VehicleError};

impl From<InfraError> for ApiError {
    fn from(err: InfraError) -> ApiError {
        match err {
            InfraError::Conflict => ApiError::new(ErrorCode::SYS001),
            InfraError::Unavailable(cause) => {
                ApiError::unavailable(anyhow::Error::from_boxed(cause))
            }
            InfraError::Internal(cause) => ApiError::internal(anyhow::Error::from_boxed(cause)),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> ApiError {
        ApiError::from(InfraError::from(err))
    }
}

/// Korean and English explanations of a field problem, and its machine-readable reason.
pub fn describe(problem: &Problem) -> (&'static str, String, String) {
    match problem {
        Problem::Required => (
            "required",
            "필수 항목입니다.".into(),
            "This field is required.".into(),
        ),
        Problem::TooLong { max } => (
            "too_long",
            format!("{max}자 이하로 입력해 주세요."),
            format!("At most {max} characters."),
        ),
        Problem::PlateFormat => (
            "invalid_format",
            "차량 번호 형식이 올바르지 않습니다 (예: 12가3456, 123가4567, 서울12가3456).".into(),
            "Not a Korean licence plate (e.g. 12가3456, 123가4567, 서울12가3456).".into(),
        ),
        Problem::YearOutOfRange { min, max } => (
            "out_of_range",
            format!("연식은 {min}년부터 {max}년 사이여야 합니다."),
            format!("The model year must be between {min} and {max}."),
        ),
        Problem::RateOutOfRange { min, max } => (
            "out_of_range",
            format!("시간당 요금은 {min}원 이상 {max}원 이하의 정수여야 합니다."),
            format!("The hourly rate must be a whole number of won from {min} to {max}."),
        ),
        Problem::OutsideKorea => (
            "outside_service_area",
            "위치가 대한민국 밖에 있습니다.".into(),
            "The location lies outside South Korea.".into(),
        ),
        Problem::TooMany { max } => (
            "too_many",
            format!("최대 {max}개까지 가능합니다."),
            format!("At most {max} items."),
        ),
        Problem::DateTooFar { max_days } => (
            "too_far_ahead",
            format!("{max_days}일 이내의 날짜만 지정할 수 있습니다."),
            format!("Dates at most {max_days} days ahead."),
        ),
        Problem::ImageReference => (
            "invalid_image_reference",
            "이미지는 http(s) URL 또는 저장소 키여야 합니다.".into(),
            "Images are http(s) URLs or storage keys.".into(),
        ),
        Problem::EmptyUpdate => (
            "empty_update",
            "변경할 항목을 하나 이상 보내 주세요.".into(),
            "Send at least one field to change.".into(),
        ),
    }
}

impl From<VehicleError> for ApiError {
    fn from(err: VehicleError) -> ApiError {
        match err {
            VehicleError::NotFound => ApiError::new(ErrorCode::VEHICLE001),
            VehicleError::AlreadyRegistered => ApiError::new(ErrorCode::SYS001),
            VehicleError::Removed => ApiError::new(ErrorCode::VEHICLE003),
            VehicleError::HostRoleRequired => ApiError::new(ErrorCode::VEHICLE005),
            VehicleError::NotOwner => ApiError::new(ErrorCode::VEHICLE004),
            VehicleError::Invalid { field, problem } => {
                let (reason, ko, en) = describe(&problem);
                ApiError::with_details(
                    ErrorCode::VEHICLE006,
                    vec![FieldIssue::new(field.into_owned(), reason, ko, en)],
                )
            }
        }
    }
}

impl From<VehicleServiceError> for ApiError {
    fn from(err: VehicleServiceError) -> ApiError {
        match err {
            VehicleServiceError::Domain(e) => e.into(),
            VehicleServiceError::PlateTaken => ApiError::with_details(
                ErrorCode::VEHICLE002,
                vec![FieldIssue::new(
                    "license_plate",
                    "taken",
                    "이미 등록된 차량 번호입니다.",
                    "Already registered.",
                )],
            ),
            VehicleServiceError::PartialCoordinates => ApiError::with_details(
                ErrorCode::VEHICLE006,
                vec![FieldIssue::new(
                    "location_lat",
                    "incomplete_coordinates",
                    "location_lat과 location_lng를 함께 보내 주세요.",
                    "Send location_lat and location_lng together.",
                )],
            ),
            VehicleServiceError::GeocodingNotConfigured => ApiError::new(ErrorCode::GEO001),
            VehicleServiceError::AddressNotFound => ApiError::with_details(
                ErrorCode::GEO002,
                vec![FieldIssue::new(
                    "location_address",
                    "not_found",
                    "주소를 찾을 수 없습니다.",
                    "The address matched nothing.",
                )],
            ),
            VehicleServiceError::GeocodingUnavailable(why) => {
                let mut e = ApiError::new(ErrorCode::GEO003).caused_by(anyhow::anyhow!(why));
                e.retry_after = Some(30);
                e
            }
            VehicleServiceError::Infra(e) => e.into(),
        }
    }
}
