//! The one place where application and domain errors become HTTP errors: exhaustive matches
//! from each variant to its code.

use crate::error::{ApiError, ErrorCode, FieldIssue};
use carshare_commands::accounts::{AccountError, AccountProblem};
use carshare_commands::bookings::BookingServiceError;
use carshare_commands::payments::PaymentServiceError;
use carshare_commands::vehicles::VehicleServiceError;
use carshare_commands::InfraError;
use carshare_domain::account::{InvalidBrn, WeakPassword};
use carshare_domain::booking::{BookingError, BookingProblem};
use carshare_domain::payment::PaymentError;
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
            VehicleError::HasBookings => ApiError::new(ErrorCode::VEHICLE007),
            // Reservation refusals reach clients through the booking service's mapping.
            VehicleError::NotBookable => ApiError::new(ErrorCode::BOOKING008),
            VehicleError::OutsideAvailability => ApiError::new(ErrorCode::BOOKING009),
            VehicleError::WindowTaken => ApiError::new(ErrorCode::BOOKING002),
            VehicleError::OwnVehicle => ApiError::new(ErrorCode::BOOKING007),
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

/// Korean and English explanations of an account field problem, and its reason word.
pub fn describe_account(problem: &AccountProblem) -> (&'static str, String, String) {
    match problem {
        AccountProblem::Email => (
            "invalid_format",
            "이메일 형식이 올바르지 않습니다.".into(),
            "Not an e-mail address.".into(),
        ),
        AccountProblem::Password(weak) => match weak {
            WeakPassword::TooShort(n) => (
                "too_short",
                format!("비밀번호는 {n}자 이상이어야 합니다."),
                format!("At least {n} characters."),
            ),
            WeakPassword::TooLong(n) => (
                "too_long",
                format!("비밀번호는 {n}자 이하여야 합니다."),
                format!("At most {n} characters."),
            ),
            WeakPassword::TooSimple => (
                "too_simple",
                "같은 문자만 반복한 비밀번호는 사용할 수 없습니다.".into(),
                "A password of one repeated character is too simple.".into(),
            ),
        },
        AccountProblem::Text { max } => (
            "invalid_length",
            format!("1자 이상 {max}자 이하로 입력해 주세요."),
            format!("Between 1 and {max} characters."),
        ),
        AccountProblem::Phone => (
            "invalid_format",
            "휴대전화 번호 형식이 올바르지 않습니다 (예: 010-1234-5678).".into(),
            "Not a Korean mobile number (e.g. 010-1234-5678).".into(),
        ),
        AccountProblem::Role => (
            "not_allowed",
            "가입 시 역할은 guest 또는 host만 선택할 수 있습니다.".into(),
            "Only guest or host can be chosen; admins are created by operators.".into(),
        ),
        AccountProblem::Url => (
            "invalid_url",
            "http(s) URL이어야 합니다.".into(),
            "Must be an http(s) URL.".into(),
        ),
        AccountProblem::Brn(InvalidBrn::Format) => (
            "invalid_format",
            "사업자등록번호는 10자리 숫자입니다 (예: 123-45-67890).".into(),
            "A business registration number has ten digits (123-45-67890).".into(),
        ),
        AccountProblem::Brn(InvalidBrn::Checksum) => (
            "invalid_checksum",
            "사업자등록번호의 검증 번호가 맞지 않습니다.".into(),
            "The check digit of the business registration number does not match.".into(),
        ),
        AccountProblem::TooMany { max } => (
            "too_many",
            format!("최대 {max}개까지 가능합니다."),
            format!("At most {max} items."),
        ),
        AccountProblem::ReasonRequired => (
            "required",
            "반려 사유를 입력해 주세요.".into(),
            "A rejection needs a reason.".into(),
        ),
        AccountProblem::EmptyUpdate => (
            "empty_update",
            "변경할 항목을 하나 이상 보내 주세요.".into(),
            "Send at least one field to change.".into(),
        ),
    }
}

