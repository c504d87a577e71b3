//! Outgoing mail: the [`Mailer`] trait core implements (SMTP, or a local sink directory).

/// One plain-text message.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("mail transport failed: {0}")]
    Transport(String),
}

/// Sends mail. Core's implementations never drop a message silently: SMTP when configured,
/// otherwise a file per message in the mail sink directory (and a log line).
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, email: Email) -> Result<(), MailError>;
}
