//! `wrenn template build|list|delete`. Templates are what `GET /v1/snapshots` lists (the
//! team's and the platform's); building is in [`crate::builds`].

use crate::cli::TemplateCommand;
use crate::client::{segment, Client};
use crate::error::Result;
use crate::output::{self, text, Table};
use serde_json::{json, Value};

pub async fn run(client: &Client, command: TemplateCommand, json: bool) -> Result<i32> {
    match command {
        TemplateCommand::Build(args) => crate::builds::build(client, args, json).await,
        TemplateCommand::List => {
            let answer = client.get_all("/v1/snapshots").await?;
            if json {
                output::raw_json(&answer.raw)?;
                return Ok(0);
            }
            let mut table =
                Table::new(&["NAME", "TYPE", "OWNER", "VCPUS", "MEMORY", "SIZE", "AGE"]);
            for t in answer.value.as_array().into_iter().flatten() {
                let owner = match t.get("platform").and_then(Value::as_bool) {
                    Some(true) => "platform",
                    Some(false) => "team",
                    None => "",
                };
                table.row(vec![
                    text(t, "name"),
                    text(t, "type"),
                    owner.to_string(),
                    text(t, "vcpus"),
                    t["memory_mb"]
                        .as_u64()
                        .map(|m| format!("{m} MiB"))
                        .unwrap_or_default(),
                    t["size_bytes"]
                        .as_u64()
                        .map(output::bytes)
                        .unwrap_or_default(),
                    output::age(&text(t, "created_at")),
                ]);
            }
            table.print()?;
            Ok(0)
        }
        TemplateCommand::Delete { name } => {
            client
                .delete(&format!("/v1/snapshots/{}", segment(&name)))
                .await?;
            if json {
                output::json_line(&json!({"name": name, "deleted": true}))?;
            } else {
                output::out(&format!("template {name} deleted\n"))?;
            }
            Ok(0)
        }
    }
}
