//! The schema: `schema.sql` in its versioned sections, and bringing a database to this
//! build's version at start-up.

use deadpool_postgres::Pool;

/// The one schema, compiled into the binary so the runtime image needs no files.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// Key of the advisory lock that serialises schema application across processes.
const SCHEMA_LOCK_KEY: i64 = 0x7274_6368_6174; // "rtchat"

/// `schema.sql` cut into its sections (see its header): the base tables, the migration steps
/// in version order, and the functions.
pub struct Schema {
    pub base: &'static str,
    /// `(version, statements)`, ascending, the first being 2.
    pub migrations: Vec<(i32, &'static str)>,
    pub functions: &'static str,
}

impl Schema {
    /// Reads the sections of `SCHEMA_SQL`; a malformed file is a bug of the build, so this
    /// panics with what is wrong (a unit test runs it).
    pub fn parse(sql: &'static str) -> Schema {
        let mut base = None;
        let mut functions = None;
        let mut migrations: Vec<(i32, &'static str)> = Vec::new();
        let mut marks: Vec<(usize, &'static str)> = sql
            .match_indices("\n-- @")
            .map(|(at, _)| at + 1)
            .map(|at| {
                let line_end = sql[at..].find('\n').map_or(sql.len(), |n| at + n);
                (at, &sql[at + "-- @".len()..line_end])
            })
            .collect();
        marks.push((sql.len(), ""));
        for pair in marks.windows(2) {
            let ((at, mark), (next, _)) = (pair[0], pair[1]);
            let body = &sql[at..next];
            if mark == "base" {
                base = Some(body);
            } else if mark == "functions" {
                functions = Some(body);
            } else if let Some(rest) = mark.strip_prefix("migration ") {
                let version: i32 = rest
                    .split(':')
                    .next()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("schema.sql: bad migration mark {mark:?}"));
                let expected = migrations.last().map_or(2, |(v, _)| v + 1);
                assert_eq!(
                    version, expected,
                    "schema.sql: migrations must count up from 2"
                );
                migrations.push((version, body));
            } else {
                panic!("schema.sql: unknown section mark {mark:?}");
            }
        }
        Schema {
            base: base.expect("schema.sql has a `-- @base` section"),
            migrations,
            functions: functions.expect("schema.sql has a `-- @functions` section"),
        }
    }

    /// The version a database has once every section is applied.
    pub fn version(&self) -> i32 {
        self.migrations.last().map_or(1, |(v, _)| *v)
    }
}

/// The schema version this build writes (the last migration of schema.sql); the tests
/// compare the database with it.
#[cfg(any(test, feature = "test-support"))]
pub fn schema_version() -> i32 {
    Schema::parse(SCHEMA_SQL).version()
}

/// Brings the database to this build's schema version, in one transaction under an advisory
/// lock: a new database gets the base tables; each migration step newer than the database's
/// version runs in order and is recorded; the functions are replaced when the version moved.
/// A database at this version is left alone; a newer one is an error (this build is older).
pub async fn apply_schema(pool: &Pool) -> Result<(), String> {
    let schema = Schema::parse(SCHEMA_SQL);
    let target = schema.version();
    let mut client = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    // `IF NOT EXISTS` and `DROP ... IF EXISTS` each send a NOTICE that tokio-postgres logs
    // at info: noise in every start's log. Warnings and errors still come through.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK_KEY])
        .await
        .map_err(|e| e.to_string())?;
    let has_table: bool = tx
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let current: i32 = if has_table {
        tx.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
            .await
            .map_err(|e| e.to_string())?
            .get(0)
    } else {
        0
    };
    if current > target {
        return Err(format!(
            "the database has schema version {current}, newer than this build's {target}: upgrade rtchat"
        ));
    }
    if current == target {
        return Ok(());
    }
    let record = "INSERT INTO schema_version (version) VALUES ($1) ON CONFLICT DO NOTHING";
    if current < 1 {
        tx.batch_execute(schema.base)
            .await
            .map_err(|e| format!("schema.sql, base: {e}"))?;
        tx.execute(record, &[&1i32])
            .await
            .map_err(|e| e.to_string())?;
    }
    for (version, steps) in schema.migrations.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(steps)
            .await
            .map_err(|e| format!("schema.sql, migration {version}: {e}"))?;
        tx.execute(record, &[version])
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.batch_execute(schema.functions)
        .await
        .map_err(|e| format!("schema.sql, functions: {e}"))?;
    tx.commit().await.map_err(|e| e.to_string())?;
    tracing::info!(from = current, to = target, "schema migrated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_sql_has_its_sections_in_order() {
        let schema = Schema::parse(SCHEMA_SQL);
        assert!(schema.base.contains("CREATE TABLE IF NOT EXISTS users"));
        assert!(schema.functions.contains("rtchat_send_messages"));
        assert!(
            !schema.base.contains("FUNCTION"),
            "functions live in their section"
        );
        assert_eq!(schema.migrations.first().map(|(v, _)| *v), Some(2));
        assert_eq!(schema_version(), schema.version());
    }
}
