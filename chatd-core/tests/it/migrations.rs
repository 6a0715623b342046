//! The SQLite and PostgreSQL migrations define the same tables with the same columns: each
//! backend's schema is read back from the database after migrating a fresh one, and the
//! two are compared with types normalised to what the store's queries rely on.
//!
//! Needs `CHATD_TEST_DATABASE_URL`; without it the test says so and passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;

use chatd_test_support::db::{postgres_url, TestDatabase, DATABASE_URL_ENV};
use sqlx::Row;

/// A column as both backends can describe it: a normalised type and whether it may be
/// NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    ty: String,
    nullable: bool,
}

/// Table → column → description.
type Schema = BTreeMap<String, BTreeMap<String, Column>>;

/// The tables sqlx keeps for itself, not part of the migrations' schema.
const MIGRATION_BOOKKEEPING: &str = "_sqlx_migrations";

/// One name for a type family on both backends. Integers keep their width (PostgreSQL
/// decodes `integer` and `bigint` differently); SQLite's rowid alias (`INTEGER PRIMARY
/// KEY`, a 64-bit integer) counts as `int64` like PostgreSQL's `bigserial`.
fn normalise(declared: &str, rowid_alias: bool) -> String {
    let t = declared.trim().to_ascii_lowercase();
    let family = match t.as_str() {
        "integer" | "int" | "int4" if rowid_alias => "int64",
        "bigint" | "int8" => "int64",
        "integer" | "int" | "int4" => "int32",
        "smallint" | "int2" => "int16",
        "text" | "character varying" | "varchar" | "character" | "char" => "text",
        "blob" | "bytea" => "bytes",
        "real" | "double precision" | "double" | "float" | "float8" | "float4" => "float",
        other => return other.to_owned(),
    };
    family.to_owned()
}

async fn sqlite_schema(db: &TestDatabase) -> Schema {
    let pool = db.raw_pool().await;
    let rows = sqlx::query(
        "SELECT m.name AS tbl, p.name AS col, p.type AS ty, p.\"notnull\" AS not_null, \
         p.pk AS pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> $1",
    )
    .bind(MIGRATION_BOOKKEEPING)
    .fetch_all(&pool)
    .await
    .unwrap();
    // (table, column, type, not null, position in the primary key)
    let rows: Vec<(String, String, String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.get("tbl"),
                r.get("col"),
                r.get("ty"),
                r.get("not_null"),
                r.get("pk"),
            )
        })
        .collect();
    let mut pk_columns: BTreeMap<&str, usize> = BTreeMap::new();
    for (table, _, _, _, pk) in &rows {
        if *pk > 0 {
            *pk_columns.entry(table.as_str()).or_default() += 1;
        }
    }
    let mut schema = Schema::new();
    for (table, column, ty, notnull, pk) in &rows {
        let single_pk = pk_columns.get(table.as_str()) == Some(&1);
        let rowid_alias = *pk > 0 && single_pk && ty.eq_ignore_ascii_case("integer");
        // SQLite lets a primary key column other than the rowid hold NULL unless it says
        // NOT NULL; PostgreSQL never does, and the store never writes one.
        let nullable = *notnull == 0 && *pk == 0;
        schema.entry(table.clone()).or_default().insert(
            column.clone(),
            Column {
                ty: normalise(ty, rowid_alias),
                nullable,
            },
        );
    }
    pool.close().await;
    schema
}

async fn postgres_schema(db: &TestDatabase) -> Schema {
    let pool = db.raw_pool().await;
    let schema_name = db
        .schema()
        .expect("a PostgreSQL test database has a schema");
    // Casts: information_schema's domain types are not among the Any driver's types.
    let rows = sqlx::query(
        "SELECT c.table_name::text AS tbl, c.column_name::text AS col, \
         c.data_type::text AS ty, c.is_nullable::text AS nullable \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' AND c.table_name <> $2",
    )
    .bind(schema_name)
    .bind(MIGRATION_BOOKKEEPING)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for r in &rows {
        let table: String = r.get("tbl");
        let column: String = r.get("col");
        let ty: String = r.get("ty");
        let nullable: String = r.get("nullable");
        schema.entry(table).or_default().insert(
            column,
            Column {
                ty: normalise(&ty, false),
                nullable: nullable == "YES",
            },
        );
    }
    pool.close().await;
    schema
}

#[test]
fn types_normalise_to_one_family_per_backend_pair() {
    assert_eq!(normalise("BIGINT", false), normalise("bigint", false));
    assert_eq!(normalise("INTEGER", true), normalise("bigint", false));
    assert_ne!(normalise("INTEGER", false), normalise("bigint", false));
    assert_eq!(normalise("INTEGER", false), normalise("integer", false));
    assert_eq!(normalise("TEXT", false), normalise("text", false));
    assert_eq!(normalise("BLOB", false), normalise("bytea", false));
    // Anything unknown stays itself, so a new type shows up in the comparison.
    assert_eq!(normalise("jsonb", false), "jsonb");
}

#[tokio::test]
async fn sqlite_and_postgres_migrations_define_the_same_tables_and_columns() {
    let Some(url) = postgres_url() else {
        eprintln!(
            "skipped: set {DATABASE_URL_ENV} to a PostgreSQL database to compare the \
             SQLite and PostgreSQL migrations"
        );
        return;
    };
    let sqlite = TestDatabase::sqlite();
    let store = sqlite.connect_store().await;
    let sqlite_tables = sqlite_schema(&sqlite).await;
    store.close().await;
    let postgres = TestDatabase::postgres(&url).await;
    let store = postgres.connect_store().await;
    let postgres_tables = postgres_schema(&postgres).await;
    store.close().await;

    assert!(
        sqlite_tables.contains_key("chats") && sqlite_tables.len() > 5,
        "the SQLite schema was read: {sqlite_tables:?}"
    );
    let sqlite_names: Vec<&String> = sqlite_tables.keys().collect();
    let postgres_names: Vec<&String> = postgres_tables.keys().collect();
    assert_eq!(sqlite_names, postgres_names, "the same tables");
    for (table, columns) in &sqlite_tables {
        let other = &postgres_tables[table];
        let names: Vec<&String> = columns.keys().collect();
        let other_names: Vec<&String> = other.keys().collect();
        assert_eq!(names, other_names, "the same columns in {table}");
        for (column, described) in columns {
            assert_eq!(
                described, &other[column],
                "{table}.{column}: SQLite (left) and PostgreSQL (right)"
            );
        }
    }
    sqlite.remove().await;
    postgres.remove().await;
}
