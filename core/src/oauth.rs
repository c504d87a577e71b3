//! OAuth login providers (GitHub first) behind a small trait, and the registry of the
//! configured ones. The HTTP flow (state cookie, intents, linking) is in `http/oauth.rs`.

use crate::config::{Config, GithubConfig};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The identity an OAuth provider vouches for.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    /// The provider's stable user id.
    pub provider_user_id: String,
    /// A verified email address, if the provider has one.
    pub email: Option<String>,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid provider configuration: {0}")]
    Config(String),
    #[error("token exchange failed: {0}")]
    Exchange(String),
    #[error("provider API failed: {0}")]
    Api(String),
}

/// An OAuth2 authorization-code provider.
#[async_trait::async_trait]
pub trait OAuthProvider: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Where to send the browser; `state` is echoed back to the callback.
    fn authorize_url(&self, state: &str, challenge: PkceCodeChallenge) -> String;

    /// Exchanges the code and reads the user's identity.
    async fn identify(
        &self,
        code: &str,
        verifier: PkceCodeVerifier,
    ) -> Result<ExternalIdentity, OAuthError>;
}

/// The configured providers by name.
#[derive(Default)]
pub struct OAuthProviders {
    providers: BTreeMap<&'static str, Arc<dyn OAuthProvider>>,
}

impl OAuthProviders {
    pub fn from_config(config: &Config) -> Result<Self, OAuthError> {
        let mut this = Self::default();
        if let (Some(id), Some(secret)) = (&config.github.client_id, &config.github.client_secret) {
            let redirect = format!("{}/v1/auth/oauth/github/callback", config.public_base());
            this.insert(Arc::new(GitHub::new(
                &config.github,
                id,
                secret,
                &redirect,
            )?));
        }
        Ok(this)
    }

    pub fn insert(&mut self, provider: Arc<dyn OAuthProvider>) {
        self.providers.insert(provider.name(), provider);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn OAuthProvider>> {
        self.providers.get(name).cloned()
    }
}

type GitHubClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// GitHub: authorize + token endpoints, then `GET /user` and `GET /user/emails`.
pub struct GitHub {
    client: GitHubClient,
    api_url: String,
    http: reqwest::Client,
}

impl GitHub {
    pub fn new(
        cfg: &GithubConfig,
        id: &str,
        secret: &str,
        redirect: &str,
    ) -> Result<Self, OAuthError> {
        let bad = |what: &str| OAuthError::Config(format!("GitHub {what} is not a valid URL"));
        let client = BasicClient::new(ClientId::new(id.to_string()))
            .set_client_secret(ClientSecret::new(secret.to_string()))
            .set_auth_uri(
                AuthUrl::new(cfg.authorize_url.clone()).map_err(|_| bad("authorize URL"))?,
            )
            .set_token_uri(TokenUrl::new(cfg.token_url.clone()).map_err(|_| bad("token URL"))?)
            .set_redirect_uri(
                RedirectUrl::new(redirect.to_string()).map_err(|_| bad("redirect URL"))?,
            );
        // Never follow redirects from the token endpoint (oauth2's SSRF advice).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(15))
            .user_agent("wrenn-cp")
            .build()
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        Ok(Self {
            client,
            api_url: cfg.api_url.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, OAuthError> {
        let response = self
            .http
            .get(format!("{}{path}", self.api_url))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .send()
            .await
            .map_err(|e| OAuthError::Api(e.to_string()))?;
        if !response.status().is_success() {
            return Err(OAuthError::Api(format!(
                "GET {path}: HTTP {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| OAuthError::Api(e.to_string()))
    }
}

#[derive(Deserialize)]
struct GitHubUser {
    id: i64,
    login: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

#[async_trait::async_trait]
impl OAuthProvider for GitHub {
    fn name(&self) -> &'static str {
        "github"
    }

    fn authorize_url(&self, state: &str, challenge: PkceCodeChallenge) -> String {
        let state = state.to_string();
        let (url, _) = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .add_scope(Scope::new("read:user".into()))
            .add_scope(Scope::new("user:email".into()))
            .set_pkce_challenge(challenge)
            .url();
        url.to_string()
    }

    async fn identify(
        &self,
        code: &str,
        verifier: PkceCodeVerifier,
    ) -> Result<ExternalIdentity, OAuthError> {
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| OAuthError::Exchange(e.to_string()))?;
        let access = token.access_token().secret();
        let user: GitHubUser = self.get_json("/user", access).await?;
        let emails: Vec<GitHubEmail> = self.get_json("/user/emails", access).await?;
        let email = emails
            .iter()
            .find(|e| e.primary && e.verified)
            .or_else(|| emails.iter().find(|e| e.verified))
            .map(|e| e.email.clone());
        Ok(ExternalIdentity {
            provider_user_id: user.id.to_string(),
            email,
            name: user
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(user.login),
        })
    }
}
