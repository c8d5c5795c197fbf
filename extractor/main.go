// Command extractor fetches one of New Taipei City's parking feeds, stores the
// raw snapshot, and enqueues a message for the loader. It never touches the database.
package main

import "github.com/parking-newtaipei/parking-newtaipei/shared/cli"

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() { program().Main() }

func program() cli.Program {
	return cli.Program{
		Name:    "extractor",
		Version: version,
		Commands: map[string]cli.Command{
			"fetch":            {Summary: "fetch one dataset, store the snapshot, enqueue it", Run: runFetch},
			"replay":           {Summary: "enqueue stored snapshots of a time range again", Run: runReplay},
			"import-responses": {Summary: "turn the original project's saved responses into snapshots", Args: "DIR", Run: runImportResponses},
		},
		Footer: "Exit codes: 0 ok, 1 error, 2 skipped (lots unchanged).",
	}
}
