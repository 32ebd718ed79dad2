//! The colours of a blue-green environment: `colours/<env>.json`, which colour the proxy
//! sends traffic to, and the previous colour kept running for a rollback until its window
//! ends.
//!
//! The record says what the tool did last; the proxy's upstream file and the engine's
//! containers are what runs. A deploy writes it after the switch took effect, under the
//! environment's deploy lock.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::atomic::write_atomic;
use crate::name::{EnvName, Version};
use crate::state::{RecordError, StateDir, create_private_dir, read_optional};

/// One of the two slots a blue-green environment deploys into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub fn other(self) -> Self {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }

    /// The Compose project (or stack) of this colour: `NAME-blue`, `NAME-green`.
    /// `blue` or `green`, whichever is this colour's.
    pub fn pick<T>(self, blue: T, green: T) -> T {
        match self {
            Colour::Blue => blue,
            Colour::Green => green,
        }
    }

    pub fn project(self, name: &str) -> String {
        format!("{name}-{}", self.as_str())
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The colour that serves, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Live {
    pub colour: Colour,
    pub version: Version,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// The colour that served before the last switch, still running for a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standby {
    pub colour: Colour,
    pub version: Version,
    /// When its rollback window ends and it is removed.
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// `colours/<env>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Colours {
    pub env: EnvName,
    pub live: Option<Live>,
    pub standby: Option<Standby>,
}

impl Colours {
    /// An environment no colour was ever deployed to.
    pub fn empty(env: EnvName) -> Self {
        Self {
            env,
            live: None,
            standby: None,
        }
    }

    /// The colour a new release starts in: the one that does not serve (blue at first).
    pub fn idle(&self) -> Colour {
        self.live
            .as_ref()
            .map_or(Colour::Blue, |l| l.colour.other())
    }

    /// The standby colour whose window has ended by `now`.
    pub fn expired(&self, now: OffsetDateTime) -> Option<&Standby> {
        self.standby.as_ref().filter(|s| s.until <= now)
    }

    /// The standby colour that can still be switched back to at `now`.
    pub fn rollback_to(&self, now: OffsetDateTime) -> Option<&Standby> {
        self.standby.as_ref().filter(|s| s.until > now)
    }

    /// After traffic was switched to `colour` running `version` at `now`: the colour that
    /// served before stays as the standby for `window`.
    pub fn switched(
        &self,
        colour: Colour,
        version: Version,
        now: OffsetDateTime,
        window: Duration,
    ) -> Self {
        let standby = self
            .live
            .as_ref()
            .filter(|l| l.colour != colour)
            .map(|l| Standby {
                colour: l.colour,
                version: l.version.clone(),
                until: now + window,
            });
        Self {
            env: self.env.clone(),
            live: Some(Live {
                colour,
                version,
                since: now,
            }),
            standby,
        }
    }

    /// The standby colour is gone.
    pub fn without_standby(&self) -> Self {
        Self {
            standby: None,
            ..self.clone()
        }
    }
}

impl StateDir {
    fn colours_path(&self, env: &EnvName) -> std::path::PathBuf {
        self.root().join("colours").join(format!("{env}.json"))
    }

    /// The colours of `env`; an empty record when none was written yet.
    pub fn read_colours(&self, env: &EnvName) -> Result<Colours, RecordError> {
        let path = self.colours_path(env);
        let Some(bytes) = read_optional(&path)? else {
            return Ok(Colours::empty(env.clone()));
        };
        let colours: Colours =
            serde_json::from_slice(&bytes).map_err(|e| RecordError::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if &colours.env != env {
            return Err(RecordError::Malformed {
                path,
                reason: format!("it is the colour record of environment {}", colours.env),
            });
        }
        Ok(colours)
    }

    /// Replaces the colour record of `colours.env` atomically. The caller holds the
    /// environment's deploy lock.
    pub fn write_colours(&self, colours: &Colours) -> Result<(), RecordError> {
        let path = self.colours_path(&colours.env);
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let mut bytes = serde_json::to_vec_pretty(colours).map_err(|e| RecordError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        write_atomic(&path, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn a_switch_keeps_the_colour_that_served_as_standby_for_the_window() {
        let env = EnvName::parse("prod").unwrap();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let hour = Duration::from_secs(3600);
        let empty = Colours::empty(env.clone());
        assert_eq!(empty.idle(), Colour::Blue);
        let first = empty.switched(Colour::Blue, v("1.0.0"), t0, hour);
        assert_eq!(
            first.standby, None,
            "nothing served before the first switch"
        );
        assert_eq!(first.idle(), Colour::Green);
        let second = first.switched(Colour::Green, v("1.1.0"), t0, hour);
        let standby = second.standby.clone().unwrap();
        assert_eq!(
            (standby.colour, standby.version),
            (Colour::Blue, v("1.0.0"))
        );
        assert!(second.rollback_to(t0 + Duration::from_secs(3599)).is_some());
        assert!(second.expired(t0 + Duration::from_secs(3599)).is_none());
        assert!(second.rollback_to(t0 + hour).is_none());
        assert!(second.expired(t0 + hour).is_some());
        // Switching back: green becomes the standby.
        let back = second.switched(Colour::Blue, v("1.0.0"), t0, hour);
        assert_eq!(back.standby.unwrap().colour, Colour::Green);
        assert_eq!(Colour::Green.project("shop-prod"), "shop-prod-green");
    }

    #[test]
    fn the_record_round_trips_and_refuses_another_environment() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let prod = EnvName::parse("prod").unwrap();
        assert_eq!(
            state.read_colours(&prod).unwrap(),
            Colours::empty(prod.clone())
        );
        let colours = Colours::empty(prod.clone()).switched(
            Colour::Green,
            v("2.0.0"),
            OffsetDateTime::UNIX_EPOCH,
            Duration::from_secs(60),
        );
        state.write_colours(&colours).unwrap();
        assert_eq!(state.read_colours(&prod).unwrap(), colours);
        let dev = EnvName::parse("dev").unwrap();
        std::fs::copy(
            dir.path().join("colours/prod.json"),
            dir.path().join("colours/dev.json"),
        )
        .unwrap();
        let err = state.read_colours(&dev).unwrap_err();
        assert!(err.to_string().contains("environment prod"), "{err}");
    }
}