const CORPORATE_FIELDS: [&str; 5] = [
    "company_name",
    "business_registration_number",
    "tax_id",
    "verification_documents",
    "reason",
];

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> ApiError {
        match err {
            AccountError::Invalid(problems) => {
                let corporate = problems
                    .iter()
                    .any(|(f, _)| CORPORATE_FIELDS.iter().any(|c| f.starts_with(c)));
                let details = problems
                    .iter()
                    .map(|(field, problem)| {
                        let (reason, ko, en) = describe_account(problem);
                        FieldIssue::new(field.clone(), reason, ko, en)
                    })
                    .collect();
                let code = if corporate {
                    ErrorCode::CORP003
                } else {
                    ErrorCode::ACCOUNT002
                };
                ApiError::with_details(code, details)
            }
            AccountError::EmailTaken => ApiError::with_details(
                ErrorCode::ACCOUNT001,
                vec![FieldIssue::new(
                    "email",
                    "taken",
                    "이미 가입된 이메일입니다.",
                    "Already registered.",
                )],
            ),
            AccountError::WrongCredentials => ApiError::new(ErrorCode::AUTH006),
            AccountError::RefreshInvalid => ApiError::new(ErrorCode::AUTH007),
            AccountError::RefreshReused { .. } => ApiError::new(ErrorCode::AUTH008),
            AccountError::NotFound => ApiError::new(ErrorCode::ACCOUNT003),
            AccountError::HasLiveVehicles(_) => ApiError::new(ErrorCode::ACCOUNT004),
            AccountError::NotHost => ApiError::new(ErrorCode::CORP005),
            AccountError::ProfileExists => ApiError::new(ErrorCode::CORP001),
            AccountError::BrnTaken => ApiError::with_details(
                ErrorCode::CORP002,
                vec![FieldIssue::new(
                    "business_registration_number",
                    "taken",
                    "이미 등록된 사업자등록번호입니다.",
                    "Already registered.",
                )],
            ),
            AccountError::ProfileNotFound => ApiError::new(ErrorCode::CORP004),
            AccountError::Infra(e) => e.into(),
        }
    }
}

fn describe_booking(problem: &BookingProblem) -> (&'static str, String, String) {
    match problem {
        BookingProblem::EndNotAfterStart => (
            "end_not_after_start",
            "종료 시각은 시작 시각보다 뒤여야 합니다.".into(),
            "The end must come after the start.".into(),
        ),
        BookingProblem::InThePast => (
            "in_the_past",
            "시작 시각은 미래여야 합니다.".into(),
            "The start must lie in the future.".into(),
        ),
        BookingProblem::TooShort { min_minutes } => (
            "too_short",
            format!("예약은 최소 {min_minutes}분입니다."),
            format!("Bookings last at least {min_minutes} minutes."),
        ),
        BookingProblem::TooLong { max_days } => (
            "too_long",
            format!("예약은 최대 {max_days}일입니다."),
            format!("Bookings last at most {max_days} days."),
        ),
        BookingProblem::NotAligned { minutes } => (
            "not_aligned",
            format!("시각은 {minutes}분 단위(초 없이)여야 합니다."),
            format!("Times must be whole multiples of {minutes} minutes."),
        ),
        BookingProblem::TextTooLong { max } => (
            "too_long",
            format!("최대 {max}자까지 입력할 수 있습니다."),
            format!("At most {max} characters."),
        ),
        BookingProblem::OutOfRange { min, max } => (
            "out_of_range",
            format!("{min}에서 {max} 사이의 정수여야 합니다."),
            format!("A whole number from {min} to {max}."),
        ),
        BookingProblem::Count { max } => (
            "count",
            format!("사진은 종류별로 1장 이상 최대 {max}장입니다."),
            format!("Send at least one and at most {max} photos of each kind."),
        ),
    }
}

