//! Mail transports: SMTP through lettre when `SMTP_HOST` is set, otherwise the local sink
//! (one file per message in `WRENN_MAIL_DIR`, plus a log line) — never dropped silently.

use crate::config::Config;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::sync::Arc;
use wrenn_extension_api::{Email, MailError, Mailer};

/// The transport the configuration asks for.
pub fn from_config(config: &Config) -> Arc<dyn Mailer> {
    match &config.smtp.host {
        Some(host) => Arc::new(SmtpMailer::new(config, host)),
        None => {
            tracing::info!(dir = %config.mail_dir.display(), "SMTP_HOST unset; mail goes to the sink directory.");
            Arc::new(SinkMailer {
                dir: config.mail_dir.clone(),
            })
        }
    }
}

/// SMTP delivery.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl SmtpMailer {
    fn new(config: &Config, host: &str) -> Self {
        let smtp = &config.smtp;
        let builder = match smtp.port {
            465 => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            587 => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        };
        let mut builder = builder
            .unwrap_or_else(|_| AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host))
            .port(smtp.port);
        if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Self {
            transport: builder.build(),
            from: smtp.from.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: Email) -> Result<(), MailError> {
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|_| MailError::Address(self.from.clone()))?;
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| MailError::Address(email.to.clone()))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(email.subject)
            .body(email.text)
            .map_err(|e| MailError::Transport(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Transport(e.to_string()))?;
        Ok(())
    }
}

/// Writes each message to `<dir>/<unix-nanos>-<uuid>.eml` and logs it.
pub struct SinkMailer {
    pub dir: PathBuf,
}

#[async_trait::async_trait]
impl Mailer for SinkMailer {
    async fn send(&self, email: Email) -> Result<(), MailError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| MailError::Transport(format!("mail sink {}: {e}", self.dir.display())))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = self
            .dir
            .join(format!("{nanos:024}-{}.eml", uuid::Uuid::new_v4().simple()));
        let content = format!(
            "To: {}\nSubject: {}\nDate: {}\n\n{}\n",
            email.to,
            email.subject,
            chrono::Utc::now().to_rfc3339(),
            email.text
        );
        tokio::fs::write(&path, content)
            .await
            .map_err(|e| MailError::Transport(format!("mail sink {}: {e}", path.display())))?;
        tracing::info!(to = %email.to, subject = %email.subject, file = %path.display(), body = %email.text, "Mail written to the sink.");
        Ok(())
    }
}
