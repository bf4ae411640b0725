//! `backup-ns schema`: print the JSON Schema of plan files (the committed `schema/plan.schema.json`).

use crate::Exit;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
#[command(after_help = "\
The schema is generated from the plan model; editors use it through the first line of a plan:
  # yaml-language-server: $schema=../schema/plan.schema.json

Examples:
  backup-ns schema > schema/plan.schema.json
  backup-ns schema | jq '.properties | keys'")]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> Exit {
    let text = crate::plan::schema::plan_schema_json();
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("error: cannot write the schema: {e}");
            Exit::Failure
        }
    }
}