impl From<BookingError> for ApiError {
    fn from(err: BookingError) -> ApiError {
        match err {
            BookingError::NotFound => ApiError::new(ErrorCode::BOOKING001),
            BookingError::AlreadyExists => ApiError::new(ErrorCode::SYS001),
            BookingError::Invalid { field, problem } => {
                let (reason, ko, en) = describe_booking(&problem);
                ApiError::with_details(
                    ErrorCode::BOOKING003,
                    vec![FieldIssue::new(field.into_owned(), reason, ko, en)],
                )
            }
            BookingError::GuestRoleRequired => ApiError::new(ErrorCode::BOOKING006),
            BookingError::OwnVehicle => ApiError::new(ErrorCode::BOOKING007),
            BookingError::NotHost
            | BookingError::NotGuest
            | BookingError::NotParticipant
            | BookingError::SystemOnly => ApiError::new(ErrorCode::BOOKING005),
            BookingError::InvalidTransition { status, action } => ApiError::with_details(
                ErrorCode::BOOKING004,
                vec![FieldIssue::new(
                    "status",
                    "invalid_transition",
                    format!("'{status}' 상태의 예약은 {action} 할 수 없습니다."),
                    format!("A booking that is {status} cannot {action}."),
                )],
            ),
            BookingError::ResponseTimeOver => ApiError::new(ErrorCode::BOOKING010),
            BookingError::NotDueToExpire => ApiError::new(ErrorCode::BOOKING004),
            BookingError::OutsidePickupTime => ApiError::new(ErrorCode::BOOKING011),
            BookingError::VehicleNotBookable => ApiError::new(ErrorCode::BOOKING008),
            BookingError::OutsideAvailability => ApiError::new(ErrorCode::BOOKING009),
            BookingError::WindowTaken => ApiError::new(ErrorCode::BOOKING002),
            BookingError::PhotosNotExpected { .. } => ApiError::new(ErrorCode::BOOKING012),
            BookingError::PaymentRequired => ApiError::new(ErrorCode::BOOKING013),
            BookingError::ReviewNotOpen => ApiError::new(ErrorCode::REVIEW002),
            BookingError::AlreadyReviewed => ApiError::new(ErrorCode::REVIEW003),
            BookingError::ReviewPeriodOver => ApiError::new(ErrorCode::REVIEW004),
        }
    }
}

impl From<BookingServiceError> for ApiError {
    fn from(err: BookingServiceError) -> ApiError {
        match err {
            BookingServiceError::Booking(e) => e.into(),
            BookingServiceError::VehicleNotFound => ApiError::new(ErrorCode::VEHICLE001),
            BookingServiceError::Infra(e) => e.into(),
        }
    }
}

impl From<PaymentServiceError> for ApiError {
    fn from(err: PaymentServiceError) -> ApiError {
        match err {
            PaymentServiceError::Payment(e) => match e {
                PaymentError::NotFound => ApiError::new(ErrorCode::PAYMENT001),
                PaymentError::OrderMismatch => ApiError::with_details(
                    ErrorCode::PAYMENT002,
                    vec![FieldIssue::new(
                        "order_id",
                        "mismatch",
                        "예약의 주문 번호가 아닙니다.",
                        "Not this booking's order id.",
                    )],
                ),
                PaymentError::AmountMismatch => ApiError::with_details(
                    ErrorCode::PAYMENT002,
                    vec![FieldIssue::new(
                        "amount",
                        "mismatch",
                        "결제할 금액과 다릅니다.",
                        "Not the amount due.",
                    )],
                ),
                PaymentError::AlreadyPaid | PaymentError::AlreadyExists => {
                    ApiError::new(ErrorCode::PAYMENT003)
                }
                PaymentError::Overdue => ApiError::new(ErrorCode::PAYMENT005),
                PaymentError::Voided => ApiError::new(ErrorCode::PAYMENT008),
                PaymentError::RefundTooLarge | PaymentError::NoPendingRefund => {
                    ApiError::internal(anyhow::anyhow!("refund bookkeeping refused: {e}"))
                }
                PaymentError::NotGuest | PaymentError::SystemOnly => {
                    ApiError::new(ErrorCode::PAYMENT007)
                }
            },
            PaymentServiceError::Refused { code, message } => ApiError::with_details(
                ErrorCode::PAYMENT004,
                vec![FieldIssue::new(
                    "payment_key",
                    "refused",
                    format!("{message} ({code})"),
                    format!("{message} ({code})"),
                )],
            ),
            PaymentServiceError::GatewayUnavailable(reason) => {
                let mut err =
                    ApiError::new(ErrorCode::PAYMENT006).caused_by(anyhow::anyhow!(reason));
                err.retry_after = Some(10);
                err
            }
            PaymentServiceError::Infra(e) => e.into(),
        }
    }
}

/// A refused review: field problems are review fields (REVIEW001); the rest as for any
/// booking command.
pub fn review_refusal(err: BookingServiceError) -> ApiError {
    match err {
        BookingServiceError::Booking(BookingError::Invalid { field, problem }) => {
            let (reason, ko, en) = describe_booking(&problem);
            ApiError::with_details(
                ErrorCode::REVIEW001,
                vec![FieldIssue::new(field.into_owned(), reason, ko, en)],
            )
        }
        other => other.into(),
    }
}
