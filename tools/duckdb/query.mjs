// query.mjs runs SQL with DuckDB for the tests, which check the published
// Parquet files the way an analyst reads them.
//
// Usage: node query.mjs 'SQL' ['SQL' ...]
// It prints one JSON document: for each statement, its rows as objects
// (DuckDB's JSON conversion: BIGINT and HUGEINT as strings, timestamps as
// ISO text). A failing statement exits 1 with DuckDB's message on stderr.
//
// scripts/test copies this file next to the node_modules it installs under
// .tools/duckdb (ignored by git), so the import below resolves there.
import { DuckDBInstance } from "@duckdb/node-api";

const statements = process.argv.slice(2);
if (statements.length === 0) {
  console.error("usage: node query.mjs 'SQL' ['SQL' ...]");
  process.exit(2);
}
const instance = await DuckDBInstance.create(":memory:");
const conn = await instance.connect();
const results = [];
for (const sql of statements) {
  try {
    const reader = await conn.runAndReadAll(sql);
    results.push(reader.getRowObjectsJson());
  } catch (err) {
    console.error(`${sql}\n${err.message}`);
    process.exit(1);
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
