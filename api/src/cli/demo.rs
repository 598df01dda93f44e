//! `carshare demo seed`: demo accounts and vehicles through the real command path, so a
//! newcomer can sign in and search at once. Running it again adds nothing.

use anyhow::Context;
use carshare_commands::accounts::{AccountError, AccountService, NewAccount, NewCorporateProfile};
use carshare_commands::vehicles::{
    LocationInput, RegisterVehicle, VehicleService, VehicleServiceError,
};
use carshare_commands::SystemClock;
use carshare_domain::vehicle::{AvailabilityRule, FuelType, Schedule, Transmission};
use carshare_domain::{Actor, MinuteOfDay, Role};
use carshare_event_store::{CommitSignal, EventMetadata};
use chrono::Utc;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// The password of every demo account (printed; demo data only).
pub const DEMO_PASSWORD: &str = "carshare-demo-2026";

struct DemoUser {
    email: &'static str,
    name: &'static str,
    phone: &'static str,
    role: Role,
}

const USERS: [DemoUser; 9] = [
    DemoUser {
        email: "admin@carshare.demo",
        name: "관리자",
        phone: "010-0000-0001",
        role: Role::Admin,
    },
    DemoUser {
        email: "host.seoul@carshare.demo",
        name: "서울모빌리티(주)",
        phone: "010-1000-0001",
        role: Role::Host,
    },
    DemoUser {
        email: "host.gangnam@carshare.demo",
        name: "강남렌트(주)",
        phone: "010-1000-0002",
        role: Role::Host,
    },
    DemoUser {
        email: "host.busan@carshare.demo",
        name: "부산카셰어(주)",
        phone: "010-1000-0003",
        role: Role::Host,
    },
    DemoUser {
        email: "guest1@carshare.demo",
        name: "김민수",
        phone: "010-2000-0001",
        role: Role::Guest,
    },
    DemoUser {
        email: "guest2@carshare.demo",
        name: "이서연",
        phone: "010-2000-0002",
        role: Role::Guest,
    },
    DemoUser {
        email: "guest3@carshare.demo",
        name: "박지훈",
        phone: "010-2000-0003",
        role: Role::Guest,
    },
    DemoUser {
        email: "guest4@carshare.demo",
        name: "최유진",
        phone: "010-2000-0004",
        role: Role::Guest,
    },
    DemoUser {
        email: "guest5@carshare.demo",
        name: "정하은",
        phone: "010-2000-0005",
        role: Role::Guest,
    },
];

/// A valid 사업자등록번호 from a nine-digit prefix (the check digit computed).
fn brn(prefix: u32) -> String {
    let digits: Vec<u32> = format!("{prefix:09}")
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let weights = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let mut sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    sum += digits.get(8).map_or(0, |d| d * 5 / 10);
    format!("{prefix:09}{}", (10 - sum % 10) % 10)
}

/// A demo host's fleet.
struct Fleet {
    host: &'static str,
    centre: (f64, f64),
    company: &'static str,
    /// First nine digits of its 사업자등록번호.
    brn_prefix: u32,
    vehicles: usize,
}

const FLEETS: [Fleet; 3] = [
    Fleet {
        host: "host.seoul@carshare.demo",
        centre: (37.5663, 126.9779),
        company: "서울모빌리티 주식회사",
        brn_prefix: 104_811_001,
        vehicles: 120,
    },
    Fleet {
        host: "host.gangnam@carshare.demo",
        centre: (37.4979, 127.0276),
        company: "강남렌트 주식회사",
        brn_prefix: 220_862_002,
        vehicles: 100,
    },
    Fleet {
        host: "host.busan@carshare.demo",
        centre: (35.1631, 129.1635),
        company: "부산카셰어 주식회사",
        brn_prefix: 617_813_003,
        vehicles: 80,
    },
];

const MODELS: [(&str, &str, FuelType, i64); 8] = [
    ("현대", "아반떼", FuelType::Gasoline, 9_000),
    ("현대", "쏘나타 하이브리드", FuelType::Hybrid, 12_000),
    ("현대", "아이오닉 5", FuelType::Electric, 15_000),
    ("기아", "K5", FuelType::Gasoline, 11_000),
    ("기아", "EV6", FuelType::Electric, 16_000),
    ("기아", "카니발", FuelType::Diesel, 18_000),
    ("제네시스", "G80", FuelType::Gasoline, 25_000),
    ("제네시스", "GV70 전동화", FuelType::Electric, 27_000),
];

fn meta(actor: Actor, command: &str) -> EventMetadata {
    let id = Uuid::new_v4().to_string();
    EventMetadata {
        correlation_id: id.clone(),
        causation_id: id,
        actor_id: Some(actor.user_id),
        actor_role: Some(actor.role.as_str().to_string()),
        idempotency_key: None,
        issued_at: Utc::now(),
        command: command.into(),
    }
}

