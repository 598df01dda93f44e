//! Upcasters turn stored events of an older shape into the current one, both when aggregates are
//! loaded (cqrs-es) and when the stream is read (projections, relay).
//!
//! Every change to an event's shape bumps that event's version and adds an upcaster here; events
//! in the log are never rewritten. None exist yet: every shape is at version 1.0.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};

/// The upcasters of every aggregate.
pub fn all() -> Vec<Box<dyn EventUpcaster>> {
    Vec::new()
}

/// Runs the first matching upcaster repeatedly until none applies.
pub fn upcast(upcasters: &[Box<dyn EventUpcaster>], mut event: SerializedEvent) -> SerializedEvent {
    // Each upcaster raises the version, so this ends; the bound guards against a faulty one.
    for _ in 0..32 {
        match upcasters
            .iter()
            .find(|u| u.can_upcast(&event.event_type, &event.event_version))
        {
            Some(upcaster) => event = upcaster.upcast(event),
            None => break,
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::persist::SemanticVersionEventUpcaster;
    use serde_json::json;

    #[test]
    fn an_upcaster_rewrites_old_shapes_on_read() {
        let upcasters: Vec<Box<dyn EventUpcaster>> =
            vec![Box::new(SemanticVersionEventUpcaster::new(
                "HourlyRateChanged",
                "2.0",
                Box::new(|mut payload| {
                    if let Some(inner) = payload.get_mut("HourlyRateChanged") {
                        let rate = inner["rate"].clone();
                        inner["hourly_rate"] = rate;
                    }
                    payload
                }),
            ))];
        let old = SerializedEvent::new(
            "v1".into(),
            2,
            "Vehicle".into(),
            "HourlyRateChanged".into(),
            "1.0".into(),
            json!({"HourlyRateChanged": {"rate": 100}}),
            json!({}),
        );
        let new = upcast(&upcasters, old);
        assert_eq!(new.event_version, "2.0.0");
        assert_eq!(new.payload["HourlyRateChanged"]["hourly_rate"], 100);
    }
}
