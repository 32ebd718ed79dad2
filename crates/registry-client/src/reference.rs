//! Image references with Docker's normalisation: `[registry/]repository[:tag][@digest]`.

use std::fmt;

use crate::digest::Digest;

/// Docker Hub's canonical name; what a reference without a registry means when the caller
/// supplies no default.
pub const DOCKER_HUB: &str = "docker.io";

/// A parsed image reference. The registry is always filled in; a reference with neither tag
/// nor digest gets the tag `latest`, as Docker does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct InvalidReference {
    pub input: String,
    pub reason: String,
}

/// An image as a stack file or a running task names it, pinned to its content:
/// `NAME[:TAG]@sha256:…`. The name is kept as written (the engine may add or drop a
/// registry or a tag); a pin is compared by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedImage {
    name: String,
    digest: Digest,
}

impl PinnedImage {
    /// Parses `text`; anything without a valid `@sha256:` digest is not pinned.
    pub fn parse(text: &str) -> Result<PinnedImage, InvalidReference> {
        let fail = |reason: String| InvalidReference {
            input: text.to_owned(),
            reason,
        };
        let (name, digest) = text
            .rsplit_once('@')
            .ok_or_else(|| fail("not pinned to a digest (no `@sha256:…`)".to_owned()))?;
        if name.is_empty() {
            return Err(fail("no image name before the digest".to_owned()));
        }
        let digest = Digest::parse(digest).map_err(|e| fail(e.to_string()))?;
        Ok(PinnedImage {
            name: name.to_owned(),
            digest,
        })
    }

    /// The part before `@`: `[REGISTRY/]REPOSITORY[:TAG]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

/// An image name as written, split without normalising it: `[REGISTRY/]REPOSITORY`, the
/// tag and the digest text, each when present. A tag follows the last `:` after the last
/// `/` (a registry's port precedes a `/`). For names the engine reports back
/// (`RepoDigests`, a task's image), which must be compared as spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageName<'a> {
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> ImageName<'a> {
    pub fn split(image: &'a str) -> Self {
        let (name, digest) = match image.rsplit_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (image, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        ImageName {
            repository,
            tag,
            digest,
        }
    }
}

impl PinnedImage {
    /// `REPOSITORY@sha256:…`, the tag dropped, as the engine's `RepoDigests` spell it.
    pub fn repo_digest(&self) -> String {
        format!(
            "{}@{}",
            ImageName::split(&self.name).repository,
            self.digest
        )
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.digest)
    }
}

impl Reference {
    /// Parses `text`; a reference whose first path component does not look like a host
    /// (no `.`, no `:`, not `localhost`) lives on `default_registry` (Docker Hub if `None`).
    pub fn parse(
        text: &str,
        default_registry: Option<&str>,
    ) -> Result<Reference, InvalidReference> {
        let fail = |reason: &str| InvalidReference {
            input: text.to_owned(),
            reason: reason.to_owned(),
        };
        let ImageName {
            repository: name,
            tag,
            digest,
        } = ImageName::split(text);
        let digest = digest
            .map(|d| Digest::parse(d).map_err(|e| fail(&e.to_string())))
            .transpose()?;
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => (
                default_registry.unwrap_or(DOCKER_HUB).to_owned(),
                name.to_owned(),
            ),
        };
        let (registry, repository) = normalise_hub(registry, repository);
        if !valid_registry(&registry) {
            return Err(fail(&format!("{registry:?} is not a registry host[:port]")));
        }
        if !valid_repository(&repository) {
            return Err(fail(
                "the repository must be lowercase path components of [a-z0-9] separated by `.`, `_`, `-` or `/`",
            ));
        }
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(fail(
                "a tag is 1 to 128 characters of [A-Za-z0-9_.-], not starting with `.` or `-`",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What goes after `/manifests/` in a URL: the digest when pinned, else the tag.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository, pinned to `digest` (the tag is kept for readability).
    pub fn pinned(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = InvalidReference;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s, None)
    }
}

fn normalise_hub(registry: String, repository: String) -> (String, String) {
    if registry == DOCKER_HUB || registry == "index.docker.io" {
        let repository = if repository.contains('/') {
            repository
        } else {
            format!("library/{repository}")
        };
        (DOCKER_HUB.to_owned(), repository)
    } else {
        (registry, repository)
    }
}

fn valid_registry(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            bytes.first().is_some_and(alnum)
                && bytes.last().is_some_and(alnum)
                && bytes
                    .iter()
                    .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_image_is_a_name_and_one_valid_digest() {
        let hex = "a".repeat(64);
        let p = PinnedImage::parse(&format!("r.example.com:5000/x/api:1.0@sha256:{hex}")).unwrap();
        assert_eq!(p.name(), "r.example.com:5000/x/api:1.0");
        assert_eq!(p.digest().hex(), hex);
        assert_eq!(
            p.to_string(),
            format!("r.example.com:5000/x/api:1.0@sha256:{hex}")
        );
        for bad in [
            "r.example.com/x:1.0".to_owned(),
            format!("@sha256:{hex}"),
            format!("x@sha256:{}", "A".repeat(64)),
            format!("x@sha512:{hex}"),
            "x@sha256:abc".to_owned(),
        ] {
            assert!(PinnedImage::parse(&bad).is_err(), "{bad}");
        }
    }
    use proptest::prelude::*;

    fn parse(text: &str) -> Reference {
        Reference::parse(text, Some("registry.example.com")).unwrap()
    }

    #[test]
    fn bare_name_goes_to_the_default_registry_with_latest() {
        let r = parse("hestino/api");
        assert_eq!(r.registry, "registry.example.com");
        assert_eq!(r.repository, "hestino/api");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "registry.example.com/hestino/api:latest");
    }

