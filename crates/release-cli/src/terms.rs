//! The CLI's names for what the libraries' hints are about: its flags and variables. The
//! libraries name a setting as data ([`pipeline::Setting`], [`registry_client::Hint`]);
//! the words are chosen here, once, for the command that met the error.

use registry_client::Hint;

pub const USERNAME_ENV: &str = "RELEASE_REGISTRY_USERNAME";
pub const PASSWORD_ENV: &str = "RELEASE_REGISTRY_PASSWORD";
pub const CA_ENV: &str = "RELEASE_REGISTRY_CA";
pub const RETRIES_ENV: &str = "RELEASE_REGISTRY_RETRIES";
pub const RETRY_BASE_ENV: &str = "RELEASE_REGISTRY_RETRY_BASE_MS";
pub const MAX_WAIT_ENV: &str = "RELEASE_REGISTRY_MAX_WAIT";

/// Which command family a hint is worded for: only `release image` has `--registry-ca`
/// and `--password-stdin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The pipeline stages (`push`, `promote`, `audit --live`, …).
    Stage,
    /// `release image digest|copy|verify`.
    Image,
}

/// A library's hint in the terms of `surface`: a hint about a setting names the flag or
/// variable that holds it.
pub fn hint(
    hint: Option<String>,
    setting: Option<pipeline::Setting>,
    surface: Surface,
) -> Option<String> {
    use pipeline::Setting;
    match (hint, setting) {
        (_, Some(Setting::Registry(registry))) => Some(registry_hint(&registry, surface)),
        (Some(hint), Some(Setting::LockWait)) => Some(format!("{hint} (--lock-timeout)")),
        (Some(hint), Some(Setting::RollbackTarget)) => Some(format!("{hint} (--to-version)")),
        (hint, _) => hint,
    }
}

/// The registry client's hint worded with the variables, flags and keys of `surface`.
pub fn registry_hint(hint: &Hint, surface: Surface) -> String {
    let image = surface == Surface::Image;
    match hint {
        Hint::Credentials { registry } => format!(
            "check {USERNAME_ENV}/{PASSWORD_ENV}{}, or run `docker login {registry}`",
            if image { " (or --password-stdin)" } else { "" }
        ),
        Hint::TrustCa => format!(
            "pass the registry's CA with {}{CA_ENV} or the config's registry.ca",
            if image { "--registry-ca FILE, " } else { "" }
        ),
        Hint::RetryBudget => {
            format!("raise the budget with {RETRIES_ENV} / {MAX_WAIT_ENV}, or check the registry")
        }
        Hint::Rights => hint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's hints name no flag; the CLI names only the flags the command has.
    #[test]
    fn hints_name_only_the_flags_of_their_command() {
        let ca = registry_hint(&Hint::TrustCa, Surface::Stage);
        assert_eq!(
            ca,
            "pass the registry's CA with RELEASE_REGISTRY_CA or the config's registry.ca"
        );
        assert!(registry_hint(&Hint::TrustCa, Surface::Image).contains("--registry-ca FILE"));
        let login = Hint::Credentials {
            registry: "r.example.com".to_owned(),
        };
        assert!(!registry_hint(&login, Surface::Stage).contains("--password-stdin"));
        assert!(registry_hint(&login, Surface::Image).contains("--password-stdin"));
        for h in [login, Hint::Rights, Hint::TrustCa, Hint::RetryBudget] {
            let library = h.to_string();
            assert!(
                !library.contains("--") && !library.contains("RELEASE_"),
                "{library}"
            );
        }
    }

    #[test]
    fn a_hint_about_a_setting_names_its_flag_and_one_about_none_is_kept() {
        use pipeline::Setting;
        let wait = hint(
            Some("wait longer".into()),
            Some(Setting::LockWait),
            Surface::Stage,
        );
        assert_eq!(wait.as_deref(), Some("wait longer (--lock-timeout)"));
        let plain = hint(Some("look".into()), None, Surface::Stage);
        assert_eq!(plain.as_deref(), Some("look"));
        let ca = hint(
            Some(Hint::TrustCa.to_string()),
            Some(Setting::Registry(Hint::TrustCa)),
            Surface::Image,
        );
        assert!(ca.unwrap().contains("--registry-ca FILE"));
    }
}
