// Command loader is the only writer of the parking database: it consumes the
// queue, reads each snapshot from the store, and applies it idempotently.
package main

import "github.com/parking-newtaipei/parking-newtaipei/shared/cli"

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() { program().Main() }

func program() cli.Program {
	return cli.Program{
		Name:    "loader",
		Version: version,
		Commands: map[string]cli.Command{
			"serve":         {Summary: "consume the queue and apply snapshots until stopped (-drain: until empty)", Run: runServe},
			"local":         {Summary: "run the whole pipeline in one process: schedule, extractor, loader", Run: runLocal},
			"stats":         {Summary: "print lots, availability and ledger statistics", Run: runStats},
			"backfill":      {Summary: "apply stored snapshots of a time range straight from the store (no loader running)", Run: runBackfill},
			"import-legacy": {Summary: "import the original Python project's databases", Run: runImportLegacy},
			"export":        {Summary: "write the latest availability (json), the lots map (geojson) or a CSV", Run: runExport},
			"backup":        {Summary: "write a consistent copy of the database (VACUUM INTO) while no loader runs", Run: runBackup},
			"restore":       {Summary: "replace the database with a checked backup, keeping the old one aside, while no loader runs", Run: runRestore},
			"retract":       {Summary: "withdraw applied snapshots: the database as if they had never arrived, and never applied again", Run: runRetract},
			"healthcheck":   {Summary: "exit 0 if the running loader answers /healthz, else 1 (for container health checks)", Run: runHealthcheck},
		},
		Footer: "Exit codes: 0 ok, 1 error, 2 the database is held by a running loader (backfill, backup, export, import-legacy, restore, retract, stats without -http-addr).",
	}
}
