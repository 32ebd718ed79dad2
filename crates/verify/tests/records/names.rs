use verify::{EnvName, NameError, ServiceName, Version, VersionPattern};

#[test]
fn versions_outside_the_docker_tag_grammar_are_refused() {
    let too_long = "1".repeat(129);
    for bad in [
        "latest",
        "LATEST",
        "",
        "../x",
        "a/b",
        "1..2",
        ".hidden",
        "-rc",
        "1.2.0+build",
        "1 2",
        too_long.as_str(),
    ] {
        let err = Version::parse(bad).expect_err(bad);
        let NameError::Version { reason, .. } = &err else {
            panic!("{bad:?}: unexpected error kind {err:?}");
        };
        assert!(!reason.is_empty());
        // The hint is data beside the message, not baked into it.
        assert!(!err.to_string().contains("hint"), "{err}");
        assert!(!err.hint().is_empty(), "{err}");
    }
}

#[test]
fn release_style_versions_are_accepted() {
    let max = "a".repeat(128);
    for good in [
        "1.2.0",
        "1.2.0-rc.1",
        "20261123.42",
        "_x",
        "v1",
        "latest-1",
        max.as_str(),
    ] {
        assert_eq!(Version::parse(good).unwrap().as_str(), good);
    }
}

#[test]
fn latest_error_says_why() {
    let msg = Version::parse("latest").unwrap_err().to_string();
    assert!(
        msg.contains("\"latest\"") && msg.contains("immutable"),
        "{msg}"
    );
}

#[test]
fn version_pattern_is_matched_against_the_whole_version() {
    let semver = VersionPattern::new(r"\d+\.\d+\.\d+").unwrap();
    Version::parse("1.2.3")
        .unwrap()
        .check_pattern(&semver)
        .unwrap();
    let err = Version::parse("1.2.3-rc.1")
        .unwrap()
        .check_pattern(&semver)
        .unwrap_err();
    assert!(matches!(err, NameError::PatternMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(r"\d+\.\d+\.\d+"), "{err}");
    assert!(matches!(
        VersionPattern::new("(").unwrap_err(),
        NameError::BadPattern { .. }
    ));
}

#[test]
fn versions_deserialize_through_validation() {
    let v: Version = serde_json::from_str("\"1.2.0\"").unwrap();
    assert_eq!(v.to_string(), "1.2.0");
    assert!(serde_json::from_str::<Version>("\"latest\"").is_err());
}

#[test]
fn env_names_are_lowercase_identifiers() {
    for good in ["dev", "prod", "staging-2", "0", "a_b"] {
        EnvName::parse(good).unwrap();
    }
    let too_long = "a".repeat(65);
    for bad in [
        "",
        "Prod",
        "-dev",
        "_dev",
        "dev/prod",
        "dev.1",
        "../prod",
        too_long.as_str(),
    ] {
        let err = EnvName::parse(bad).expect_err(bad);
        assert!(matches!(err, NameError::Env { .. }), "{bad:?}: {err:?}");
    }
}

#[test]
fn service_names_are_the_config_keys_grammar_and_deserialize_through_validation() {
    let longest = "a".repeat(63);
    for good in ["api", "worker-2", "0", "a_b", longest.as_str()] {
        assert_eq!(ServiceName::parse(good).unwrap().as_str(), good);
    }
    let too_long = "a".repeat(64);
    for bad in [
        "",
        "Api",
        "-api",
        "api.v2",
        "../worker",
        "a/b",
        too_long.as_str(),
    ] {
        let err = ServiceName::parse(bad).expect_err(bad);
        assert!(matches!(err, NameError::Service { .. }), "{bad:?}: {err:?}");
        assert!(!err.hint().is_empty());
    }
    let name: ServiceName = serde_json::from_str(r#""api""#).unwrap();
    assert_eq!(serde_json::to_string(&name).unwrap(), r#""api""#);
    let err = serde_json::from_str::<ServiceName>(r#""../api""#).unwrap_err();
    assert!(err.to_string().contains("invalid service name"), "{err}");
}
