//! Credentials, `WWW-Authenticate` challenges and bearer tokens.
//!
//! Order of credentials: explicit ones from the caller ([`crate::ClientConfig::credentials`]),
//! else the Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, including
//! credential helpers), else anonymous.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::secret::Secret;

/// How we prove who we are to one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// A refresh token from `docker login` against an OAuth2 token server.
    IdentityToken(Secret),
}

impl Credentials {
    /// The Docker config's entry for `registry`, asking a credential helper if one is
    /// configured. The helper is a child process, so this runs off the async runtime.
    pub async fn from_docker_config(registry: &str) -> Result<Credentials, Error> {
        let server = if registry == crate::reference::DOCKER_HUB {
            "https://index.docker.io/v1/".to_owned()
        } else {
            registry.to_owned()
        };
        let lookup =
            tokio::task::spawn_blocking(move || docker_credential::get_credential(&server));
        let result = lookup.await.map_err(|e| Error::Credentials {
            registry: registry.to_owned(),
            cause: format!("credential lookup did not finish: {e}"),
        })?;
        use docker_credential::CredentialRetrievalError as E;
        match result {
            Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credentials::Basic {
                    username,
                    password: Secret::new(password),
                })
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                Ok(Credentials::IdentityToken(Secret::new(token)))
            }
            Err(E::NoCredentialConfigured | E::ConfigNotFound | E::ConfigReadError) => {
                Ok(Credentials::Anonymous)
            }
            // The helper's stdout may hold a secret; name the helper and nothing else.
            Err(E::HelperFailure { helper, .. }) => Err(Error::Credentials {
                registry: registry.to_owned(),
                cause: format!("credential helper `{helper}` failed"),
            }),
            Err(other) => Err(Error::Credentials {
                registry: registry.to_owned(),
                cause: other.to_string(),
            }),
        }
    }

    pub(crate) fn basic_header(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            _ => None,
        }
    }
}

/// One challenge from a `WWW-Authenticate` header (RFC 7235), e.g.
/// `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased: `basic` or `bearer`.
    pub scheme: String,
    pub params: HashMap<String, String>,
}

impl Challenge {
    /// Parses a header value that may hold several challenges. Unparseable input yields
    /// what could be read so far; the caller treats "no usable challenge" as an auth error.
    pub fn parse_all(header: &str) -> Vec<Challenge> {
        let mut out: Vec<Challenge> = Vec::new();
        let chars: Vec<char> = header.chars().collect();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
                *i += 1;
            }
        };
        let read_token = |i: &mut usize| {
            let start = *i;
            while *i < chars.len()
                && !chars[*i].is_whitespace()
                && !matches!(chars[*i], '=' | ',' | '"')
            {
                *i += 1;
            }
            chars[start..*i].iter().collect::<String>()
        };
        while i < chars.len() {
            skip_ws(&mut i);
            let word = read_token(&mut i);
            if word.is_empty() {
                break;
            }
            // `word=` starts a parameter of the current challenge; a bare word starts a new one.
            let mut j = i;
            while j < chars.len() && chars[j] == ' ' {
                j += 1;
            }
            if j < chars.len() && chars[j] == '=' {
                i = j + 1;
                while i < chars.len() && chars[i] == ' ' {
                    i += 1;
                }
                let value = if i < chars.len() && chars[i] == '"' {
                    i += 1;
                    let mut v = String::new();
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' && i + 1 < chars.len() {
                            i += 1;
                        }
                        v.push(chars[i]);
                        i += 1;
                    }
                    i += 1;
                    v
                } else {
                    read_token(&mut i)
                };
                if let Some(current) = out.last_mut() {
                    current.params.insert(word.to_ascii_lowercase(), value);
                }
            } else {
                out.push(Challenge {
                    scheme: word.to_ascii_lowercase(),
                    params: HashMap::new(),
                });
            }
        }
        out
    }
}

/// The resource access a request needs, in token-server terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    pub fn pull(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull")])
    }

    pub fn push(repository: &str) -> Scope {
        Scope(vec![format!("repository:{repository}:pull,push")])
    }

    /// Push to `destination` and pull from `source`: what a cross-repository mount needs.
    pub fn mount(destination: &str, source: &str) -> Scope {
        let mut scope = Scope::push(destination);
        if source != destination {
            scope.0.push(format!("repository:{source}:pull"));
        }
        scope
    }

    pub fn items(&self) -> &[String] {
        &self.0
    }

    /// Whether a token granted for `self` also serves `other`: every resource `other` names
    /// is in `self` with at least the same actions (`repository:a:pull,push` covers
    /// `repository:a:pull`).
    pub fn covers(&self, other: &Scope) -> bool {
        fn split(item: &str) -> (&str, Vec<&str>) {
            match item.rsplit_once(':') {
                Some((resource, actions)) => (resource, actions.split(',').collect()),
                None => (item, Vec::new()),
            }
        }
        other.0.iter().all(|wanted| {
            let (resource, actions) = split(wanted);
            self.0.iter().any(|held| {
                let (held_resource, held_actions) = split(held);
                held_resource == resource && actions.iter().all(|a| held_actions.contains(a))
            })
        })
    }
}