async fn user_id(pool: &PgPool, email: &str) -> anyhow::Result<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = $1 AND erased_at IS NULL")
            .bind(email)
            .fetch_optional(pool)
            .await?,
    )
}

/// Seeds the demo data; returns the accounts created or found, with their roles.
pub async fn seed(
    pool: PgPool,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Vec<(String, String)>> {
    let clock = Arc::new(SystemClock);
    let accounts = AccountService::new(pool.clone(), clock.clone(), chrono::Duration::days(14));
    let vehicles = VehicleService::new(pool.clone(), CommitSignal::default(), None, clock);
    let mut listed = Vec::new();
    for u in &USERS {
        let account = NewAccount {
            email: u.email.into(),
            password: DEMO_PASSWORD.into(),
            name: u.name.into(),
            phone: u.phone.into(),
            role: u.role,
        };
        let created = match u.role {
            Role::Admin => accounts.create_admin(account).await.map(|_| ()),
            _ => accounts.register(account).await.map(|_| ()),
        };
        match created {
            Ok(()) | Err(AccountError::EmailTaken) => {
                listed.push((u.email.to_string(), u.role.as_str().to_string()))
            }
            Err(e) => return Err(anyhow::anyhow!("creating {}: {e}", u.email)),
        }
    }
    let admin = user_id(&pool, "admin@carshare.demo")
        .await?
        .context("the demo admin exists")?;
    let total: u64 = FLEETS.iter().map(|f| f.vehicles as u64).sum();
    let mut done = 0;
    for (fleet, f) in FLEETS.iter().enumerate() {
        let (email, company, count) = (f.host, f.company, f.vehicles);
        let (lat, lng) = f.centre;
        let host = user_id(&pool, email)
            .await?
            .context("the demo host exists")?;
        match accounts
            .create_profile(
                host,
                NewCorporateProfile {
                    company_name: company.into(),
                    business_registration_number: brn(f.brn_prefix),
                    tax_id: None,
                    verification_documents: vec![],
                },
            )
            .await
        {
            Ok(profile) => {
                accounts
                    .review_profile(admin, profile.id, true, None)
                    .await?;
            }
            Err(AccountError::ProfileExists) => {}
            Err(e) => return Err(anyhow::anyhow!("profile of {email}: {e}")),
        }
        let actor = Actor::new(host, Role::Host);
        for i in 0..count {
            let (make, model, fuel, rate) = MODELS[i % MODELS.len()];
            // Deterministic spread (about ±4 km) and plates, so a second run finds them taken.
            let angle = i as f64 * 2.399_963;
            let radius = 0.036 * ((i as f64 + 1.0) / count as f64).sqrt();
            let request = RegisterVehicle {
                license_plate: format!(
                    "{:02}{}{:04}",
                    10 + fleet * 20 + i / 100,
                    ['하', '허', '호'][fleet],
                    1000 + i
                ),
                make: make.into(),
                model: model.into(),
                year: 2019 + (i % 7) as i32,
                color: Some(["흰색", "검정", "회색", "파랑"][i % 4].into()),
                fuel_type: Some(fuel),
                transmission: Some(Transmission::Automatic),
                hourly_rate: rate + (i as i64 % 5) * 500,
                location: LocationInput {
                    address: format!("{company} 차고지 {}", i + 1),
                    lat: Some(lat + radius * angle.sin()),
                    lng: Some(lng + radius * angle.cos() * 1.25),
                },
                description: Some(format!(
                    "{company} 법인 차량. 출퇴근·업무용으로 깨끗하게 관리합니다."
                )),
                images: vec![],
            };
            match vehicles
                .register(actor, request, &meta(actor, "RegisterVehicle"))
                .await
            {
                Ok(done_cmd) => {
                    if i % 3 == 0 {
                        if let Some(state) = done_cmd.aggregate.state {
                            let weekdays: Vec<AvailabilityRule> = (1..=5)
                                .map(|d| AvailabilityRule {
                                    schedule: Schedule::Weekly { day_of_week: d },
                                    start: MinuteOfDay::hm(7, 0)
                                        .unwrap_or(MinuteOfDay::START_OF_DAY),
                                    end: MinuteOfDay::hm(22, 0).unwrap_or(MinuteOfDay::END_OF_DAY),
                                    blocked: false,
                                })
                                .collect();
                            vehicles
                                .set_availability(
                                    actor,
                                    state.id,
                                    weekdays,
                                    &meta(actor, "SetAvailability"),
                                )
                                .await?;
                        }
                    }
                }
                Err(VehicleServiceError::PlateTaken) => {}
                Err(e) => return Err(anyhow::anyhow!("vehicle {i} of {email}: {e}")),
            }
            done += 1;
            progress(done, total);
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carshare_domain::account::BusinessRegistrationNumber;

    #[test]
    fn demo_registration_numbers_pass_their_checksum() {
        for fleet in FLEETS {
            assert!(BusinessRegistrationNumber::parse(&brn(fleet.brn_prefix)).is_ok());
        }
    }
}
