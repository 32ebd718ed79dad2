//! Live state against the records: the one comparer of "does this environment run exactly
//! the digests it was given", used by the promotion gate (the source environment), by
//! `audit --live` (every environment) and, one task at a time, by the Swarm check.

use std::collections::BTreeMap;

use registry_client::PinnedImage;

use crate::digest::Digest;
use crate::name::ServiceName;

/// How a service's live state differs from its recorded digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// No service of that name runs.
    NotRunning,
    /// It runs an image not pinned by digest (a tag, or a malformed digest).
    Unpinned { image: String },
    /// It runs another digest.
    Foreign { live: Digest },
}

/// How one running image differs from the digest recorded for it; `None`: it is pinned
/// to exactly that digest.
pub fn of_image(want: &Digest, image: &str) -> Option<Drift> {
    match PinnedImage::parse(image) {
        Err(_) => Some(Drift::Unpinned {
            image: image.to_owned(),
        }),
        Ok(pinned) if pinned.digest() == want => None,
        Ok(pinned) => Some(Drift::Foreign {
            live: pinned.digest().clone(),
        }),
    }
}

/// Every recorded service whose live image is not pinned to its recorded digest, in
/// service order. `recorded`: service → digest; `live`: service → the image its running
/// service names (absent when it does not run).
pub fn compare(
    recorded: &BTreeMap<ServiceName, Digest>,
    live: &BTreeMap<ServiceName, String>,
) -> Vec<(ServiceName, Drift)> {
    recorded
        .iter()
        .filter_map(|(service, want)| {
            let drift = match live.get(service) {
                None => Drift::NotRunning,
                Some(image) => of_image(want, image)?,
            };
            Some((service.clone(), drift))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_service_can_differ_from_its_record() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let name = |s: &str| ServiceName::parse(s).unwrap();
        let recorded: BTreeMap<ServiceName, Digest> = ["api", "web", "db", "cache"]
            .iter()
            .map(|s| (name(s), Digest::parse(&d('a')).unwrap()))
            .collect();
        let live: BTreeMap<ServiceName, String> = [
            ("api", format!("r.example.com/api:1@{}", d('a'))),
            ("web", format!("r.example.com/web:1@{}", d('b'))),
            ("db", "postgres:16".to_owned()),
            ("extra", "x:1".to_owned()),
        ]
        .iter()
        .map(|(k, v)| (name(k), v.clone()))
        .collect();
        let drift = compare(&recorded, &live);
        assert_eq!(
            drift,
            [
                (name("cache"), Drift::NotRunning),
                (
                    name("db"),
                    Drift::Unpinned {
                        image: "postgres:16".to_owned()
                    }
                ),
                (
                    name("web"),
                    Drift::Foreign {
                        live: Digest::parse(&d('b')).unwrap()
                    }
                ),
            ]
        );
    }
}
