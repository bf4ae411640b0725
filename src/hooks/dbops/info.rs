//! `postgres|mysql info`: tool and server versions, the database's size and the dump file's facts, gathered by one
//! script in the database container.

use super::{DbOpsError, DbSession, DumpFile};
use std::time::Duration;

/// What `info` reports. A fact the script could not find is `None` (printed as `unknown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    pub database: Option<String>,
    pub server_version: Option<String>,
    pub client_version: Option<String>,
    pub dump_tool_version: Option<String>,
    /// Bytes the database takes on the server.
    pub db_size: Option<u64>,
    /// `None` while no dump has been written yet.
    pub dump: Option<DumpFile>,
}

/// Runs the info script in the session's container.
pub async fn info(
    session: &DbSession<'_>,
    timeout: Option<Duration>,
) -> Result<DbInfo, DbOpsError> {
    let out = session.facts(session.hook.info_script(), timeout).await?;
    let fact = |k: &str| out.get(k).map(str::to_string);
    Ok(DbInfo {
        database: fact("database"),
        server_version: fact("server_version"),
        client_version: fact("client_version"),
        dump_tool_version: fact("dump_tool_version"),
        db_size: out.get("db_size").and_then(|s| s.trim().parse().ok()),
        dump: session.dump_file(&out)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::dbops::session::tests::{Canned, postgres, target};

    #[tokio::test]
    async fn info_reads_the_facts_and_leaves_missing_ones_unknown() {
        let exec = Canned::new(
            0,
            "backup-ns: database=shop\nbackup-ns: server_version=PostgreSQL 17.2\nbackup-ns: db_size= 8192\nbackup-ns: dump=none\n",
            "",
        );
        let session = DbSession {
            hook: postgres(),
            target: target(),
            exec: &exec,
        };
        let info = info(&session, None).await.unwrap();
        assert_eq!(info.database.as_deref(), Some("shop"));
        assert_eq!(info.server_version.as_deref(), Some("PostgreSQL 17.2"));
        assert_eq!(info.client_version, None);
        assert_eq!(info.db_size, Some(8192));
        assert_eq!(info.dump, None);
    }
}