    #[test]
    fn host_with_port_is_a_registry_and_port_is_not_a_tag() {
        let r = parse("127.0.0.1:5443/e2e/api:1.2.0");
        assert_eq!(r.registry, "127.0.0.1:5443");
        assert_eq!(r.repository, "e2e/api");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        let r = parse("localhost:5000/api");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost:5000", Some("latest"))
        );
    }

    #[test]
    fn docker_hub_names_get_library() {
        let r = Reference::parse("redis:7", None).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/redis:7");
        let r = Reference::parse("index.docker.io/redis", None).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/redis:latest");
    }

    #[test]
    fn digest_only_has_no_tag_and_tag_plus_digest_keeps_both() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = parse(&format!("a/b@{d}"));
        assert_eq!((r.tag, r.digest.unwrap().to_string()), (None, d.to_owned()));
        let r = parse(&format!("a/b:1@{d}"));
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.target(), d);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "a/b:",
            "a/b:-x",
            "a/b@sha256:zz",
            "a/b@",
        ] {
            assert!(
                Reference::parse(bad, Some("r.example")).is_err(),
                "{bad:?} parsed"
            );
        }
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,4}([._-][a-z0-9]{1,4}){0,2}"
    }

    fn reference() -> impl Strategy<Value = Reference> {
        let registry = prop_oneof![
            "[a-z0-9]{1,6}\\.[a-z]{2,4}(:[0-9]{2,5})?",
            "127\\.0\\.0\\.1:[0-9]{2,5}",
            "localhost(:[0-9]{2,5})?",
        ]
        .prop_filter("Docker Hub names are normalised", |r: &String| {
            r != DOCKER_HUB
        });
        let repository = proptest::collection::vec(component(), 1..4).prop_map(|c| c.join("/"));
        let tag = proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
        let digest = proptest::option::of("[0-9a-f]{64}");
        (registry, repository, tag, digest).prop_map(|(registry, repository, tag, digest)| {
            let digest = digest.map(|h| Digest::parse(&format!("sha256:{h}")).unwrap());
            let tag = if tag.is_none() && digest.is_none() {
                Some("latest".to_owned())
            } else {
                tag
            };
            Reference {
                registry,
                repository,
                tag,
                digest,
            }
        })
    }

    proptest! {
        #[test]
        fn parse_of_format_is_identity(r in reference(), default in "[a-z]{1,5}\\.example") {
            let text = r.to_string();
            prop_assert_eq!(Reference::parse(&text, Some(&default)).unwrap(), r);
        }

        #[test]
        fn format_of_parse_is_stable(r in reference()) {
            let once = Reference::parse(&r.to_string(), None).unwrap().to_string();
            let twice = Reference::parse(&once, None).unwrap().to_string();
            prop_assert_eq!(once, twice);
        }
    }

    #[test]
    fn an_image_name_splits_as_written_and_a_port_is_no_tag() {
        let split = ImageName::split("registry.example.com:5000/shop/api:1.2@sha256:abc");
        assert_eq!(split.repository, "registry.example.com:5000/shop/api");
        assert_eq!(split.tag, Some("1.2"));
        assert_eq!(split.digest, Some("sha256:abc"));
        let bare = ImageName::split("registry.example.com:5000/shop/api");
        assert_eq!(
            (bare.repository, bare.tag, bare.digest),
            ("registry.example.com:5000/shop/api", None, None)
        );
        let pinned =
            PinnedImage::parse(&format!("r.example.com/api:1@sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(
            pinned.repo_digest(),
            format!("r.example.com/api@sha256:{}", "a".repeat(64))
        );
    }
}