/// A bearer token and when to stop using it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) value: Secret,
    pub(crate) expires: Instant,
}

/// The token server's answer (Docker's token spec: `token`, or OAuth2's `access_token`).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // The spec's default lifetime is 60 s; stop 10 s early so a token never expires in flight.
        let lifetime = Duration::from_secs(self.expires_in.unwrap_or(60).max(20) - 10);
        Some(Token {
            value: Secret::new(value),
            expires: Instant::now() + lifetime,
        })
    }
}

/// Cached tokens, by the scope they were asked for.
#[derive(Debug, Default)]
pub(crate) struct TokenCache(HashMap<Scope, Token>);

impl TokenCache {
    /// A live token for `scope`, or for a broader scope that covers it (a copy's token
    /// serves its later pulls and pushes). The registry still judges what the token grants:
    /// a token server may grant less than was asked, and then the request is refused.
    pub(crate) fn get(&self, scope: &Scope) -> Option<Secret> {
        let now = Instant::now();
        if let Some(t) = self.0.get(scope).filter(|t| t.expires > now) {
            return Some(t.value.clone());
        }
        self.0
            .iter()
            .find(|(held, t)| t.expires > now && held.covers(scope))
            .map(|(_, t)| t.value.clone())
    }

    pub(crate) fn put(&mut self, scope: &Scope, token: Token) {
        self.0.insert(scope.clone(), token);
    }

    pub(crate) fn forget(&mut self, scope: &Scope) {
        self.0.remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_docker_hub_bearer_challenge() {
        let c = Challenge::parse_all(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:samalba/my-app:pull,push");
    }

    #[test]
    fn parses_basic_and_several_challenges_and_escapes() {
        let c = Challenge::parse_all(r#"Basic realm="release-testbed""#);
        assert_eq!(
            (c[0].scheme.as_str(), c[0].params["realm"].as_str()),
            ("basic", "release-testbed")
        );
        let c = Challenge::parse_all(
            r#"Basic realm="a \"b\"", Bearer realm=https://t.example/token, error=invalid_token"#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].params["realm"], r#"a "b""#);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "https://t.example/token");
        assert_eq!(c[1].params["error"], "invalid_token");
    }

    #[test]
    fn garbage_does_not_panic() {
        for g in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            ",,,",
            "Bearer ,= x",
        ] {
            let _ = Challenge::parse_all(g);
        }
    }

    #[test]
    fn mount_scope_asks_pull_on_the_source() {
        assert_eq!(
            Scope::mount("dst/x", "src/y").items(),
            ["repository:dst/x:pull,push", "repository:src/y:pull"]
        );
        assert_eq!(Scope::mount("a", "a").items().len(), 1);
    }

    #[test]
    fn tokens_are_cached_per_scope() {
        let mut cache = TokenCache::default();
        let t = TokenResponse {
            token: Some("t1".into()),
            access_token: None,
            expires_in: Some(300),
        };
        cache.put(&Scope::pull("a"), t.into_token().unwrap());
        assert_eq!(cache.get(&Scope::pull("a")).unwrap().expose(), "t1");
        assert!(cache.get(&Scope::pull("b")).is_none());
        assert!(cache.get(&Scope::push("a")).is_none());
        cache.forget(&Scope::pull("a"));
        assert!(cache.get(&Scope::pull("a")).is_none());
    }

    #[test]
    fn a_broader_token_serves_narrower_scopes_and_nothing_else() {
        let mount = Scope::mount("dst/x", "src/y");
        assert!(mount.covers(&Scope::pull("src/y")));
        assert!(mount.covers(&Scope::pull("dst/x")));
        assert!(mount.covers(&Scope::push("dst/x")));
        assert!(!mount.covers(&Scope::push("src/y")));
        assert!(!mount.covers(&Scope::pull("other")));
        assert!(!Scope::pull("dst/x").covers(&Scope::push("dst/x")));
        // `a` must not cover `a/b` or `ab`: resources compare whole.
        assert!(!Scope::push("a").covers(&Scope::pull("a/b")));
        assert!(!Scope::push("a").covers(&Scope::pull("ab")));

        let mut cache = TokenCache::default();
        let t = TokenResponse {
            token: Some("m".into()),
            access_token: None,
            expires_in: Some(300),
        };
        cache.put(&mount, t.into_token().unwrap());
        assert_eq!(cache.get(&Scope::pull("src/y")).unwrap().expose(), "m");
        assert_eq!(cache.get(&Scope::push("dst/x")).unwrap().expose(), "m");
        assert!(cache.get(&Scope::push("src/y")).is_none());
    }

    #[test]
    fn basic_header_is_base64_and_debug_hides_the_password() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: Secret::new("canary"),
        };
        assert_eq!(c.basic_header().unwrap(), "Basic dTpjYW5hcnk=");
        assert!(!format!("{c:?}").contains("canary"));
    }
}
