package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/parking-newtaipei/parking-newtaipei/shared/sqlite"
)

func main() {
	ctx := context.Background()
	if os.Args[2] == "q" {
		timeQueries(os.Args[1], os.Args[3:]...)
		return
	}
	t0 := time.Now()
	db, err := sqlite.Open(ctx, os.Args[1], sqlite.Options{Locking: sqlite.Locking(os.Args[2]), Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		panic(err)
	}
	fmt.Println("open", time.Since(t0))
	t0 = time.Now()
	s, err := db.Stats(ctx)
	fmt.Println("stats", time.Since(t0), err, len(s.Months), s.Observations)
	if len(os.Args) > 3 {
		t0 = time.Now()
		f, err := db.StatsFull(ctx)
		fmt.Println("full", time.Since(t0), err, sqlite.SummaryDifferences(s, f))
	}
	db.Close()
}
